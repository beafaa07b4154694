# The two commands a newcomer needs (see README.md). Both install what is missing first.
SHELL := /bin/bash
VENV := .venv
SCENARIO ?= scenarios/telegram-2018.yaml

.PHONY: setup demo test lint bench clean vm

setup:
	bash scripts/setup.sh

demo: setup
	$(VENV)/bin/tspulab run $(SCENARIO)

test: setup
	$(VENV)/bin/python -m pytest -q

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy tspulab controllers topologies

bench: setup
	$(VENV)/bin/python bench/throughput_tspu_vs_learning.py
	$(VENV)/bin/python bench/bringup_scale.py

clean: setup
	$(VENV)/bin/tspulab clean

# The test VM (docs/vm.md): Debian 12 + Debian's kernel (netem, Open vSwitch module), tspulab
# installed by scripts/setup.sh in a chroot; cached in /var/cache/tspulab-vm. Then, e.g.:
#   bash scripts/vm-run.sh --scenario scenarios/twitter-2021.yaml
vm: setup
	bash scripts/vm-build.sh

# The two commands a newcomer needs (see README.md). Both install what is missing first.
SHELL := /bin/bash
VENV := .venv
SCENARIO ?= scenarios/telegram-2018.yaml

.PHONY: setup build demo test lint bench clean vm

setup:
	bash scripts/setup.sh

# Recompile the DPI modules after editing one (setup.py, docs/dpi.md "Compiled modules"); only the
# edited ones are rebuilt. Until then an edited module runs as its .py (tspulab/dpi/compiled.py).
build: setup
	$(VENV)/bin/python setup.py -q build_ext --inplace
	$(VENV)/bin/python -c 'from tspulab.dpi.compiled import main; main()' | tail -n 1

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

"""Where the tests find the reference data the project ships: `data/` (registry dumps, cloud
ranges, Tor relays; `TSPULAB_DATA_DIR` overrides it, as for scenarios) and the labelled nDPI
captures in `tests/data/pcaps/ndpi` (LGPL-3.0, see `data/README.md`)."""

from __future__ import annotations

from pathlib import Path

from tspulab.scenario.paths import data_dir

DATA = data_dir()
NDPI = Path(__file__).resolve().parent / "data" / "pcaps" / "ndpi"
PCAPS = NDPI / "pcap"
TOR_RELAYS = DATA / "tor" / "ndpi_tor_relays_2024-10.txt"

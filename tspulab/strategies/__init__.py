"""DPI-evasion strategies, the product's own: a spec language, a shaping proxy, NFQUEUE rewriters,
a live test bench and the strategy sweep (docs/strategies.md)."""

from tspulab.strategies.spec import NONE, Step, Strategy, StrategySpecError, load_yaml, parse

__all__ = ["NONE", "Step", "Strategy", "StrategySpecError", "load_yaml", "parse"]

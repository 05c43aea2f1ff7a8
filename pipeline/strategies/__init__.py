"""Strategies: pure functions of indicator state and a closed candle that propose a
signal or nothing. See base.py for the shared shapes and registry.py for the catalog."""
from .base import Bar, Param, Proposal, Strategy
from .registry import STRATEGIES, UnknownStrategyError, params_clean, strategy_catalog, strategy_get
from .replay import replay, window_decide

__all__ = ["Bar", "Param", "Proposal", "Strategy", "STRATEGIES", "UnknownStrategyError", "params_clean",
           "strategy_catalog", "strategy_get", "replay", "window_decide"]

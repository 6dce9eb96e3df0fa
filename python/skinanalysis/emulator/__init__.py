"""Local emulator of Perfect Corp's AI Skin Analysis API (standard library only).

``Emulator`` runs it in-process on a background thread; ``python -m
skinanalysis.emulator`` or ``scripts/emulator`` run it in the foreground.
See docs/emulator.md.
"""

from .config import Config
from .faults import ScenarioError
from .server import Emulator, serve

__all__ = ["Config", "Emulator", "ScenarioError", "serve"]

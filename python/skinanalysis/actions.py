"""The dst_actions catalogue and unit costs, read from the C core."""

from __future__ import annotations

from typing import Iterable, Optional, Union

from ._native import _core

#: The 32 documented actions in the published order: 16 HD, then 16 SD.
ALL_ACTIONS: tuple[str, ...] = _core.actions()
#: The 16 HD actions (short side of the image at least 1080 px).
HD_ACTIONS: tuple[str, ...] = tuple(
    a for a in ALL_ACTIONS if _core.action_tier(a) == _core.TIER_HD)
#: The 16 SD actions (short side at least 480 px).
SD_ACTIONS: tuple[str, ...] = tuple(
    a for a in ALL_ACTIONS if _core.action_tier(a) == _core.TIER_SD)
#: What ``Client.analyze`` asks for when no actions are given: every SD
#: concern (16 units per successful analysis); the core's default set
#: (sa_default_actions), the one Lua's ``client:analyze`` uses too.
DEFAULT_ACTIONS: tuple[str, ...] = _core.default_actions(_core.TIER_SD)
#: The default set with ``hd=True``: every HD concern.
_DEFAULT_HD_ACTIONS: tuple[str, ...] = _core.default_actions(_core.TIER_HD)

Actions = Union[str, Iterable[str], None]


def normalize(actions: Actions, hd: bool = False) -> list[str]:
    """A list of action names from None (the default set: SD, or HD with
    ``hd=True``), a comma-separated string or an iterable of names.  The
    names are checked by the core when the request is submitted."""
    if actions is None:
        return list(_DEFAULT_HD_ACTIONS if hd else DEFAULT_ACTIONS)
    if isinstance(actions, str):
        return [a.strip() for a in actions.split(",") if a.strip()]
    return list(actions)


def cost(actions: Actions = None) -> int:
    """Units a successful analysis with these actions costs (API.md §11).
    Raises ValidationError for an unknown, mixed or empty list."""
    return _core.cost(normalize(actions))


def tier_of(action: str) -> str:
    """"sd" or "hd"; ValidationError for an unknown name."""
    return "hd" if _core.action_tier(action) == _core.TIER_HD else "sd"


def counterpart(action: str) -> Optional[str]:
    """The same concern in the other tier, or None (the core's rule,
    sa_action_counterpart, which ``Result.get`` and Lua use too)."""
    return _core.action_counterpart(action) if isinstance(action, str) else None


def core_version() -> str:
    """The version of the C core compiled into the extension."""
    return _core.version()


__all__ = ["ALL_ACTIONS", "HD_ACTIONS", "SD_ACTIONS", "DEFAULT_ACTIONS", "cost",
           "tier_of", "counterpart", "normalize", "core_version"]

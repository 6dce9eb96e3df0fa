"""Before/after: ``Result.compare(other)`` gives a ``Comparison``.

The matching and the arithmetic are the core's (``sa_scores_compare``,
shared with Lua's ``result:compare``): per concern and region (SD and HD
names of one concern match each other), the ui and raw scores before and
after and their change (after - before; None when a side lacks it), the
overall score and the skin age.  Scores are higher when healthier, so a
positive change is an improvement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Optional

from ._native import _core


@dataclass(frozen=True)
class Change:
    """One concern and region before and after (None: not on that side)."""

    concern: str
    region: str
    before: Optional[float]        # ui score before
    after: Optional[float]         # ui score after
    ui_change: Optional[float]
    raw_before: Optional[float]
    raw_after: Optional[float]
    raw_change: Optional[float]
    skin_type_before: Optional[str]
    skin_type_after: Optional[str]
    in_before: bool
    in_after: bool

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _side(result: Any) -> tuple:
    return ([(s.concern, s.region, s.raw_score,
              None if s.ui_score is None else float(s.ui_score), s.skin_type)
             for s in result.scores], result.overall, result.skin_age)


class Comparison:
    """What changed between two results: ``changes`` (a Change per concern
    and region, in the later result's order, then those only in the
    earlier one), ``overall`` and ``skin_age`` (Changes whose ``before``
    / ``after`` / ``ui_change`` are the values).  In a notebook it shows
    as paired bars with the change marked; ``str()`` is a plain table."""

    def __init__(self, before: Any, after: Any) -> None:
        changes, overall, skin_age = _core.compare(_side(before), _side(after))
        self.before = before
        self.after = after
        self.changes: tuple[Change, ...] = tuple(Change(*c) for c in changes)
        self.overall = Change(*overall)
        self.skin_age = Change(*skin_age)

    def get(self, concern: str, region: str = "whole") -> Optional[Change]:
        """The change of a concern (SD or HD name) in a region, or None."""
        from . import actions as _actions
        names = {concern, _actions.counterpart(concern)}
        for ch in self.changes:
            if ch.concern in names and ch.region == region:
                return ch
        return None

    def __iter__(self) -> Iterator[Change]:
        return iter(self.changes)

    def __len__(self) -> int:
        return len(self.changes)

    def to_dict(self) -> dict:
        return {"overall": self.overall.to_dict(), "skin_age": self.skin_age.to_dict(),
                "changes": [c.to_dict() for c in self.changes]}

    def __str__(self) -> str:
        from .view import comparison_text
        return comparison_text(self)

    def __repr__(self) -> str:
        return ("Comparison(changes=%d, overall_change=%r, skin_age_change=%r)"
                % (len(self.changes), self.overall.ui_change, self.skin_age.ui_change))

    def _repr_html_(self) -> str:
        from .view import comparison_html
        return comparison_html(self)


__all__ = ["Change", "Comparison"]

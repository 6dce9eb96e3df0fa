"""The account: balance (``Credit``), price list (``Sku``), and the delete
that ``delete_after=True`` runs once a result is in hand (API.md 17.1)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Union

Number = Union[int, float]


@dataclass(frozen=True)
class CreditGrant:
    """One credit grant: its ``type`` ("ApiSubscription", "ApiPayAsYouGo",
    ...), the units left in it, and the entry as the API sent it (``raw``,
    a dict: its other fields, such as an expiry, are undocumented)."""

    type: str
    amount: Number
    raw: Any = field(default=None, compare=False)


@dataclass(frozen=True)
class Credit:
    """The key's balance.  ``available`` is what the API can spend: the sum
    of the grants whose type starts with "Api" (as the vendor's own client
    counts); ``by_type`` sums every grant per type."""

    available: Number
    by_type: Mapping[str, Number]
    grants: tuple[CreditGrant, ...] = ()

    @classmethod
    def _from_core(cls, data: dict) -> "Credit":
        grants = tuple(CreditGrant(g["type"], g["amount"], _raw(g["raw"]))
                       for g in data["grants"])
        return cls(available=data["available"], by_type=dict(data["by_type"]),
                   grants=grants)

    def covers(self, units: Number) -> bool:
        """True when the balance pays for ``units``."""
        return self.available >= units

    def to_dict(self) -> dict:
        return {"available": self.available, "by_type": dict(self.by_type),
                "grants": [{"type": g.type, "amount": g.amount, "raw": g.raw}
                           for g in self.grants]}


@dataclass(frozen=True)
class Sku:
    """One price list entry: ``amount`` units per ``proc_unit``;
    ``feature`` is what follows "/task/" in ``run_task_url``
    ("skin-analysis")."""

    description: str
    amount: Number
    unit: str
    proc_unit: str
    run_task_url: str
    feature: str
    raw: Any = field(default=None, compare=False)

    @classmethod
    def _from_core(cls, d: dict) -> "Sku":
        return cls(d["description"], d["amount"], d["unit"], d["proc_unit"],
                   d["run_task_url"], d["feature"], _raw(d["raw"]))


def _raw(text: Optional[str]) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return text


def price_list_from_core(data: dict) -> list[Sku]:
    return [Sku._from_core(d) for d in data["skus"]]


def mark_deleted(result: Any, error: Optional[BaseException]) -> Any:
    """Record on a Result what its delete_after delete did."""
    object.__setattr__(result, "_delete_tried", True)
    object.__setattr__(result, "_delete_error", error)
    return result


__all__ = ["Credit", "CreditGrant", "Sku"]

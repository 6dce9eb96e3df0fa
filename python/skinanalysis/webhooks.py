"""Webhook deliveries: ``verify_webhook`` and ``WebhookDelivery``.

The API can announce a task's end with a Standard Webhooks delivery (a
signed POST of ``{"created_at": ..., "data": {"task_id": ..., "task_status":
...}}``).  ``verify_webhook`` checks the signature and the timestamp in the
C core (HMAC-SHA256, constant-time compare) and returns the parsed delivery;
pass its ``task_id`` to ``Client.notify`` so the waiting job polls at once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Union

from ._native import _core

WebhookError = _core.WebhookError

#: The tolerance (seconds) of the webhook-timestamp either side of now.
DEFAULT_TOLERANCE = 300

_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


@dataclass(frozen=True)
class WebhookDelivery:
    """A verified delivery.  ``id`` is the webhook-id header (stable across
    retries: de-duplicate on it), ``timestamp`` the webhook-timestamp (Unix
    seconds), ``task_id`` / ``task_status`` ("success" or "error") and
    ``created_at`` come from the body, ``raw`` is the whole parsed body."""

    id: str
    timestamp: int
    task_id: Optional[str]
    task_status: Optional[str]
    created_at: Optional[int]
    raw: Any = field(default=None, compare=False, repr=False)


def _header(headers: Mapping[str, Any], name: str) -> str:
    """A header value by case-insensitive name; a list of values (as some
    frameworks give) counts by its first one."""
    value = headers.get(name)
    if value is None:
        wanted = name.lower()
        value = next((v for k, v in headers.items()
                      if isinstance(k, str) and k.lower() == wanted), None)
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(value, str) or not value:
        raise _error(_core.ERR_INVALID_ARGUMENT, "the %s header is missing" % name)
    return value


def _error(status: int, message: str) -> Exception:
    exc = _core.error_for(_core.ERR_WEBHOOK_SIGNATURE, message,
                          code=_core.status_name(status))
    exc.sa_status = status
    exc.status_name = _core.status_name(status)
    return exc


def _int_or_none(value: Any) -> Optional[int]:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def verify_webhook(secret: str, headers: Mapping[str, Any], body: Union[bytes, str], *,
                   tolerance: float = DEFAULT_TOLERANCE,
                   now: Optional[float] = None) -> WebhookDelivery:
    """Verify a webhook delivery and return it parsed.

    ``secret`` is the endpoint's ``whsec_...`` secret; ``headers`` a
    mapping of the request's headers (names looked up case-insensitively);
    ``body`` the raw request body exactly as received (a str is encoded as
    UTF-8; never re-serialise JSON before verifying).  ``tolerance`` bounds
    the timestamp's distance from ``now`` (Unix seconds, default the
    current time).  Raises WebhookError with ``code`` "webhook_signature"
    (no valid signature), "webhook_stale" (timestamp out of tolerance) or
    "invalid_argument" (malformed secret, header or body)."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    elif isinstance(body, (bytearray, memoryview)):
        body = bytes(body)
    elif not isinstance(body, bytes):
        raise TypeError("body must be bytes or str, not %s" % type(body).__name__)
    if not isinstance(secret, str) or not secret:
        raise _error(_core.ERR_INVALID_ARGUMENT, "the webhook secret is missing")
    msg_id, stamp, signature = (_header(headers, n) for n in _HEADERS)
    if tolerance <= 0:
        raise ValueError("tolerance must be positive (seconds)")
    _core.webhook_verify(secret, msg_id, stamp, signature, body,
                         tolerance_s=max(1, int(tolerance)),
                         now_s=0 if now is None else max(1, int(now)))
    try:
        raw = json.loads(body)
    except ValueError:
        raise _error(_core.ERR_INVALID_ARGUMENT,
                     "the signed webhook body is not JSON") from None
    try:
        timestamp = int(stamp)
    except ValueError:
        raise _error(_core.ERR_INVALID_ARGUMENT, "bad webhook-timestamp") from None
    data = raw.get("data") if isinstance(raw, dict) else None
    data = data if isinstance(data, dict) else {}
    task_id, task_status = data.get("task_id"), data.get("task_status")
    return WebhookDelivery(
        id=msg_id, timestamp=timestamp,
        task_id=task_id if isinstance(task_id, str) else None,
        task_status=task_status if isinstance(task_status, str) else None,
        created_at=_int_or_none(raw.get("created_at")) if isinstance(raw, dict) else None,
        raw=raw)


__all__ = ["WebhookDelivery", "WebhookError", "verify_webhook", "DEFAULT_TOLERANCE"]

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
    seconds), ``task_id`` (always a string: pass it to ``Client.notify``),
    ``task_status`` ("success" or "error", or None) and ``created_at`` (or
    None) come from the body as the core reads it, ``raw`` is the whole
    parsed body."""

    id: str
    timestamp: int
    task_id: str
    task_status: Optional[str]
    created_at: Optional[int]
    raw: Any = field(default=None, compare=False, repr=False)


def _error(status: int, message: str) -> Exception:
    exc = _core.error_for(_core.ERR_WEBHOOK_SIGNATURE, message,
                          code=_core.status_name(status))
    exc.sa_status = status
    exc.status_name = _core.status_name(status)
    return exc


def _text(value: str, what: str) -> str:
    """A str the core can take (UTF-8, no NUL), else WebhookError."""
    try:
        value.encode("utf-8")
    except UnicodeError:
        raise _error(_core.ERR_INVALID_ARGUMENT, "the %s is not text" % what) from None
    if "\0" in value:
        raise _error(_core.ERR_INVALID_ARGUMENT, "the %s holds a NUL" % what)
    return value


def _header(headers: Mapping[str, Any], name: str) -> str:
    """A header value by case-insensitive name; a list of values (as some
    frameworks give) counts by its first one."""
    try:
        value = headers.get(name)
        if value is None:
            wanted = name.lower()
            value = next((v for k, v in headers.items()
                          if isinstance(k, str) and k.lower() == wanted), None)
    except (AttributeError, TypeError):
        raise _error(_core.ERR_INVALID_ARGUMENT,
                     "headers must be a mapping of header names to values") from None
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(value, str) or not value:
        raise _error(_core.ERR_INVALID_ARGUMENT, "the %s header is missing" % name)
    return _text(value, name + " header")


def _seconds(value: float, what: str, upper: float) -> int:
    """A positive, finite number of seconds as an int (programmer input:
    ValueError otherwise)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not 0 < value <= upper:
        raise ValueError("%s must be a number of seconds in (0, %d]" % (what, upper))
    return max(1, int(value))


def verify_webhook(secret: str, headers: Mapping[str, Any], body: Union[bytes, str], *,
                   tolerance: float = DEFAULT_TOLERANCE,
                   now: Optional[float] = None) -> WebhookDelivery:
    """Verify a webhook delivery and return it parsed.

    ``secret`` is the endpoint's ``whsec_...`` secret; ``headers`` a
    mapping of the request's headers (names looked up case-insensitively);
    ``body`` the raw request body exactly as received (a str is encoded as
    UTF-8; never re-serialise JSON before verifying).  ``tolerance`` bounds
    the timestamp's distance from ``now`` (Unix seconds, default the
    current time).

    The contract (the core's, shared with Lua's ``verify_webhook``): a
    verified delivery is a task notification, whose ``task_id`` is always a
    string, or it is refused.  Whatever the secret, headers and body hold,
    a refusal is a WebhookError with ``code`` "webhook_signature" (no valid
    signature), "webhook_stale" (timestamp out of tolerance),
    "invalid_argument" (a malformed secret or header, headers that are no
    mapping), "protocol" (a validly signed body that is not a task
    notification: not UTF-8 JSON, no ``data.task_id`` string of id
    characters) or "limit" (a signed body over 64 KiB).  A body that is
    neither bytes nor str raises TypeError; a ``tolerance`` or ``now`` that
    is not a positive number of seconds, ValueError."""
    if isinstance(body, str):
        try:
            body = body.encode("utf-8")
        except UnicodeError:
            raise _error(_core.ERR_INVALID_ARGUMENT, "the body is not text") from None
    elif isinstance(body, (bytearray, memoryview)):
        body = bytes(body)
    elif not isinstance(body, bytes):
        raise TypeError("body must be bytes or str, not %s" % type(body).__name__)
    tolerance_s = _seconds(tolerance, "tolerance", 86400 * 365)
    now_s = 0 if now is None else _seconds(now, "now", 2.0 ** 62)
    if not isinstance(secret, str) or not secret:
        raise _error(_core.ERR_INVALID_ARGUMENT, "the webhook secret is missing")
    secret = _text(secret, "webhook secret")
    msg_id, stamp, signature = (_header(headers, n) for n in _HEADERS)
    _core.webhook_verify(secret, msg_id, stamp, signature, body,
                         tolerance_s=tolerance_s, now_s=now_s)
    task_id, task_status, created_at = _core.webhook_parse(body)
    try:
        # the core read it as UTF-8 JSON nested at most 32 deep
        raw = json.loads(body.decode("utf-8-sig"), strict=False)
    except (ValueError, RecursionError):
        raise _error(_core.ERR_PROTOCOL, "the signed webhook body is not JSON") from None
    return WebhookDelivery(id=msg_id, timestamp=int(stamp), task_id=task_id,
                           task_status=task_status, created_at=created_at, raw=raw)


__all__ = ["WebhookDelivery", "WebhookError", "verify_webhook", "DEFAULT_TOLERANCE"]

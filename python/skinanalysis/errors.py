"""The exception hierarchy of skinanalysis.

The classes are created by the extension (they live in its module state, and
the one mapping from the core's status codes to classes is in
bindings/python/module.c); this module re-exports them::

    Error
    +-- UsageError              closed client, result of a running job, ...
    +-- ValidationError         (also a ValueError) nothing was sent
    +-- ApiError                the API said no
    |   +-- AuthError           401
    |   +-- CreditError         400 CreditInsufficiency
    |   +-- BadRequestError     other 4xx
    |   +-- RateLimitError      429 after the retry budget
    |   +-- ServerError         5xx after the retry budget
    |   +-- UploadError         the storage host refused the upload
    |   +-- TaskExpiredError    400 "Invalid task ID"
    |   +-- TaskTimeoutError    500 "Task execution timed out" (server side)
    |   +-- AmbiguousTaskError  task create may have reached the server
    +-- EngineError             task_status "error"; .code is the engine code
    +-- ProtocolError           an answer that cannot be understood
    |   +-- LimitError          an answer over a configured limit
    |   +-- ZipError            a result zip is corrupt or has no score_info.json
    +-- TransportError          DNS, connect, TLS, reset
    |   +-- RequestTimeoutError (also a TimeoutError) one request too slow
    +-- DeadlineError           (also a TimeoutError) the job's deadline
    +-- WaitTimeout             (also a TimeoutError) a wait ran out; the job
    |                           still runs and can be waited on again
    +-- WaitInterrupted         Client.wakeup() ended a wait
    +-- CancelledError          cancelled, abandoned, or the client closed
    +-- DownloadError           a result/mask download failed
    |   +-- UrlExpiredError     refused as expired even after fresh URLs
    +-- ImageDecodeError        (also a ValueError) an image cannot be decoded
    +-- WebhookError            a webhook delivery failed verification; .code is
                                "webhook_signature", "webhook_stale" or
                                "invalid_argument"

Every instance has the attributes ``status`` (HTTP status or None), ``code``
(the API's error_code, or the engine code for EngineError), ``message``,
``task_id`` (when a task exists), ``status_name`` (the core's name of the
status, e.g. "engine"), ``sa_status`` (the core's negative code) and
``retryable``.  None of them ever contains the API key.
"""

from __future__ import annotations

from typing import Optional

from ._native import _core

Error = _core.Error
UsageError = _core.UsageError
ValidationError = _core.ValidationError
ApiError = _core.ApiError
AuthError = _core.AuthError
CreditError = _core.CreditError
BadRequestError = _core.BadRequestError
RateLimitError = _core.RateLimitError
ServerError = _core.ServerError
UploadError = _core.UploadError
TaskExpiredError = _core.TaskExpiredError
TaskTimeoutError = _core.TaskTimeoutError
AmbiguousTaskError = _core.AmbiguousTaskError
EngineError = _core.EngineError
ProtocolError = _core.ProtocolError
LimitError = _core.LimitError
TransportError = _core.TransportError
RequestTimeoutError = _core.RequestTimeoutError
DeadlineError = _core.DeadlineError
WaitTimeout = _core.WaitTimeout
WaitInterrupted = _core.WaitInterrupted
CancelledError = _core.CancelledError
ZipError = _core.ZipError
DownloadError = _core.DownloadError
UrlExpiredError = _core.UrlExpiredError
ImageDecodeError = _core.ImageDecodeError
WebhookError = _core.WebhookError


def error_for(status: int, message: Optional[str] = None, *,
              http_status: int = 0, code: Optional[str] = None,
              task_id: Optional[str] = None) -> Error:
    """The exception (not raised) for a core status code, built by the
    extension's one mapping (bindings/python/module.c)."""
    return _core.error_for(status, message, http_status=http_status, code=code,
                           task_id=task_id)


def describe(exc: BaseException) -> dict:
    """A JSON-friendly description of an exception (for batch output)."""
    out = {"type": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, Error):
        for name in ("status", "code", "task_id", "status_name"):
            value = getattr(exc, name, None)
            if value is not None:
                out[name] = value
    return out


__all__ = [
    "Error", "UsageError", "ValidationError", "ApiError", "AuthError",
    "CreditError", "BadRequestError", "RateLimitError", "ServerError",
    "UploadError", "TaskExpiredError", "TaskTimeoutError", "AmbiguousTaskError",
    "EngineError", "ProtocolError", "LimitError", "TransportError",
    "RequestTimeoutError", "DeadlineError", "WaitTimeout", "WaitInterrupted",
    "CancelledError", "ZipError", "DownloadError", "UrlExpiredError",
    "ImageDecodeError", "WebhookError", "error_for", "describe",
]

"""skinanalysis: a client for Perfect Corp's AI Skin Analysis API (v2.0, v2.1).

Quick start::

    import skinanalysis

    with skinanalysis.Client() as client:          # key from YOUCAM_API_KEY
        result = client.analyze("selfie.jpg")       # the 16 SD concerns
        print(result.overall, result.get("wrinkle").ui_score)

The protocol (uploads, task creation, polling, retries, rate limits, result
parsing) lives in the C core, compiled into ``skinanalysis._core``; this
package adds the Python side: ``Client`` (blocking), ``AsyncClient``
(asyncio), ``analyze_many`` (batches), typed results, the exception
hierarchy, webhook verification (``verify_webhook``) and the
``skinanalysis`` command line.  See docs/python.md.

The public names are loaded on first use, so ``skinanalysis.emulator`` (pure
standard library) imports even where the extension is not built.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

# name -> submodule that defines it
_EXPORTS = {
    "Client": "client",
    "Job": "client",
    "AsyncClient": "aio",
    "AsyncJob": "aio",
    "analyze_many": "batch",
    "ResumeTask": "batch",
    "Result": "results",
    "Score": "results",
    "Credit": "account",
    "CreditGrant": "account",
    "Sku": "account",
    "Comparison": "compare",
    "Change": "compare",
    "Report": "report",
    "SD_ACTIONS": "actions",
    "HD_ACTIONS": "actions",
    "ALL_ACTIONS": "actions",
    "DEFAULT_ACTIONS": "actions",
    "cost": "actions",
    "tier_of": "actions",
    "core_version": "actions",
    "Error": "errors",
    "UsageError": "errors",
    "ValidationError": "errors",
    "ApiError": "errors",
    "AuthError": "errors",
    "CreditError": "errors",
    "BadRequestError": "errors",
    "RateLimitError": "errors",
    "ServerError": "errors",
    "UploadError": "errors",
    "TaskExpiredError": "errors",
    "TaskTimeoutError": "errors",
    "AmbiguousTaskError": "errors",
    "EngineError": "errors",
    "ProtocolError": "errors",
    "LimitError": "errors",
    "TransportError": "errors",
    "RequestTimeoutError": "errors",
    "DeadlineError": "errors",
    "WaitTimeout": "errors",
    "WaitInterrupted": "errors",
    "CancelledError": "errors",
    "ZipError": "errors",
    "DownloadError": "errors",
    "UrlExpiredError": "errors",
    "ImageDecodeError": "errors",
    "WebhookError": "errors",
    "WebhookDelivery": "webhooks",
    "verify_webhook": "webhooks",
}

__all__ = sorted(_EXPORTS) + ["__version__"]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from .actions import (ALL_ACTIONS, DEFAULT_ACTIONS, HD_ACTIONS, SD_ACTIONS,
                          core_version, cost, tier_of)
    from .account import Credit, CreditGrant, Sku
    from .aio import AsyncClient, AsyncJob
    from .batch import ResumeTask, analyze_many
    from .client import Client, Job
    from .errors import (AmbiguousTaskError, ApiError, AuthError,
                         BadRequestError, CancelledError, CreditError,
                         DeadlineError, EngineError, Error, LimitError,
                         ProtocolError, RateLimitError, RequestTimeoutError,
                         ServerError, TaskExpiredError, TaskTimeoutError,
                         TransportError, UploadError, UsageError,
                         ValidationError, WaitInterrupted, WaitTimeout,
                         ZipError, DownloadError, UrlExpiredError,
                         ImageDecodeError, WebhookError)
    from .compare import Change, Comparison
    from .report import Report
    from .results import Result, Score
    from .webhooks import WebhookDelivery, verify_webhook


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError("module 'skinanalysis' has no attribute %r" % name)
    value = getattr(importlib.import_module("." + module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))

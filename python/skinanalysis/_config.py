"""Configuration from arguments or the environment, and the bridge from the
core's log hook to the ``logging`` module (logger "skinanalysis")."""

from __future__ import annotations

import logging
import math
import numbers
import os
from typing import Any, Optional, Union

from ._native import _core

logger = logging.getLogger("skinanalysis")

ENV_KEY = "YOUCAM_API_KEY"
ENV_BASE_URL = "SKINANALYSIS_BASE_URL"
#: Who shares the rate budget: "host" (default) or "process".
ENV_RATE_LIMIT_SCOPE = "SKINANALYSIS_RATE_LIMIT_SCOPE"
#: The documented API host (the core's default base URL).
DEFAULT_BASE_URL = "https://yce-api-01.makeupar.com"

_TO_LOGGING = {_core.LOG_DEBUG: logging.DEBUG, _core.LOG_INFO: logging.INFO,
               _core.LOG_WARNING: logging.WARNING, _core.LOG_ERROR: logging.ERROR}


def core_log(level: int, message: str) -> None:
    """The core's log hook: its lines are already redacted (no key, no query
    strings of pre-signed URLs)."""
    logger.log(_TO_LOGGING.get(level, logging.INFO), "%s", message)


def core_log_level() -> int:
    """The core's minimum level from the logger's effective level at client
    creation (so DEBUG lines cost nothing unless asked for)."""
    level = logger.getEffectiveLevel()
    if level <= logging.DEBUG:
        return _core.LOG_DEBUG
    if level <= logging.INFO:
        return _core.LOG_INFO
    if level <= logging.WARNING:
        return _core.LOG_WARNING
    return _core.LOG_ERROR


def resolve_key(api_key: Optional[str]) -> Optional[str]:
    return api_key if api_key is not None else os.environ.get(ENV_KEY) or None


def resolve_base_url(base_url: Optional[str]) -> Optional[str]:
    return base_url if base_url is not None else os.environ.get(ENV_BASE_URL) or None


def api_version(version: Union[str, int, float, None]) -> int:
    """20 or 21 from "2.0"/"2.1"/"v2.1"/2.1/21; 0 (the client's) for None."""
    if version is None:
        return _core.API_DEFAULT
    text = str(version).strip().lower().lstrip("v")
    codes = {"2.0": _core.API_V2_0, "20": _core.API_V2_0,
             "2.1": _core.API_V2_1, "21": _core.API_V2_1}
    if text not in codes:
        raise _core.error_for(_core.ERR_BAD_OPTION,
                              "version must be '2.0' or '2.1', not %r" % (version,))
    return codes[text]


def version_text(code: int) -> str:
    return "2.0" if code == _core.API_V2_0 else "2.1"


def upload_path(path: Union[str, int, None]) -> Optional[int]:
    if path is None:
        return None
    if path in ("skin-analysis", _core.UPLOAD_SKIN_ANALYSIS):
        return _core.UPLOAD_SKIN_ANALYSIS
    if path in ("generic", _core.UPLOAD_GENERIC):
        return _core.UPLOAD_GENERIC
    raise _core.error_for(_core.ERR_BAD_OPTION,
                          "upload_path must be 'skin-analysis' or 'generic'")


def _choice(what: str, value: Any, codes: tuple[tuple[str, int], ...]) -> int:
    """The core's code of value, one of the names of codes ((name, code),
    ...); else ERR_BAD_OPTION: what must be one of them."""
    for name, code in codes:
        if value == name:
            return code
    raise _core.error_for(_core.ERR_BAD_OPTION, "%s must be %s, not %r" % (
        what, " or ".join(repr(name) for name, _ in codes), value))


def poll_strategy(name: Optional[str]) -> Optional[int]:
    """"learned" (the default) or "fixed", as the core's code."""
    if name is None:
        return None
    return _choice("poll_strategy", name,
                   (("learned", _core.POLL_LEARNED), ("fixed", _core.POLL_FIXED)))


def format_code(fmt: str) -> int:
    return _choice("format", fmt, (("json", _core.FORMAT_JSON), ("zip", _core.FORMAT_ZIP)))


def ms(seconds: Optional[float], *, positive: bool = False,
       what: str = "timeout") -> Optional[int]:
    """Seconds (a number) to whole milliseconds; None stays None.

    A value the core cannot take as it was meant raises ValueError rather
    than turning into something else: negative, NaN or infinite seconds,
    or a positive value below the core's 1 ms resolution (which would
    become 0: "no wait", or "the default" for a job deadline); with
    ``positive`` (durations of options and deadlines) 0 too.  A value
    that is no number raises TypeError."""
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, numbers.Real):
        raise TypeError("%s must be a number of seconds, not %s"
                        % (what, type(seconds).__name__))
    value = float(seconds)
    if not math.isfinite(value) or value < 0:
        raise ValueError("%s must be a finite number of seconds >= 0, not %r"
                         % (what, seconds))
    if value == 0 and positive:
        raise ValueError("%s must be more than 0 seconds" % what)
    if 0 < value < 0.001:
        raise ValueError("%s of %r s is below the 1 ms resolution" % (what, seconds))
    return int(round(value * 1000))


def core_options(*, base_url: Optional[str], version: Any, upload_path_: Any,
                 timeout: Optional[float], connect_timeout: Optional[float],
                 upload_timeout: Optional[float], poll_interval: Optional[float],
                 max_poll_interval: Optional[float], deadline: Optional[float],
                 max_polls: Optional[int], max_retries: Optional[int],
                 rate_limit: Optional[bool], max_connections: Optional[int],
                 max_jobs: Optional[int], allow_insecure_http: Optional[bool],
                 ca_bundle: Optional[str], proxy: Optional[str],
                 user_agent: Optional[str], extra: dict,
                 poll_strategy_: Optional[str] = None,
                 webhooks: Optional[bool] = None) -> dict:
    """Keyword arguments for ``_core.Client`` (None keeps the core default)."""
    opts = {
        "base_url": base_url,
        "api_version": api_version(version) or None,
        "upload_path": upload_path(upload_path_),
        "request_timeout_ms": ms(timeout, positive=True, what="timeout"),
        "connect_timeout_ms": ms(connect_timeout, positive=True, what="connect_timeout"),
        "upload_timeout_ms": ms(upload_timeout, positive=True, what="upload_timeout"),
        "poll_interval_ms": ms(poll_interval, positive=True, what="poll_interval"),
        "max_poll_interval_ms": ms(max_poll_interval, positive=True,
                                   what="max_poll_interval"),
        "job_deadline_ms": ms(deadline, positive=True, what="deadline"),
        "max_polls": max_polls,
        "max_retries": max_retries,
        "rate_limit": rate_limit,
        "max_connections": max_connections,
        "max_jobs": max_jobs,
        "allow_insecure_http": allow_insecure_http,
        "ca_bundle": ca_bundle,
        "proxy": proxy,
        "user_agent": user_agent,
        "poll_strategy": poll_strategy(poll_strategy_),
        "webhooks": webhooks,
        "log": core_log,
        "log_level": core_log_level(),
    }
    for name in extra:
        if name in opts or name in ("api_key",):
            raise TypeError("option %r is set through its own argument" % name)
    opts.update(extra)
    if opts.get("rate_limit_scope") is None:
        opts["rate_limit_scope"] = os.environ.get(ENV_RATE_LIMIT_SCOPE) or None
    return opts


def redacted(key: Optional[str]) -> str:
    """How a key appears in a repr: never any of its characters."""
    return "None" if key is None else "'***'"

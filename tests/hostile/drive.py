#!/usr/bin/env python3
"""tests/hostile/drive.py - one analysis through the Python package.

    YOUCAM_API_KEY=... python drive.py BASE_URL [name=value ...]

Options (seconds for times): image, actions (comma list), format (json|zip),
version (2.0|2.1), timeout (per API request), connect_timeout,
upload_timeout, poll_interval, max_poll_interval, deadline, backoff_initial,
backoff_max, max_retries, wait (how long to wait for the job), masks (a
folder: save the masks there with result.save_masks).

Logs every line of the library at debug level to stderr, and prints one
JSON line on stdout: the outcome ("ok" or the core's status name), the
message, the job's details, repr/str of the exception and its attributes,
the scores, the mask files written.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def parse(argv: list) -> tuple[str, dict]:
    url, opts = argv[0], {}
    for a in argv[1:]:
        k, _, v = a.partition("=")
        opts[k] = v
    return url, opts


def exc_info(exc: BaseException) -> dict:
    attrs = {}
    for name in dir(exc):
        if name.startswith("_") or name in ("args", "with_traceback", "add_note"):
            continue
        try:
            value = getattr(exc, name)
        except Exception as e:  # noqa: BLE001 - report, never crash
            value = "<getattr raised %r>" % (e,)
        if callable(value):
            continue
        attrs[name] = value if isinstance(value, (str, int, float, bool, type(None))) \
            else repr(value)
    return {"exc_type": type(exc).__name__, "repr": repr(exc), "str": str(exc),
            "args": [repr(a) for a in exc.args], "attrs": attrs,
            "mro": [c.__name__ for c in type(exc).__mro__]}


def main() -> int:
    url, o = parse(sys.argv[1:])
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    # The package from the source tree when its extension was built in place
    # (as tests/python does), else the installed one.
    pydir = os.path.join(ROOT, "python")
    if glob.glob(os.path.join(pydir, "skinanalysis", "_core*.so")):
        sys.path.insert(0, pydir)
    import skinanalysis as sa

    def sec(name: str):
        return float(o[name]) if name in o else None

    out: dict = {"lang": "python", "ok": False, "outcome": None, "stage": "client"}
    t0 = time.monotonic()
    core_opts = {}
    if "backoff_initial" in o:
        core_opts["backoff_initial_ms"] = int(float(o["backoff_initial"]) * 1000)
    if "backoff_max" in o:
        core_opts["backoff_max_ms"] = int(float(o["backoff_max"]) * 1000)
    client = job = None
    try:
        client = sa.Client(base_url=url, version=o.get("version", "2.1"),
                           timeout=sec("timeout"), connect_timeout=sec("connect_timeout"),
                           upload_timeout=sec("upload_timeout"),
                           poll_interval=sec("poll_interval"),
                           max_poll_interval=sec("max_poll_interval"),
                           deadline=sec("deadline"),
                           max_retries=int(o["max_retries"]) if "max_retries" in o else None,
                           close_timeout=float(o.get("close_timeout", 2)), **core_opts)
        out["client_repr"] = repr(client)
        out["stage"] = "submit"
        job = client.submit(o.get("image", os.path.join(ROOT, "tests/fixtures/portrait_sd.jpg")),
                            o.get("actions", "wrinkle,pore").split(","),
                            format=o.get("format", "json"))
        out["stage"] = "analyze"
        result = job.wait(sec("wait"))
        out["ok"] = True
        out["outcome"] = "ok"
        out["scores"] = [{"concern": s.concern, "region": s.region,
                          "skin_type": s.skin_type, "ui_score": s.ui_score,
                          "mask_urls": list(s.mask_urls or ())} for s in result.scores]
        out["result_repr"] = repr(result)
        out["result_raw"] = result.raw
        out["result_task_id"] = result.task_id
        if "masks" in o:
            out["stage"] = "masks"
            try:
                paths = result.save_masks(o["masks"])
                out["masks_outcome"] = "ok"
                out["files"] = [str(p) for p in paths]
            except sa.Error as exc:
                out["masks_outcome"] = exc.status_name
                out["masks_error"] = exc_info(exc)
    except sa.Error as exc:
        out["outcome"] = getattr(exc, "status_name", None) or type(exc).__name__
        out["message"] = getattr(exc, "message", None)
        out.update(exc_info(exc))
    except Exception as exc:  # noqa: BLE001 - anything else is a finding
        out["outcome"] = "python:" + type(exc).__name__
        out.update(exc_info(exc))
    if job is not None:
        for name in ("task_id", "file_id", "request_id", "polls", "status"):
            try:
                out[name] = getattr(job, name)
            except Exception as exc:  # noqa: BLE001
                out[name] = "<%r>" % (exc,)
        out["job_repr"] = repr(job)
    out["elapsed"] = round(time.monotonic() - t0, 3)
    if client is not None:
        try:
            client.close(timeout=float(o.get("close_timeout", 2)))
        except Exception as exc:  # noqa: BLE001
            out["close_error"] = repr(exc)
    print(json.dumps(out, default=repr), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

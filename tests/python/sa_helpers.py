"""Shared constants and helpers of the skinanalysis package tests (a module
of its own: tests/emulator has a conftest.py too)."""

import os
import threading
import time

import skinanalysis

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(REPO, "tests", "fixtures")
SD_IMAGE = os.path.join(FIXTURES, "portrait_sd.jpg")
HD_IMAGE = os.path.join(FIXTURES, "portrait_hd.jpg")
PNG_IMAGE = os.path.join(FIXTURES, "portrait.png")
SMALL_IMAGE = os.path.join(FIXTURES, "small.jpg")
NOT_IMAGE = os.path.join(FIXTURES, "not_an_image.jpg")

#: A key that is easy to search for in logs, messages and reprs.
SECRET_KEY = "sk-TEST-7f3a9c1e5b2d4f6a8c0e"

#: Client options that keep the tests fast: short polls and backoffs, and a
#: long rate window big enough for polling every 50 ms (with the API's 250
#: per 300 s, the core admits one job at a time when polls may be 0.5 s
#: apart; the rate-limit tests use the real windows).
FAST = dict(poll_interval=0.05, max_poll_interval=0.5, backoff_initial_ms=20,
            backoff_max_ms=100, close_timeout=10.0, rate_window_max=20000)


def python_path_env():
    """Environment for a subprocess (CLI, notebook kernel) that imports the
    same skinanalysis as this process."""
    env = dict(os.environ)
    src = os.path.dirname(os.path.dirname(os.path.abspath(skinanalysis.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    return env


def wait_until(predicate, timeout=5.0, interval=0.02):
    """Poll ``predicate`` until it is true; bounded."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def polled(emu, count=1):
    """A predicate: the emulator has answered ``count`` status polls (so a
    client that drives only inside its blocking calls is inside one)."""
    return lambda: sum(r["endpoint"] == "task_status" for r in emu.log) >= count


def then(*steps, timeout=30.0):
    """Run ``(predicate, action)`` steps in order on a daemon thread: each
    action once its predicate holds (bounded by ``timeout``). Returns the
    thread; ``thread.fired`` lists the monotonic time of each action, and
    ``thread.missed`` names a predicate that never held."""
    def run():
        for predicate, action in steps:
            if not wait_until(predicate, timeout):
                t.missed = getattr(predicate, "__name__", repr(predicate))
                return
            t.fired.append(time.monotonic())
            action()

    t = threading.Thread(target=run, daemon=True)
    t.fired, t.missed = [], None
    t.start()
    return t


def tasks_polled_to_end(emu):
    """(created task ids, ids whose final state no status call reported)."""
    with emu.state.lock:
        tasks = dict(emu.state.tasks)
        unseen = [tid for tid, t in tasks.items() if not t.terminal_seen]
    return list(tasks), unseen


def api_requests(emu):
    """Logged requests to the API host (not storage or result downloads)."""
    return [r for r in emu.log if r["path"].startswith("/s2s/")]

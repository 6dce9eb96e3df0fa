"""poll_strategy ("learned" / "fixed") and webhooks (issue 15): the options
reach the core, and against the emulator both strategies keep the hard rules
(no running task unpolled longer than max_poll_interval, by the server's own
poll times in GET /_control/tasks; no 429 at the default rate limits; no
expired task), while the learned planner finds the end of a task sooner."""

import json
import statistics
import urllib.request

import pytest

import skinanalysis

from .sa_helpers import SD_IMAGE


def _tasks(emu):
    with urllib.request.urlopen(emu.base_url + "/_control/tasks", timeout=5) as resp:
        return json.load(resp)["tasks"]


def test_options_reach_the_core():
    for bad in ("smart", "", "Fixed"):
        with pytest.raises(skinanalysis.ValidationError, match="poll_strategy"):
            skinanalysis.Client("k", base_url="http://127.0.0.1:9", poll_strategy=bad)
    for strategy in ("learned", "fixed"):
        for webhooks in (False, True):
            with skinanalysis.Client("k", base_url="http://127.0.0.1:9",
                                     poll_strategy=strategy, webhooks=webhooks):
                pass


def _run(make_emulator, strategy, n, task_seconds, **client_options):
    """n analyses one after the other; the emulator's view of each task."""
    emu = make_emulator(task_seconds=task_seconds, seed=5, rate_limit=True)
    opts = dict(poll_interval=0.4, max_poll_interval=1.0, close_timeout=10.0)
    opts.update(client_options)
    with skinanalysis.Client(emu.api_key, base_url=emu.base_url,
                             poll_strategy=strategy, **opts) as client:
        for _ in range(n):
            client.submit(SD_IMAGE, ["pore"]).wait(30)
    counters = emu.counters
    return _tasks(emu), counters


def _gaps(task):
    """Gaps (s) between the creation and the polls up to the first final
    answer: the time the task went unpolled while it (as far as the client
    knew) still ran."""
    times = [task["created_at"]] + [t for t in task["poll_times"]
                                    if t <= task["seen_done_at"]]
    return [b - a for a, b in zip(times, times[1:])]


@pytest.mark.parametrize("strategy", ["fixed", "learned"])
def test_hard_rules_hold(make_emulator, strategy):
    tasks, counters = _run(make_emulator, strategy, 10, "0.4:1.6")
    assert len(tasks) == 10
    assert counters["rate_limited"] == 0
    assert counters["tasks_expired"] == 0
    for t in tasks:
        assert t["status"] == "success" and t["seen_done_at"] is not None
        # max_poll_interval is 1 s (a few ms for the server's clock)
        assert max(_gaps(t)) <= 1.0 + 0.03, (strategy, _gaps(t))
        # never polled faster than the 200 ms floor
        assert min(_gaps(t)) >= 0.19 or len(_gaps(t)) == 1


def test_learned_finds_the_end_sooner(make_emulator):
    """Every task runs 1 s: fixed polls at 0.4, 0.8, 1.2 s (seen 0.2 s late);
    the learned planner, once warm, polls just after 1 s."""
    delays = {}
    for strategy in ("fixed", "learned"):
        tasks, counters = _run(make_emulator, strategy, 10, 1.0)
        assert counters["rate_limited"] == 0
        warm = sorted(tasks, key=lambda t: t["created_at"])[5:]
        delays[strategy] = statistics.median(t["seen_done_at"] - t["done_at"]
                                             for t in warm)
    assert delays["fixed"] > 0.15
    # quiet: learned 10-30 ms against fixed ~200 ms; on a loaded 2-core
    # machine learned was once 106 ms (fixed 204): the test asks for a
    # clear win, the figures are bench/run part 7's
    assert delays["learned"] < delays["fixed"] * 0.75, delays


def test_webhooks_mode_waits_for_notify(make_emulator):
    """webhooks=True: the task is not polled at poll_interval; notify polls
    it at once."""
    emu = make_emulator(task_seconds=0.2)
    with skinanalysis.Client(emu.api_key, base_url=emu.base_url, poll_interval=0.1,
                             max_poll_interval=10.0, webhooks=True,
                             close_timeout=10.0) as client:
        job = client.submit(SD_IMAGE, ["pore"])
        with pytest.raises(skinanalysis.Error):
            job.wait(0.8)          # no poll yet: the job cannot be done
        (task,) = _tasks(emu)
        assert task["polls"] == 0 and task["done_at"] is not None
        assert client.notify(job.task_id) == 1
        job.wait(5)
        (task,) = _tasks(emu)
        assert task["polls"] == 1

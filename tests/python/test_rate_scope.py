"""rate_limit_scope: one rate budget per key shared by processes (issue 14).

The fleet test runs 8 worker processes on one key against an emulator with
the API's 5 requests/s (its long window and the clients' told the same,
larger, limit so that a test-sized run is bound by the per-second window):
no 429, every analysis done once, the requests' span within 10 % of the
floor (API requests / 5 per s; the whole run's time is bench/run's figure).  bench/run's "rate scope" part runs the full
8 x 20 with the default limits.
"""

import os
import signal
import subprocess
import sys
import time

import pytest

import skinanalysis
from skinanalysis.emulator import Emulator

from .sa_helpers import SD_IMAGE, python_path_env, wait_until

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rate_scope_worker  # noqa: E402
import redis_helper  # noqa: E402

needs_redis = pytest.mark.skipif(not redis_helper.available(),
                                 reason="redis-server not installed (scripts/setup installs it)")


@pytest.fixture
def redis():
    with redis_helper.RedisServer() as r:
        yield r


def test_scope_values_are_checked_at_creation():
    for bad in ("bogus", "Host", "", "redis", "redis://", "redis://h", "redis://h:0",
                "redis://h:99999", "redis://h:6379/x", "redis://a b:1", "http://h:1"):
        with pytest.raises(skinanalysis.UsageError, match="rate_limit_scope"):
            skinanalysis.Client("k", base_url="http://127.0.0.1:9", rate_limit_scope=bad)
    for good in ("host", "process", None, "redis://127.0.0.1:9", "redis://localhost:9/2"):
        skinanalysis.Client("k", base_url="http://127.0.0.1:9",
                            rate_limit_scope=good).close()


def test_scope_from_the_environment():
    code = ("import skinanalysis\n"
            "try:\n"
            "    skinanalysis.Client('k', base_url='http://127.0.0.1:9')\n"
            "except skinanalysis.UsageError as e:\n"
            "    print('refused', e)\n")
    env = python_path_env()
    env["SKINANALYSIS_RATE_LIMIT_SCOPE"] = "fleet"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=60)
    assert "refused" in out.stdout and "rate_limit_scope" in out.stdout
    env["SKINANALYSIS_RATE_LIMIT_SCOPE"] = "process"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and "refused" not in out.stdout


def test_host_budget_file_never_holds_the_key(tmp_path):
    key = "sk-SCOPE-secret-1234567890"
    with skinanalysis.Client(key, base_url="http://127.0.0.1:9", rate_limit_scope="host"):
        names = [n for n in os.listdir("/dev/shm") if n.startswith("skinanalysis-budget-")]
        assert names, "no shared budget file"
        for n in names:
            assert key not in n
            path = os.path.join("/dev/shm", n)
            assert os.stat(path).st_mode & 0o777 == 0o600
            with open(path, "rb") as f:
                assert key.encode() not in f.read()


FLEET_WINDOW = 2000   # long window of the emulator and the clients alike


FLEET_OPTS = dict(poll_interval=0.2, rate_window_max=FLEET_WINDOW, rate_window_ms=300000)


def check_fleet(fig, n):
    print({k: v for k, v in fig.items() if k != "task_ids"})
    assert fig["ok"] == n, fig["failed"]
    assert fig["tasks_created"] == n and not fig["tasks_unpolled"]
    assert len(set(fig["task_ids"])) == n


@pytest.mark.parametrize("scope", ["host", pytest.param("redis", marks=needs_redis)])
def test_fleet_shares_one_budget(scope, request):
    url = request.getfixturevalue("redis").url if scope == "redis" else scope
    with Emulator(task_seconds=0.3, rate_limit=True, rate_window_max=FLEET_WINDOW) as emu:
        fig = rate_scope_worker.run_fleet(emu, url, 8, 6, FLEET_OPTS, SD_IMAGE,
                                          env=python_path_env())
    check_fleet(fig, 48)
    assert fig["responses_429"] == 0
    # The figure (the whole run within 10 % of the floor) is the
    # benchmark's to show: bench/run --parts 6 prints time / floor beside
    # the "process" scope (1.05-1.06 measured; BENCHMARKS.md).  A test on
    # a loaded machine only catches a budget that wastes the rate grossly
    # (1.06-1.09 quiet, 1.24 once beside a benchmark on 2 cores).
    assert fig["ratio"] <= 1.6, fig


@needs_redis
def test_redis_killed_and_restarted_mid_run(redis):
    """Redis goes away after the first 30 API requests and comes back 40
    requests later (on the same port, empty): every analysis still ends
    once, no task is created twice or left unpolled; the clients said how
    many they are (rate_limit_fleet_size=8), so their shares add up to 4/5
    of the key's rate meanwhile.  Half the workers are stopped for 1.5 s
    as Redis goes away (a loaded machine's late processes): they see the
    kill late, so their reconnect backoffs run out of phase with the
    others' and after the restart some clients are back on Redis while
    others of the machine are still in fallback."""
    events = []

    def api_count(emu):
        return sum(1 for r in emu.log if r["path"].startswith("/s2s/"))

    def kill_and_restart(emu, pids):
        assert wait_until(lambda: api_count(emu) >= 30, timeout=60, interval=0.05)
        late = pids[:len(pids) // 2]
        for pid in late:
            os.kill(pid, signal.SIGSTOP)
        try:
            redis.stop()
            events.append(("killed", api_count(emu)))
            time.sleep(1.5)   # what is simulated is the delay itself
        finally:
            for pid in late:
                os.kill(pid, signal.SIGCONT)
        assert wait_until(lambda: api_count(emu) >= 70, timeout=60, interval=0.05)
        redis.start()
        events.append(("restarted", api_count(emu)))

    opts = dict(FLEET_OPTS, rate_limit_fleet_size=8)
    # the emulator counts 5 per 0.75 s, as test_batch's: on a loaded
    # machine it stamps the requests it handles late bunched together
    with Emulator(task_seconds=0.3, rate_limit=True, rate_window_max=FLEET_WINDOW,
                  rate_qps_seconds=0.75) as emu:
        fig = rate_scope_worker.run_fleet(emu, redis.url, 8, 4, opts, SD_IMAGE,
                                          env=python_path_env(), during=kill_and_restart,
                                          during_pids=True)
    print(events)
    assert [e[0] for e in events] == ["killed", "restarted"]
    check_fleet(fig, 32)
    # each switch holds sends for a second, the clients of this machine
    # pace their shares together while Redis is away (bench/run part 6
    # redis-restart: 12 x 429 before the pacer, 0 with it), and those back
    # on Redis pace with them while any is still away (without that, this
    # test met 1 x 429 in 4 of 6 runs, and 6 requests in 0.29-0.92 s in 8
    # of 10 runs of it with a 1 s window; with it 0 in 10, 5 of them beside
    # stress-ng, never 6 requests in less than 1.04 s)
    assert fig["responses_429"] == 0, fig
    # the fleet used Redis again after the restart
    assert b"skinanalysis:budget:" in redis.command("KEYS", "*")


@needs_redis
def test_redis_scope_under_event_hooks(redis):
    """AsyncClient drives the core through its event hooks: the Redis
    answers are read with every step, the 2 ms timer brings the loop back
    while one is awaited; 8 analyses go at 5/s with no 429."""
    import asyncio

    async def run(emu):
        async with skinanalysis.AsyncClient(emu.api_key, base_url=emu.base_url,
                                            rate_limit_scope=redis.url,
                                            poll_interval=0.2) as c:
            return await asyncio.gather(*[c.analyze(SD_IMAGE) for _ in range(8)])

    with Emulator(task_seconds=0.3, rate_limit=True) as emu:
        results = asyncio.run(run(emu))
        n = sum(1 for r in emu.log if r["path"].startswith("/s2s/"))
        assert emu.counters.get("responses_429", 0) == 0
    assert len({r.task_id for r in results}) == 8
    assert n > 16
    assert b"skinanalysis:budget:" in redis.command("KEYS", "*")

"""rate_limit_scope: one rate budget per key shared by processes (issue 14).

The fleet test runs 8 worker processes on one key against an emulator with
the API's 5 requests/s (its long window and the clients' told the same,
larger, limit so that a test-sized run is bound by the per-second window):
no 429, every analysis done once, total time within 10 % of the floor
(API requests / 5 per s).  bench/run's "rate scope" part runs the full
8 x 20 with the default limits.
"""

import os
import subprocess
import sys

import pytest

import skinanalysis
from skinanalysis.emulator import Emulator

from .sa_helpers import SD_IMAGE, python_path_env

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rate_scope_worker  # noqa: E402


def test_scope_values_are_checked_at_creation():
    for bad in ("bogus", "Host", "", "redis"):
        with pytest.raises(skinanalysis.UsageError, match="rate_limit_scope"):
            skinanalysis.Client("k", base_url="http://127.0.0.1:9", rate_limit_scope=bad)
    for good in ("host", "process", None):
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


@pytest.mark.parametrize("scope", ["host"])
def test_fleet_shares_one_budget(scope):
    opts = dict(poll_interval=0.2, rate_window_max=FLEET_WINDOW,
                rate_window_ms=300000)
    with Emulator(task_seconds=0.3, rate_limit=True, rate_window_max=FLEET_WINDOW) as emu:
        fig = rate_scope_worker.run_fleet(emu, scope, 8, 4, opts, SD_IMAGE,
                                          env=python_path_env())
    print({k: v for k, v in fig.items() if k != "task_ids"})
    assert fig["responses_429"] == 0
    assert fig["ok"] == 32, fig["failed"]
    assert fig["tasks_created"] == 32 and not fig["tasks_unpolled"]
    assert len(set(fig["task_ids"])) == 32
    assert fig["ratio"] <= 1.10, fig

"""Task durations drawn from a range (--task-seconds MIN:MAX, --seed) and
GET /_control/tasks: created_at, done_at, seen_done_at, polls (issue 15)."""

import time

import pytest
import requests

import emulator
from emulator import config as emuconfig
from conftest import Api

SD = ["wrinkle", "pore", "texture", "acne"]


def test_task_seconds_parsing():
    assert emuconfig.parse_task_seconds(3) == 3.0
    assert emuconfig.parse_task_seconds("2.5") == 2.5
    assert emuconfig.parse_task_seconds("3:8") == (3.0, 8.0)
    assert emuconfig.parse_task_seconds((1, 1)) == (1.0, 1.0)
    for bad in ("8:3", "-1", "a:b", (1, 2, 3), -2, "1:", True):
        with pytest.raises(ValueError):
            emuconfig.parse_task_seconds(bad)


def test_cli_flags():
    cfg = emuconfig.config_from_args(["--task-seconds", "3:8", "--seed", "7"])
    assert cfg.task_seconds == (3.0, 8.0) and cfg.seed == 7
    assert cfg.task_seconds_range() == (3.0, 8.0)
    cfg = emuconfig.config_from_args(["--task-seconds", "4"])
    assert cfg.task_seconds == 4.0 and cfg.task_seconds_range() == (4.0, 4.0)
    assert cfg.seed is None


def _durations(seed, n=40):
    cfg = emulator.Config(task_seconds="3:8", seed=seed)
    from emulator.state import State
    state = State(cfg)
    return [state.task_seconds() for _ in range(n)]


def test_draws_uniform_in_range_and_repeatable():
    a = _durations(11)
    assert a == _durations(11)           # same seed, same durations
    assert a != _durations(12)
    assert all(3.0 <= d <= 8.0 for d in a)
    assert min(a) < 4.5 and max(a) > 6.5  # spread over the range, not a constant


def _task(emu, task_id):
    tasks = requests.get(emu.base_url + "/_control/tasks", timeout=5).json()["tasks"]
    (t,) = [t for t in tasks if t["task_id"] == task_id]
    return t


def _started_task(make_emu, spec, sd_jpeg, task_seconds, seed):
    """An emulator on the test clock and one SD task created on it: (emu, api, task_id)."""
    emu = make_emu(task_seconds=task_seconds, seed=seed, test_clock=True)
    api = Api(emu, spec)
    file_id = api.upload(sd_jpeg)
    _, body = api.create_task({"src_file_id": file_id, "dst_actions": SD})
    return emu, api, body["data"]["task_id"]


def test_control_tasks_times(make_emu, spec, sd_jpeg):
    # the test clock: times are the emulator clock's, moved only by advancing
    emu, api, task_id = _started_task(make_emu, spec, sd_jpeg, "0.3:0.6", seed=3)
    created = _task(emu, task_id)["created_at"]
    assert created == emu.clock.monotonic()
    emu.clock.advance(0.25)               # before the shortest end: running
    assert api.status(task_id)[1]["data"]["task_status"] == "running"
    emu.clock.advance(0.1)                # moved without settling (no sweep)
    assert api.status(task_id)[1]["data"]["task_status"] in ("running", "success")
    emu.clock.advance(0.3)                # past the longest end
    assert api.status(task_id)[1]["data"]["task_status"] == "success"
    emu.clock.advance(0.05)
    api.status(task_id)                   # a poll after the final one
    t = _task(emu, task_id)
    assert t["created_at"] == created
    assert 0.3 - 1e-6 <= t["done_at"] - t["created_at"] <= 0.6 + 1e-6
    # first final answer, not the later poll
    assert t["done_at"] <= t["seen_done_at"] < t["poll_times"][-1]
    assert t["seen_done_at"] == t["poll_times"][-2]
    assert t["polls"] == len(t["poll_times"]) == 4
    assert t["poll_times"][0] == created + 0.25  # the first poll saw it running
    assert t["poll_times"][0] < t["done_at"]


def test_advance_settles_unpolled_task(make_emu, spec, sd_jpeg):
    # test clock: advancing past a task's end ends it without any poll
    # (the sweeper does not wait on the real clock)
    emu, _, task_id = _started_task(make_emu, spec, sd_jpeg, "2:3", seed=5)
    emu.advance_clock(1.9)
    t = _task(emu, task_id)
    assert t["done_at"] is None and t["status"] == "running"
    emu.advance_clock(1.2)
    t = _task(emu, task_id)
    assert t["status"] == "success" and t["polls"] == 0
    assert 2.0 - 1e-6 <= t["done_at"] - t["created_at"] <= 3.0 + 1e-6
    assert t["seen_done_at"] is None


def test_sweeper_wakes_at_task_end(make_emu, spec, sd_jpeg):
    # real clock: the sweeper sleeps until the next task end (not the plain
    # 0.2 s period), so an unpolled task ends, and its webhook leaves, on time
    from emulator.server import SWEEP_SECONDS, _sweep
    emu = make_emu(task_seconds=0.1)
    state = emu.app.state
    assert _sweep(state) == SWEEP_SECONDS          # nothing running
    api = Api(emu, spec)
    file_id = api.upload(sd_jpeg)
    _, body = api.create_task({"src_file_id": file_id, "dst_actions": SD})
    assert _sweep(state) <= 0.101                  # wakes at its end
    emu.clock.set_test(True)                       # stopped: advance settles
    assert _sweep(state) == SWEEP_SECONDS
    emu.advance_clock(0.2)
    assert _task(emu, body["data"]["task_id"])["status"] == "success"
    assert _sweep(state) == SWEEP_SECONDS


def test_control_tasks_running_task(make_emu, spec, sd_jpeg):
    emu = make_emu(task_seconds=30)
    api = Api(emu, spec)
    file_id = api.upload(sd_jpeg)
    _, body = api.create_task({"src_file_id": file_id, "dst_actions": SD})
    tasks = requests.get(emu.base_url + "/_control/tasks", timeout=5).json()["tasks"]
    (t,) = tasks
    assert t["done_at"] is None and t["seen_done_at"] is None and t["polls"] == 0
    assert t["created_at"] > 0

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


def test_control_tasks_times(make_emu, spec, sd_jpeg):
    emu = make_emu(task_seconds="0.3:0.6", seed=3)
    api = Api(emu, spec)
    file_id = api.upload(sd_jpeg)
    _, body = api.create_task({"src_file_id": file_id, "dst_actions": SD})
    task_id = body["data"]["task_id"]
    api.status(task_id)                   # running
    deadline = time.monotonic() + 5
    while api.status(task_id)[1]["data"]["task_status"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    api.status(task_id)                   # a poll after the final one
    tasks = requests.get(emu.base_url + "/_control/tasks", timeout=5).json()["tasks"]
    (t,) = [t for t in tasks if t["task_id"] == task_id]
    assert 0.3 - 1e-6 <= t["done_at"] - t["created_at"] <= 0.6 + 1e-6
    # first final answer, not the later poll
    assert t["done_at"] <= t["seen_done_at"] < t["poll_times"][-1]
    assert t["seen_done_at"] == t["poll_times"][-2]
    assert t["polls"] == len(t["poll_times"]) >= 3
    assert t["poll_times"][0] < t["done_at"]  # the first poll saw it running


def test_control_tasks_running_task(make_emu, spec, sd_jpeg):
    emu = make_emu(task_seconds=30)
    api = Api(emu, spec)
    file_id = api.upload(sd_jpeg)
    _, body = api.create_task({"src_file_id": file_id, "dst_actions": SD})
    tasks = requests.get(emu.base_url + "/_control/tasks", timeout=5).json()["tasks"]
    (t,) = tasks
    assert t["done_at"] is None and t["seen_done_at"] is None and t["polls"] == 0
    assert t["created_at"] > 0

"""The emulator's clock: real time by default, a test clock that moves only
when told to (``test_clock=True`` / ``--test-clock`` / ``POST
/_control/clock``), and the loopback-only rule of the control endpoint."""

import email.utils
import os
import signal
import subprocess
import time

import pytest
import requests

import emulator
from conftest import REPO, Api
from emulator import clock as clock_mod
from emulator import control, httpserver
from emulator.app import App

SD = ["wrinkle"]


class FakeTime:
    """Real time under the test's control, for the Clock unit tests."""

    def __init__(self):
        self.mono, self.wall = 100.0, 1_800_000_000.0

    def step(self, seconds):
        self.mono += seconds
        self.wall += seconds


def make_clock(test=False):
    fake = FakeTime()
    return fake, clock_mod.Clock(test=test, real_monotonic=lambda: fake.mono,
                                 real_time=lambda: fake.wall)


# --- Clock --------------------------------------------------------------------------

def test_real_clock_follows_real_time():
    fake, clock = make_clock()
    assert not clock.test
    assert (clock.monotonic(), clock.time()) == (100.0, 1_800_000_000.0)
    fake.step(2.5)
    assert (clock.monotonic(), clock.time()) == (102.5, 1_800_000_002.5)
    clock.advance(10)                   # a jump in real mode
    fake.step(1)
    assert (clock.monotonic(), clock.time()) == (113.5, 1_800_000_013.5)


def test_test_clock_moves_only_when_advanced():
    fake, clock = make_clock(test=True)
    assert clock.test
    fake.step(60)
    assert (clock.monotonic(), clock.time()) == (100.0, 1_800_000_000.0)
    clock.advance(0.25)
    assert (clock.monotonic(), clock.time()) == (100.25, 1_800_000_000.25)
    assert clock.snapshot() == {"mode": "test", "monotonic_ms": 100250.0,
                                "time_ms": 1_800_000_000_250.0, "advanced_ms": 250.0}


def test_switching_modes_never_goes_back():
    fake, clock = make_clock()
    fake.step(5)
    clock.set_test(True)
    fake.step(100)                      # real time runs on, the clock stands
    clock.advance(1)
    assert clock.monotonic() == 106.0
    clock.set_test(False)               # runs again from where it stood
    assert clock.monotonic() == 106.0 and clock.time() == 1_800_000_006.0
    fake.step(2)
    assert clock.monotonic() == 108.0 and clock.time() == 1_800_000_008.0
    clock.set_test(False)               # no-op
    assert clock.monotonic() == 108.0


@pytest.mark.parametrize("amount", [-1, float("inf"), float("nan"), "x"])
def test_clock_refuses_going_back_or_forever(amount):
    _, clock = make_clock(test=True)
    with pytest.raises(ValueError):
        clock.advance(amount)
    assert clock.monotonic() == 100.0


# --- through the emulator -------------------------------------------------------------

def test_test_clock_task_life_cycle(make_emu, spec, sd_jpeg):
    emu = make_emu(task_seconds=3, test_clock=True)
    api = Api(emu, spec)
    task_id = api.create_task({"src_file_id": api.upload(sd_jpeg),
                               "dst_actions": SD})[1]["data"]["task_id"]
    time.sleep(0.3)                     # real time passing changes nothing (the sweeper runs)
    assert api.status(task_id)[1]["data"]["task_status"] == "running"
    emu.advance_clock(2.9)
    assert emu.task(task_id)["status"] == "running"
    emu.advance_clock(0.2)              # settled at once, without a poll
    assert emu.task(task_id)["status"] == "success"
    assert emu.counters["tasks_succeeded"] == 1
    assert api.status(task_id)[1]["data"]["task_status"] == "success"


def test_control_clock_endpoint(make_emu, spec, sd_jpeg):
    emu = make_emu(task_seconds=1)
    url = emu.base_url + "/_control/clock"
    shown = requests.get(url).json()
    assert shown["mode"] == "real" and shown["advanced_ms"] == 0
    assert abs(shown["time_ms"] / 1000 - time.time()) < 60
    assert requests.post(url, json={"mode": "test"}).json()["mode"] == "test"
    assert emu.clock.test
    api = Api(emu, spec)
    task_id = api.create_task({"src_file_id": api.upload(sd_jpeg),
                               "dst_actions": SD})[1]["data"]["task_id"]
    before = requests.get(url).json()
    after = requests.post(url, json={"advance_ms": 1500}).json()
    assert after["monotonic_ms"] - before["monotonic_ms"] == pytest.approx(1500)
    assert after["time_ms"] - before["time_ms"] == pytest.approx(1500)
    assert after["advanced_ms"] == 1500
    assert emu.task(task_id)["status"] == "success"   # the advance settled it
    assert requests.get(url).json()["monotonic_ms"] == after["monotonic_ms"]
    # back to real time, from where the clock stood
    real = requests.post(url, json={"mode": "real"}).json()
    assert real["mode"] == "real" and real["monotonic_ms"] >= after["monotonic_ms"]
    assert not emu.clock.test
    # reset forgets tasks and counters, not the clock
    requests.post(url, json={"mode": "test", "advance_ms": 10})
    assert requests.post(emu.base_url + "/_control/reset").status_code == 200
    assert requests.get(url).json()["mode"] == "test"


@pytest.mark.parametrize("body", [{}, {"advance_ms": -1}, {"advance_ms": "5"},
                                  {"advance_ms": True}, {"mode": "frozen"}, {"other": 1},
                                  [1], "x"])
def test_control_clock_bad_bodies(emu, body):
    resp = requests.post(emu.base_url + "/_control/clock", json=body)
    assert resp.status_code == 400 and "advance_ms" in resp.json()["error"]
    assert requests.get(emu.base_url + "/_control/clock").json()["advanced_ms"] == 0


def test_clock_drives_urls_timestamps_and_dates(make_emu, spec, sd_jpeg):
    emu = make_emu(test_clock=True, url_ttl=7200, upload_ttl=300)
    api = Api(emu, spec)
    emu.advance_clock(86400)            # a day later, in the emulator's world
    resp = requests.get(emu.base_url + "/_control/health")
    served = email.utils.parsedate_to_datetime(resp.headers["Date"]).timestamp()
    assert abs(served - (time.time() + 86400)) < 60
    slot = api.upload_slot(sd_jpeg)
    expires = int(slot["requests"][0]["url"].split("expires=")[1].split("&")[0])
    assert abs(expires / 1000 - (time.time() + 86400 + 300)) < 60
    _, final = api.run(sd_jpeg, SD, "zip")
    url = final["data"]["results"]["url"]
    expires = int(url.split("expires=")[1].split("&")[0])
    assert abs(expires / 1000 - (time.time() + 86400 + 7200)) < 60
    log = [r for r in emu.log if r["path"].startswith("/s2s/")]
    assert all(abs(r["time"] - (time.time() + 86400)) < 60 for r in log)


def test_real_clock_sweeper_ends_unpolled_tasks(make_emu, spec, sd_jpeg):
    """Without a test clock the background sweeper settles tasks nobody polls."""
    emu = make_emu(task_seconds=0.05)
    api = Api(emu, spec)
    api.create_task({"src_file_id": api.upload(sd_jpeg), "dst_actions": SD})
    deadline = time.monotonic() + 30
    while emu.counters["tasks_succeeded"] < 1:
        assert time.monotonic() < deadline, "the sweeper never ended the task"
        time.sleep(0.02)


def test_cli_flags():
    cfg = emulator.config.config_from_args([])
    assert (cfg.test_clock, cfg.control_any_host) == (False, False)
    cfg = emulator.config.config_from_args(["--test-clock", "--control-any-host"])
    assert (cfg.test_clock, cfg.control_any_host) == (True, True)
    assert cfg.public()["test_clock"] is True
    assert emulator.Emulator(test_clock=True).clock.test
    assert not emulator.Emulator().clock.test


def test_cli_test_clock():
    script = os.path.join(REPO, "scripts", "emulator")
    out = subprocess.run([script, "--help"], capture_output=True, text=True, check=True).stdout
    assert "--test-clock" in out and "--control-any-host" in out
    proc = subprocess.Popen([script, "--test-clock"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        base = proc.stdout.readline().split()[-1]
        assert requests.get(base + "/_control/clock").json()["mode"] == "test"
        shown = requests.post(base + "/_control/clock", json={"advance_ms": 250}).json()
        assert shown["advanced_ms"] == 250
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0


# --- the control endpoint answers loopback peers only -----------------------------------

@pytest.mark.parametrize("ip", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1",
                                "::1%lo"])
def test_loopback_peers_allowed(ip):
    assert control.peer_allowed(ip)
    assert control.peer_allowed(ip, any_host=True)


@pytest.mark.parametrize("ip", ["10.0.0.5", "192.168.1.20", "0.0.0.0", "8.8.8.8",
                                "::ffff:10.0.0.5", "fe80::1%eth0", "2001:db8::1", "?", "",
                                "localhost", None])
def test_other_peers_refused_unless_any_host(ip):
    assert not control.peer_allowed(ip)
    assert control.peer_allowed(ip, any_host=True)


def _request(path, client_ip, method="GET"):
    return httpserver.Request(method, path, "HTTP/1.1", {"host": "emu.test:1"}, ["Host"], b"",
                              client_ip)


@pytest.mark.parametrize("path", ["/_control/health", "/_control/clock", "/_control/counters",
                                  "/_control/reset"])
def test_app_refuses_control_from_other_hosts(path):
    app = App(emulator.Config())
    method = "POST" if path.endswith("reset") else "GET"
    resp = app.handle(_request(path, "192.0.2.7", method))
    assert resp.status == 403 and b"--control-any-host" in resp.body
    assert app.handle(_request(path, "127.0.0.1", method)).status == 200
    open_app = App(emulator.Config(control_any_host=True))
    assert open_app.handle(_request(path, "192.0.2.7", method)).status == 200
    # the API itself is not affected
    assert app.handle(_request("/s2s/v2.1/task/skin-analysis/x", "192.0.2.7")).status == 401


def test_loopback_control_over_the_socket(emu):
    assert requests.get(emu.base_url + "/_control/health").status_code == 200

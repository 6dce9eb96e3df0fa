"""Authentication variants, rate limits and x-request-id."""

import time

import pytest
import requests

import emulator
from conftest import Api, example

FILE_BODY = {"files": [{"content_type": "image/jpeg", "file_name": "a.jpg", "file_size": 10}]}


@pytest.mark.parametrize("variant,expected", [
    ("docs", example("error-401.json")),
    ("observed", example("error-401-observed.json")),
    ("token", {"status": 401, "error": "Unauthorized", "error_code": "InvalidAccessToken"}),
])
def test_401_variants(make_emu, spec, variant, expected):
    api = Api(make_emu(auth_variant=variant), spec)
    status, body = api.call("POST", "/s2s/v2.1/file/skin-analysis", FILE_BODY, key="wrong")
    assert status == 401 and body == expected


@pytest.mark.parametrize("header", [None, "emulator-key", "Bearer  emulator-key",
                                    "bearer emulator-key", "Bearer <emulator-key>",
                                    "Basic emulator-key"])
def test_bad_authorization_headers(api, header):
    headers = {} if header is None else {"Authorization": header}
    for method, path, body in (("POST", "/s2s/v2.0/file/skin-analysis", FILE_BODY),
                               ("POST", "/s2s/v2.1/task/skin-analysis", {"dst_actions": ["acne"]}),
                               ("GET", "/s2s/v2.0/task/skin-analysis/abc", None)):
        status, out = api.call(method, path, body, headers=headers)
        assert status == 401 and out == example("error-401.json")
    assert api.emu.counters["unauthorized"] == 3


def test_several_keys(make_emu, spec):
    emu = make_emu(keys="alpha,beta")
    for key in ("alpha", "beta"):
        assert Api(emu, spec, key=key).file_create()[0] == 200
    assert Api(emu, spec, key="emulator-key").file_create()[0] == 401


def test_x_request_id_is_large_integer(api):
    resp = requests.post(api.emu.base_url + "/s2s/v2.1/file/skin-analysis", json=FILE_BODY,
                         headers=api.headers())
    assert int(resp.headers["x-request-id"]) > 2 ** 53


def test_rate_limit_qps(make_emu, spec):
    emu = make_emu(rate_limit=True, rate_qps=3, rate_window_max=100, test_clock=True)
    api = Api(emu, spec)
    statuses = [api.file_create()[0] for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    resp = requests.post(emu.base_url + "/s2s/v2.1/file/skin-analysis", json=FILE_BODY,
                         headers=api.headers())
    assert resp.status_code == 429
    assert resp.json() == example("error-429.json")
    assert "Retry-After" not in resp.headers
    assert not any(h.lower().startswith(("ratelimit", "x-ratelimit")) for h in resp.headers)
    emu.advance_clock(0.99)
    assert api.file_create()[0] == 429   # the second is not over yet
    emu.advance_clock(0.02)
    assert api.file_create()[0] == 200
    c = emu.counters
    assert c["rate_limited"] == 4 and c["responses_429"] == 4


@pytest.mark.parametrize("limits, allowed", [
    (dict(rate_qps=100, rate_window_max=4, rate_window_seconds=0.5), 4),  # the window
    (dict(rate_qps=3, rate_window_max=100, rate_qps_seconds=0.5), 3),     # the qps window
], ids=["rate_window", "rate_qps_seconds"])
def test_rate_window_half_second(make_emu, spec, limits, allowed):
    """A window of 0.5 s: `allowed` pass, the next is refused until it ends."""
    emu = make_emu(rate_limit=True, test_clock=True, **limits)
    api = Api(emu, spec)
    assert [api.file_create()[0] for _ in range(allowed + 1)] == [200] * allowed + [429]
    emu.advance_clock(0.49)
    assert api.file_create()[0] == 429
    emu.advance_clock(0.02)
    assert api.file_create()[0] == 200


def test_rate_qps_seconds_option():
    with pytest.raises(ValueError):
        emulator.Config(rate_qps_seconds=0)
    assert emulator.config.config_from_args(["--rate-qps-seconds", "0.8"]).rate_qps_seconds == 0.8


def test_rate_limit_per_ip_covers_all_keys(make_emu, spec):
    emu = make_emu(keys="a,b", rate_limit=True, rate_qps=100, rate_window_max=3)
    a, b = Api(emu, spec, key="a"), Api(emu, spec, key="b")
    assert [a.file_create()[0], b.file_create()[0], a.file_create()[0]] == [200] * 3
    assert b.file_create()[0] == 429  # key b is fine, but the IP budget is spent


def test_rate_limit_per_key(make_emu, spec):
    emu = make_emu(rate_limit=True, rate_qps=100, rate_window_max=2)
    limiter = emu.state.limiter
    # Key budget spent from "another IP": the key limit alone must refuse.
    now = time.monotonic()
    with emu.state.lock:
        limiter.allow(["ip:10.0.0.1", "key:emulator-key"], now)
        limiter.allow(["ip:10.0.0.1", "key:emulator-key"], now)
    assert Api(emu, spec).file_create()[0] == 429


def test_rate_limit_covers_status_and_create(make_emu, spec):
    emu = make_emu(rate_limit=True, rate_qps=100, rate_window_max=2)
    api = Api(emu, spec)
    assert api.status("x")[0] == 400
    assert api.create_task({"dst_actions": ["acne"]})[0] == 400
    assert api.status("x")[0] == 429


def test_rate_limit_off(make_emu, spec):
    api = Api(make_emu(rate_limit="off", rate_qps=1, rate_window_max=1), spec)
    assert all(api.file_create()[0] == 200 for _ in range(10))


def test_control_and_results_not_rate_limited(make_emu, spec, sd_jpeg):
    emu = make_emu(rate_limit=True, rate_qps=100, rate_window_max=6)
    api = Api(emu, spec)
    _, final = api.run(sd_jpeg, ["wrinkle"], "zip")   # file, task, poll(s)
    for _ in range(10):
        assert requests.get(emu.base_url + "/_control/counters").status_code == 200
        assert requests.get(final["data"]["results"]["url"]).status_code == 200

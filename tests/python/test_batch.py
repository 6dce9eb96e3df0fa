"""analyze_many: order, failures, faults, rate limits, progress."""

import pytest

import skinanalysis
from .sa_helpers import FAST, NOT_IMAGE, PNG_IMAGE, SD_IMAGE, tasks_polled_to_end


def test_results_in_input_order_with_failures_in_place(client, emu):
    images = [SD_IMAGE, NOT_IMAGE, PNG_IMAGE, "/missing.jpg", SD_IMAGE]
    seen = []
    results = client.analyze_many(images, ["pore"], concurrency=2, progress=False,
                                  on_result=lambda i, img, out: seen.append((i, img)))
    assert [type(r).__name__ for r in results] == [
        "Result", "ValidationError", "Result", "ValidationError", "Result"]
    assert sorted(seen) == list(enumerate(images))
    assert emu.counters["tasks_created"] == 3


def test_progress_callback(client):
    calls = []
    client.analyze_many([SD_IMAGE] * 3, ["pore"], progress=lambda d, t: calls.append((d, t)))
    assert calls == [(1, 3), (2, 3), (3, 3)]


def test_progress_bar_with_tqdm(client, capsys):
    pytest.importorskip("tqdm")
    client.analyze_many([SD_IMAGE] * 2, ["pore"], progress=True)
    assert "2/2" in capsys.readouterr().err


def test_raise_on_error_stops_submitting(client, emu):
    images = [SD_IMAGE, "/missing.jpg"] + [SD_IMAGE] * 6
    with pytest.raises(skinanalysis.ValidationError):
        client.analyze_many(images, ["pore"], concurrency=1, progress=False,
                            raise_on_error=True)
    assert emu.counters["tasks_created"] == 1
    assert tasks_polled_to_end(emu)[1] == []


def test_module_function_with_its_own_client(emu):
    results = skinanalysis.analyze_many([SD_IMAGE, SD_IMAGE], "pore", progress=False,
                                        api_key=emu.api_key, base_url=emu.base_url,
                                        format="zip")
    assert all(r.format == "zip" and r.get("pore") and r.files for r in results)


def test_concurrency_is_bounded(make_emulator):
    emu = make_emulator(task_seconds=0.3)
    running = []
    with skinanalysis.Client(emu.api_key, base_url=emu.base_url, rate_limit=False,
                             **FAST) as c:
        def on_result(i, image, outcome):
            running.append(emu.counters["tasks_running"])
        c.analyze_many([SD_IMAGE] * 9, ["pore"], concurrency=3, progress=False,
                       on_result=on_result)
    assert max(running) <= 3


def test_a_batch_with_faults_loses_nothing(make_emulator):
    emu = make_emulator(task_seconds=0.2)
    emu.set_scenario([
        {"endpoint": "task_status", "every": 4, "fault": "http_502_html"},
        {"endpoint": "upload", "nth": [2, 5], "fault": "close_before_response"},
        {"endpoint": "file_create", "nth": [3], "fault": "http_503"},
        {"endpoint": "task_create", "every": 5, "fault": "engine_error",
         "code": "error_no_face"},
        {"endpoint": "task_create", "nth": [7], "fault": "close_mid_response"},
        {"endpoint": "task_status", "nth": [9], "fault": "truncated_json"},
    ])
    n = 24
    with skinanalysis.Client(emu.api_key, base_url=emu.base_url, rate_limit=False,
                             **FAST) as c:
        results = c.analyze_many([SD_IMAGE] * n, ["pore"], concurrency=6, progress=False)
    assert len(results) == n and all(r is not None for r in results)
    ok = [r for r in results if isinstance(r, skinanalysis.Result)]
    failed = [r for r in results if isinstance(r, skinanalysis.Error)]
    assert len(ok) + len(failed) == n
    assert {type(e) for e in failed} <= {skinanalysis.EngineError,
                                         skinanalysis.AmbiguousTaskError}
    assert any(isinstance(e, skinanalysis.EngineError) for e in failed)
    assert any(isinstance(e, skinanalysis.AmbiguousTaskError) for e in failed)
    created, unseen = tasks_polled_to_end(emu)
    # every task the client knew about was polled to its end; the ambiguous
    # create's task is the only one it never learnt the id of
    assert len(unseen) == 1 and len(created) == len(ok) + len(failed)
    assert {r.task_id for r in ok} <= set(created)


def test_rate_limits_hold_without_a_single_429(make_emulator):
    # 20 requests in any second, as the emulator allows; its 250 per 300 s
    # window is made larger on both sides so polls every 50 ms fit in it.
    # The emulator counts arrivals, the client its sends: on a loaded machine
    # arrivals bunch by more than the client's 20 ms guard, so the emulator
    # counts 20 in 0.75 s (a client without a limiter still gets 429s;
    # tests/c/test_limiter.c checks the windows exactly on fake time)
    emu = make_emulator(task_seconds=0.2, rate_limit=True, rate_qps=20,
                        rate_window_max=20000, rate_qps_seconds=0.75)
    with skinanalysis.Client(emu.api_key, base_url=emu.base_url, rate_per_second=20.0,
                             **FAST) as c:
        results = c.analyze_many([SD_IMAGE] * 10, ["pore"], concurrency=10,
                                 progress=False)
    assert all(isinstance(r, skinanalysis.Result) for r in results)
    assert emu.counters["responses_429"] == 0
    assert emu.counters["requests_total"] >= 30  # more than a second at 20/s


def test_default_rate_limits_never_get_a_429(make_emulator):
    # the API's limits on both sides: 5 in any second, 250 in any 300 s (the
    # emulator's second shortened to 0.75 s for late arrivals, as above)
    emu = make_emulator(task_seconds=0.5, rate_limit=True, rate_qps_seconds=0.75)
    with skinanalysis.Client(emu.api_key, base_url=emu.base_url,
                             poll_interval=0.3) as c:
        results = c.analyze_many([SD_IMAGE] * 6, ["pore"], concurrency=6,
                                 progress=False)
    assert all(isinstance(r, skinanalysis.Result) for r in results)
    assert emu.counters["responses_429"] == 0


def test_concurrency_must_be_positive(client):
    with pytest.raises(ValueError):
        client.analyze_many([SD_IMAGE], concurrency=0)

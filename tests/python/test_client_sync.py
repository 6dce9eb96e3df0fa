"""The blocking Client and Job against the emulator."""

import io
import logging
import os
import pathlib
import threading
import time

import pytest

import skinanalysis
from skinanalysis import _core
from .sa_helpers import (FAST, HD_IMAGE, PNG_IMAGE, SD_IMAGE, api_requests,
                        tasks_polled_to_end, wait_until)


def read(path):
    with open(path, "rb") as fh:
        return fh.read()


def check_sd_result(res, n_concerns=16):
    assert isinstance(res, skinanalysis.Result)
    assert res.format == "json" and res.task_id
    assert len(res.concerns) == n_concerns
    assert res.overall is not None and res.skin_age is not None
    wrinkle = res.get("wrinkle")
    assert wrinkle.region == "whole" and isinstance(wrinkle.ui_score, int)
    assert 1 <= wrinkle.ui_score <= 100 and wrinkle.raw_score is not None
    assert wrinkle.mask_urls and wrinkle.mask_urls[0].startswith("http://127.0.0.1")
    if "skin_type" in res.concerns:
        skin = res.get("skin_type", "t_zone")
        assert skin.skin_type and skin.ui_score is None
    assert list(res) == list(res.scores)


def test_analyze_default_actions(client, emu):
    res = client.analyze(SD_IMAGE)
    check_sd_result(res)
    task = emu.task(res.task_id)
    assert task["dst_actions"] == list(skinanalysis.SD_ACTIONS)
    assert task["format"] == "json" and task["version"] == "v2.1"
    assert emu.units() == 100000 - 16


@pytest.mark.parametrize("kind", ["path", "pathlike", "bytes", "bytearray",
                                  "memoryview", "file"])
def test_image_sources(client, kind):
    data = read(SD_IMAGE)
    image = {"path": SD_IMAGE, "pathlike": pathlib.Path(SD_IMAGE), "bytes": data,
             "bytearray": bytearray(data), "memoryview": memoryview(data),
             "file": io.BytesIO(data)}[kind]
    res = client.analyze(image, ["wrinkle", "pore"])
    check_sd_result(res, 2)


def test_open_file_object_keeps_its_name(client, emu):
    with open(PNG_IMAGE, "rb") as fh:
        client.analyze(fh, "texture")
    creates = [r for r in emu.log if r["endpoint"] == "file_create"]
    assert len(creates) == 1


def test_url_and_file_id_sources(client, emu):
    url = emu.host_public("face.jpg", read(SD_IMAGE), "image/jpeg")
    res = client.analyze(url, ["acne"])
    assert res.get("acne") is not None
    assert not [r for r in emu.log if r["endpoint"] in ("file_create", "upload")]
    job = client.submit(SD_IMAGE, ["acne"])
    job.wait()
    again = client.analyze(file_id=job.file_id, actions=["redness"])
    assert again.get("redness") is not None
    assert sum(r["endpoint"] == "upload" for r in emu.log) == 1


def test_hd_zip_and_masks(client, emu, tmp_path):
    res = client.analyze(HD_IMAGE, hd=True, format="zip", version="2.0")
    assert res.format == "zip"
    assert emu.task(res.task_id)["version"] == "v2.0"
    assert res.get("hd_pore", "nose") is not None
    written = res.save_masks(tmp_path)
    assert len(written) == len(res.files) >= 10
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in written)
    assert emu.counters["auth_on_results"] == 0


def test_json_masks_saved_without_authorization(client, emu, tmp_path):
    res = client.analyze(SD_IMAGE, ["wrinkle", "skin_type"], mask_overlay=True)
    written = res.save_masks(tmp_path / "masks")
    assert len(written) == 1 + 3 + 1  # wrinkle, three skin-type regions, resized image
    assert all(p.stat().st_size > 0 for p in written)
    assert emu.counters["result_downloads"] >= len(written)
    assert emu.counters["auth_on_results"] == 0
    assert emu.counters["auth_on_storage"] == 0


def test_expired_mask_urls_are_a_clear_error(make_emulator, tmp_path):
    # URLs expired at once, fresh ones too: refused after one refresh
    emu = make_emulator(task_seconds=0, url_ttl=0)
    with skinanalysis.Client(emu.api_key, base_url=emu.base_url, **FAST) as c:
        res = c.analyze(SD_IMAGE, ["wrinkle"])
        with pytest.raises(skinanalysis.UrlExpiredError, match="expire") as info:
            res.save_masks(tmp_path)
    assert isinstance(info.value, skinanalysis.DownloadError)
    assert "sig=" not in str(info.value)


def test_submit_job_lifecycle(make_emulator):
    emu = make_emulator(task_seconds=1.0)
    with skinanalysis.Client(emu.api_key, base_url=emu.base_url, **FAST) as c:
        job = c.submit(SD_IMAGE, ["wrinkle"])
        assert not job.done() and job.status in ("file_create", "validate", "queued")
        assert job.units == 9
        with pytest.raises(skinanalysis.UsageError):
            job.result()
        with pytest.raises(skinanalysis.WaitTimeout) as info:
            job.wait(0.3)
        assert info.value.job is job and not job.done()
        assert job.task_id and info.value.task_id == job.task_id
        assert job.status in ("poll_wait", "polling")
        res = job.wait(5)
        assert job.done() and job.status == "done" and job.polls >= 1
        assert res is job.result() and res.task_id == job.task_id
        assert job.exception() is None
        assert "Job(task_id=" in repr(job)


def test_many_jobs_advance_together(client, emu):
    jobs = [client.submit(SD_IMAGE, ["pore"]) for _ in range(6)]
    jobs[-1].wait()
    assert wait_until(lambda: all(j.done() for j in jobs) or client.step(0.05) < 0)
    for j in jobs:
        assert j.wait().get("pore")
    created, unseen = tasks_polled_to_end(emu)
    assert len(created) == 6 and not unseen


def test_max_uploads_option(emu):
    # a core option passed by name: uploads capped at 1, every job still ends
    with skinanalysis.Client("emulator-key", base_url=emu.base_url, max_uploads=1) as c:
        jobs = [c.submit(SD_IMAGE, ["pore"]) for _ in range(3)]
        for j in jobs:
            assert j.wait().get("pore")
    with pytest.raises(skinanalysis.UsageError, match="max_uploads"):
        skinanalysis.Client("emulator-key", base_url=emu.base_url, max_uploads=-1)


def test_step_budget_option(emu):
    # the time budget of a non-blocking step, in microseconds; 0 = none
    with skinanalysis.Client("emulator-key", base_url=emu.base_url, step_budget_us=1) as c:
        job = c.submit(SD_IMAGE, ["pore"])
        assert job.wait().get("pore")
    with skinanalysis.Client("emulator-key", base_url=emu.base_url, step_budget_us=0) as c:
        assert c.submit(SD_IMAGE, ["pore"]).wait().get("pore")
    with pytest.raises(skinanalysis.UsageError, match="step_budget_us"):
        skinanalysis.Client("emulator-key", base_url=emu.base_url, step_budget_us=-5)


def test_run_drives_everything(client):
    jobs = [client.submit(SD_IMAGE, ["pore"]) for _ in range(3)]
    client.run(10)
    assert all(j.done() for j in jobs) and client.active == 0


def test_close_drains_running_tasks(make_emulator, caplog):
    emu = make_emulator(task_seconds=0.5)
    c = skinanalysis.Client(emu.api_key, base_url=emu.base_url, **FAST)
    jobs = [c.submit(SD_IMAGE, ["pore"]) for _ in range(3)]
    c.step(0.2)
    c.close()
    assert c.closed and c.active == 0
    created, unseen = tasks_polled_to_end(emu)
    assert len(created) == 3 and not unseen
    assert all(j.done() and j.status == "done" for j in jobs)
    c.close()  # idempotent


def test_close_timeout_abandons_and_logs_task_ids(make_emulator, caplog):
    emu = make_emulator(task_seconds=30)
    c = skinanalysis.Client(emu.api_key, base_url=emu.base_url, **FAST)
    job = c.submit(SD_IMAGE, ["pore"])
    with pytest.raises(skinanalysis.WaitTimeout):
        job.wait(0.5)
    with caplog.at_level(logging.WARNING, logger="skinanalysis"):
        c.close(timeout=0.2)
    assert job.task_id in caplog.text
    with pytest.raises(skinanalysis.CancelledError):
        job.result()
    assert job.done() and job.status == "cancelled"


def test_closed_client_refuses_work(emu):
    c = skinanalysis.Client(emu.api_key, base_url=emu.base_url)
    c.close()
    with pytest.raises(skinanalysis.UsageError, match="closed"):
        c.submit(SD_IMAGE)
    assert "closed" in repr(c)


def test_cancel_before_the_task_exists(client, emu):
    job = client.submit(SD_IMAGE, ["pore"])
    job.cancel()
    assert job.done() and job.status == "cancelled"
    with pytest.raises(skinanalysis.CancelledError):
        job.wait()
    assert isinstance(job.exception(), skinanalysis.CancelledError)
    client.run(5)
    assert emu.counters["tasks_created"] == 0


def test_cancel_keeps_polling_a_created_task(make_emulator):
    emu = make_emulator(task_seconds=0.5)
    with skinanalysis.Client(emu.api_key, base_url=emu.base_url, **FAST) as c:
        job = c.submit(SD_IMAGE, ["pore"])
        assert wait_until(lambda: c.step(0.02) >= 0 and job.task_id is not None)
        job.cancel()
        assert job.status == "cancelled"
        c.run(10)
    assert tasks_polled_to_end(emu)[1] == []


def test_configuration_from_environment(emu, monkeypatch):
    monkeypatch.setenv("YOUCAM_API_KEY", emu.api_key)
    monkeypatch.setenv("SKINANALYSIS_BASE_URL", emu.base_url)
    with skinanalysis.Client(**FAST) as c:
        assert c.base_url == emu.base_url and c.version == "2.1"
        assert c.analyze(SD_IMAGE, ["pore"]).get("pore")
    monkeypatch.delenv("YOUCAM_API_KEY")
    with pytest.raises(skinanalysis.AuthError, match="YOUCAM_API_KEY"):
        skinanalysis.Client()
    monkeypatch.delenv("SKINANALYSIS_BASE_URL")
    with skinanalysis.Client("k") as c:
        assert c.base_url == "https://yce-api-01.makeupar.com"


def test_client_options_are_checked(emu):
    with pytest.raises(TypeError, match="nonsense"):
        skinanalysis.Client("k", nonsense=1)
    with pytest.raises(skinanalysis.ValidationError):
        skinanalysis.Client("k", version="3.0")
    with pytest.raises(skinanalysis.ValidationError):
        skinanalysis.Client("k", base_url="http://example.com")  # plain http off loopback
    with pytest.raises(skinanalysis.UsageError):
        skinanalysis.Client("k", base_url="ftp://x")


@pytest.mark.parametrize("kw", [{"deadline": -1}, {"deadline": 0.0004}, {"deadline": 0},
                                {"timeout": float("nan")}, {"poll_interval": float("inf")},
                                {"upload_timeout": 0.0001}, {"close_timeout": -1}])
def test_durations_the_core_cannot_take_are_value_errors(kw):
    """A negative or sub-millisecond deadline became 0: the core's default
    (10 minutes) instead of an error."""
    with pytest.raises(ValueError):
        skinanalysis.Client("k", **kw)


def test_waits_and_deadlines_are_checked(emu):
    with skinanalysis.Client(emu.api_key, base_url=emu.base_url, **FAST) as c:
        for deadline in (-5, 0.0002, 0, float("nan")):
            with pytest.raises(ValueError):
                c.submit(SD_IMAGE, ["pore"], deadline=deadline)
        with pytest.raises(TypeError):
            c.submit(SD_IMAGE, ["pore"], deadline="soon")
        job = c.submit(SD_IMAGE, ["pore"])
        for timeout in (-1, 0.0005, float("inf")):
            with pytest.raises(ValueError):
                job.wait(timeout)
            with pytest.raises(ValueError):
                c.step(timeout)
        assert job.wait(10) is not None       # 0 and None keep their meaning
        assert c.step(0) >= 0


def test_gil_is_released_while_waiting(make_emulator):
    emu = make_emulator(task_seconds=1.0)
    counter = [0]
    stop = threading.Event()

    def count():
        while not stop.is_set():
            counter[0] += 1

    with skinanalysis.Client(emu.api_key, base_url=emu.base_url, **FAST) as c:
        job = c.submit(SD_IMAGE, ["pore"])
        t = threading.Thread(target=count)
        t.start()
        try:
            before = counter[0]
            started = time.monotonic()
            job.wait(10)
            elapsed = time.monotonic() - started
            during = counter[0] - before
        finally:
            stop.set()
            t.join()
    assert elapsed > 0.5
    assert during > 100000  # the counter thread ran freely during the wait


def test_other_threads_are_kept_out_while_waiting(make_emulator):
    emu = make_emulator(task_seconds=1.0)
    errors = []
    with skinanalysis.Client(emu.api_key, base_url=emu.base_url, **FAST) as c:
        job = c.submit(SD_IMAGE, ["pore"])

        def intruder():
            time.sleep(0.2)
            for call in (lambda: c.submit(SD_IMAGE), lambda: job.task_id, c.close):
                try:
                    call()
                except skinanalysis.UsageError as exc:
                    errors.append(exc)

        t = threading.Thread(target=intruder)
        t.start()
        job.wait(10)
        t.join()
    assert len(errors) == 3 and all("another thread" in str(e) for e in errors)


def test_wakeup_from_another_thread(make_emulator):
    emu = make_emulator(task_seconds=30)
    c = skinanalysis.Client(emu.api_key, base_url=emu.base_url, **FAST)
    try:
        job = c.submit(SD_IMAGE, ["pore"])
        threading.Timer(0.3, c.wakeup).start()
        started = time.monotonic()
        with pytest.raises(skinanalysis.WaitInterrupted):
            job.wait(10)
        assert time.monotonic() - started < 2
        assert not job.done()
        emu.finish_task(job.task_id)
        assert job.wait(5).get("pore") is not None
    finally:
        c.close(timeout=1)


def test_job_callback_progress_and_exceptions(client):
    seen = []
    job = client.submit(SD_IMAGE, ["pore"], callback=lambda j, s: seen.append(s))
    job.wait(10)
    assert seen[-1] == _core.JOB_DONE and _core.JOB_TASK_CREATE in seen

    raised = []

    def boom(j, state):
        if not raised:
            raised.append(state)
            raise RuntimeError("from the callback")

    job = client.submit(SD_IMAGE, ["pore"], callback=boom)
    with pytest.raises(RuntimeError, match="from the callback"):
        job.wait(10)
    assert job.done() and job.status == "cancelled"
    with pytest.raises(skinanalysis.CancelledError):
        job.result()


def test_log_callback_exception_is_reraised(emu):
    raised = []

    def bad_log(level, message):
        if not raised:
            raised.append(message)
            raise ValueError("log hook failed")

    c = _core.Client(emu.api_key, base_url=emu.base_url, log=bad_log,
                     log_level=_core.LOG_DEBUG, poll_interval_ms=50)
    try:
        with pytest.raises(ValueError, match="log hook failed"):
            c.submit(file_path=SD_IMAGE, actions=["pore"]).wait(5000)
    finally:
        c.close()


def test_logging_goes_to_the_skinanalysis_logger(emu, caplog):
    with caplog.at_level(logging.DEBUG, logger="skinanalysis"):
        with skinanalysis.Client(emu.api_key, base_url=emu.base_url, **FAST) as c:
            c.analyze(SD_IMAGE, ["pore"])
    records = [r for r in caplog.records if r.name == "skinanalysis"]
    assert any("/task/skin-analysis" in r.getMessage() for r in records)
    assert all("sig=" not in r.getMessage() for r in records)


def test_repr_of_client_and_results(client, emu):
    text = repr(client)
    assert text == ("Client(base_url=%r, version='2.1', api_key='***')" % emu.base_url)
    res = client.analyze(SD_IMAGE, ["pore"])
    assert repr(res).startswith("Result(task_id=")


def test_requests_per_analysis(client, emu):
    client.analyze(SD_IMAGE, ["pore"])
    endpoints = [r["endpoint"] for r in emu.log]
    assert endpoints[:3] == ["file_create", "upload", "task_create"]
    assert set(endpoints[3:]) == {"task_status"}
    assert all(r["authorization"] for r in api_requests(emu))
    assert not any(r["authorization"] for r in emu.log if r["endpoint"] == "upload")


def test_result_model(client, tmp_path):
    res = client.analyze(SD_IMAGE, ["wrinkle", "skin_type"])
    d = res.to_dict()
    assert d["task_id"] == res.task_id and len(d["scores"]) == len(res)
    assert d["scores"][0]["concern"] == "wrinkle"
    import json
    json.dumps(d)
    df = res.to_dataframe()
    assert list(df["concern"]) == [s.concern for s in res]
    assert df.attrs["task_id"] == res.task_id
    html = res._repr_html_()
    assert "<table class=\"sa-scores skinanalysis-scores\">" in html
    assert html.count("<img ") == 4 and "&amp;sig=" in html


def test_html_is_escaped():
    from skinanalysis.results import Result, Score
    evil = Score("<script>x</script>", "whole", 1.0, 2, None,
                 ("javascript:alert(1)", "http://h/a.png?x=\"><script>"))
    res = Result("t<1>", (evil,), 1.0, 2.0, None, None, "json")
    html = res._repr_html_()
    assert "<script>" not in html and "javascript:" not in html
    assert "&lt;script&gt;" in html and "t&lt;1&gt;" in html


def test_to_dataframe_without_pandas(client, monkeypatch):
    res = client.analyze(SD_IMAGE, ["pore"])
    import builtins
    real = builtins.__import__

    def fake(name, *args, **kwargs):
        if name == "pandas":
            raise ImportError("no pandas")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(ImportError, match=r"skinanalysis\[pandas\]"):
        res.to_dataframe()


def test_zip_bare_string_quirk(make_emulator, tmp_path):
    emu = make_emulator(task_seconds=0, quirks="zip_bare_string,numeric_headers,extra_fields")
    with skinanalysis.Client(emu.api_key, base_url=emu.base_url, **FAST) as c:
        res = c.analyze(SD_IMAGE, ["pore"], format="zip")
        assert res.get("pore") is not None and res.files
        assert res.save_masks(tmp_path)
        res = c.analyze(SD_IMAGE, ["pore"])
        assert res.get("pore") is not None


def test_polling_interval_from_the_server_is_honoured(make_emulator):
    # first poll after the client's 1 s; then every 200 ms as the server says
    emu = make_emulator(task_seconds=1.3, quirks="polling_interval", polling_interval_ms=200)
    with skinanalysis.Client(emu.api_key, base_url=emu.base_url,
                             poll_interval=1.0) as c:
        started = time.monotonic()
        job = c.submit(SD_IMAGE, ["pore"])
        job.wait(10)
    assert time.monotonic() - started < 1.9
    assert job.polls >= 2

"""The API key never appears in a log line, an exception or a repr."""

import json
import logging
import pickle
import socket

import pytest

import skinanalysis
from .sa_helpers import FAST, SD_IMAGE, SECRET_KEY

WRONG_KEY = "sk-WRONG-0d9e8f7a6b5c4d3e2f1a"


def texts_of(exc):
    yield str(exc)
    yield repr(exc)
    yield repr(exc.args)
    yield repr(pickle.dumps(exc))
    for name in ("message", "code", "task_id", "status_name"):
        yield repr(getattr(exc, name, None))
    yield repr(vars(exc))


def assert_clean(text, key):
    assert key not in text
    assert key[3:15] not in text  # not even a large piece of it


def test_success_path_at_debug(emu, caplog):
    with caplog.at_level(logging.DEBUG, logger="skinanalysis"):
        with skinanalysis.Client(SECRET_KEY, base_url=emu.base_url, **FAST) as c:
            assert_clean(repr(c), SECRET_KEY)
            job = c.submit(SD_IMAGE, ["pore"], format="zip")
            res = job.wait(10)
            assert_clean(repr(job), SECRET_KEY)
            assert_clean(repr(res) + json.dumps(res.to_dict()), SECRET_KEY)
            assert_clean(res._repr_html_(), SECRET_KEY)
    assert len(caplog.records) > 5
    assert_clean(caplog.text, SECRET_KEY)
    assert "***" in repr(c)


def _analyze_fails(caplog, key, base_url, error, **options):
    """An analysis with key against base_url fails with error; neither the
    error's texts nor the log show the key."""
    with caplog.at_level(logging.DEBUG, logger="skinanalysis"):
        with skinanalysis.Client(key, base_url=base_url, **options, **FAST) as c:
            with pytest.raises(error) as info:
                c.analyze(SD_IMAGE, ["pore"])
    for text in texts_of(info.value):
        assert_clean(text, key)
    assert_clean(caplog.text, key)


def test_auth_failure(emu, caplog):
    _analyze_fails(caplog, WRONG_KEY, emu.base_url, skinanalysis.AuthError)


def test_transport_failure(caplog):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _analyze_fails(caplog, SECRET_KEY, "http://127.0.0.1:%d" % port,
                   skinanalysis.TransportError, max_retries=0)


def test_construction_errors(emu):
    with pytest.raises(skinanalysis.ValidationError) as info:
        skinanalysis.Client(SECRET_KEY, base_url="http://example.com/")
    for text in texts_of(info.value):
        assert_clean(text, SECRET_KEY)


def test_async_client_repr(emu):
    c = skinanalysis.AsyncClient(SECRET_KEY, base_url=emu.base_url)
    assert_clean(repr(c), SECRET_KEY)
    assert repr(c).endswith("api_key='***')")
    c._core.close()


def test_key_never_sent_to_storage_or_result_hosts(emu, tmp_path):
    with skinanalysis.Client(SECRET_KEY, base_url=emu.base_url, **FAST) as c:
        c.analyze(SD_IMAGE, ["pore"]).save_masks(tmp_path)
        c.analyze(SD_IMAGE, ["pore"], format="zip").save_masks(tmp_path)
    assert emu.counters["auth_on_storage"] == 0
    assert emu.counters["auth_on_results"] == 0


# --- a server that echoes the key -------------------------------------------------------

_PAD = "x" * 482   # a job message (511 bytes) then cuts the key a few bytes in


def _echo_scenarios(key):
    return [
        ("auth", skinanalysis.AuthError, [
            {"endpoint": "file_create", "fault": "respond", "status": 401,
             "body": {"status": 401, "error": "Invalid API key Bearer " + key,
                      "error_code": key},
             "headers": {"x-request-id": "Bearer " + key}}]),
        ("auth_cut", skinanalysis.AuthError, [
            {"endpoint": "file_create", "fault": "respond", "status": 401,
             "body": {"status": 401, "error": _PAD + " " + key}}]),
        # a task that exists is polled through 500s: its deadline ends the
        # job (the submit keywords below), saying what the last poll met
        ("server", skinanalysis.DeadlineError, [
            {"endpoint": "task_status", "fault": "respond", "status": 500,
             "body": {"status": 500, "error": "upstream: Bearer " + key,
                      "error_code": "E" + key},
             "headers": {"x-request-id": key}}]),
        ("engine", skinanalysis.EngineError, [
            {"endpoint": "task_create", "fault": "engine_error", "code": key,
             "message": "Bearer " + key}]),
        ("upload", skinanalysis.UploadError, [
            {"endpoint": "upload", "fault": "respond", "status": 403,
             "content_type": "application/xml",
             "body": "<Error><Code>%s</Code><Message>Bearer %s</Message></Error>" % (key, key)}]),
    ]


@pytest.mark.parametrize("name", [c[0] for c in _echo_scenarios(SECRET_KEY)])
def test_key_echoed_by_the_server_is_in_no_exception(emu, caplog, name):
    _, cls, scenario = next(c for c in _echo_scenarios(SECRET_KEY) if c[0] == name)
    emu.set_scenario(scenario)
    extra = {"deadline": 2} if name == "server" else {}
    with caplog.at_level(logging.DEBUG, logger="skinanalysis"):
        with skinanalysis.Client(SECRET_KEY, base_url=emu.base_url, max_retries=1,
                                 **FAST) as c:
            job = c.submit(SD_IMAGE, ["pore"], **extra)
            with pytest.raises(cls) as info:
                job.wait(10)
            for text in (job.request_id, job.file_id, job.task_id, repr(job)):
                assert_clean(repr(text), SECRET_KEY)
    for text in texts_of(info.value):
        assert_clean(text, SECRET_KEY)
    if name != "upload":   # S3's answer carries no x-request-id of its own
        assert "[REDACTED]" in str(info.value)
    assert_clean(caplog.text, SECRET_KEY)


def test_key_echoed_in_a_result_is_scrubbed(emu):
    key = SECRET_KEY
    emu.set_scenario([{"endpoint": "task_status", "fault": "patch", "set": {
        "data.task_status": "success",
        "data.results": {"output": [
            {"type": "pore " + key, "region": "Bearer " + key, "ui_score": 50,
             "mask_urls": ["https://r.example/%s.png" % key]},
            {"type": "resize_image", "mask_urls": ["https://r.example/x.jpg?k=" + key]}]}}}])
    with skinanalysis.Client(key, base_url=emu.base_url, **FAST) as c:
        result = c.analyze(SD_IMAGE, ["pore"])
    text = repr(result) + json.dumps(result.to_dict()) + result._repr_html_()
    assert_clean(text, key)
    assert "[REDACTED]" in json.dumps(result.to_dict())

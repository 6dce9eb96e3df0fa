"""Every error type, produced for real against the emulator (or a closed
port), with its attributes."""

import socket

import pytest

import skinanalysis
from .sa_helpers import (FAST, HD_IMAGE, NOT_IMAGE, SD_IMAGE, SMALL_IMAGE,
                        tasks_polled_to_end)

QUICK_RETRIES = dict(FAST, max_retries=1)


def make_client(emu, key=None, **options):
    opts = dict(FAST)
    opts.update(options)
    return skinanalysis.Client(key or emu.api_key, base_url=emu.base_url, **opts)


# -- validation: before any request ------------------------------------------

VALIDATION_CASES = [
    ("unknown action", dict(image=SD_IMAGE, actions=["wrinkles"]), "unknown_action"),
    ("mixed tiers", dict(image=HD_IMAGE, actions=["wrinkle", "hd_pore"]), "mixed_tiers"),
    ("too many", dict(image=SD_IMAGE, actions=list(skinanalysis.ALL_ACTIONS)),
     "action_count"),
    ("no actions", dict(image=SD_IMAGE, actions=[]), "action_count"),
    ("missing file", dict(image="/nonexistent/face.jpg"), "file"),
    ("not an image", dict(image=NOT_IMAGE), "image_format"),
    ("bytes not an image", dict(image=b"GIF89a" + b"\0" * 100), "image_format"),
    ("too small for SD", dict(image=SMALL_IMAGE), "image_too_small"),
    ("too small for HD", dict(image=SD_IMAGE, hd=True), "image_too_small"),
    ("no source", dict(image=None), "source"),
    ("two sources", dict(image=SD_IMAGE, file_id="abc"), "source"),
    ("bad miniserver_args", dict(image=HD_IMAGE, hd=True,
                                 miniserver_args={"enable_mask_overlay": "yes"}),
     "bad_option"),
    ("unknown miniserver_args key", dict(image=HD_IMAGE, hd=True,
                                         miniserver_args={"nonsense": True}),
     "bad_option"),
    # what JSON scalars cannot say: the core's encoder refuses it, as in Lua
    ("miniserver_args value not a scalar",
     dict(image=HD_IMAGE, hd=True, miniserver_args={"enable_mask_overlay": [True]}),
     "bad_option"),
    ("miniserver_args key not a str",
     dict(image=HD_IMAGE, hd=True, miniserver_args={1: True}), "bad_option"),
    ("miniserver_args not finite",
     dict(image=HD_IMAGE, hd=True,
          miniserver_args={"opacity_dark_background_hd_pore": float("nan")}),
     "bad_option"),
    ("pf_camera_kit on v2.0", dict(image=SD_IMAGE, version="2.0", pf_camera_kit=True),
     "bad_option"),
]


@pytest.mark.parametrize("label,kwargs,name", VALIDATION_CASES,
                         ids=[c[0] for c in VALIDATION_CASES])
def test_validation_errors_send_nothing(client, emu, label, kwargs, name):
    kwargs = dict(kwargs)
    image = kwargs.pop("image")
    actions = kwargs.pop("actions", None)
    with pytest.raises(skinanalysis.ValidationError) as info:
        client.submit(image, actions, **kwargs)
    exc = info.value
    assert exc.status_name == name, str(exc)
    assert isinstance(exc, ValueError) and exc.message and exc.status is None
    assert exc.task_id is None
    assert emu.log == []


def test_oversized_image_is_refused_before_sending(client, emu):
    data = open(SD_IMAGE, "rb").read()
    big = data + b"\0" * (10_000_000 - len(data))
    with pytest.raises(skinanalysis.ValidationError) as info:
        client.submit(big)
    assert info.value.status_name == "image_too_large"
    assert emu.log == []


def test_bad_format_and_version_arguments(client, emu):
    with pytest.raises(skinanalysis.ValidationError):
        client.submit(SD_IMAGE, format="png")
    with pytest.raises(skinanalysis.ValidationError):
        client.submit(SD_IMAGE, version="1.0")
    with pytest.raises(TypeError):
        client.submit(12345)
    assert emu.log == []


def test_unknown_action_message_suggests(client):
    with pytest.raises(skinanalysis.ValidationError, match="wrinkle"):
        client.analyze(SD_IMAGE, ["wrinkles"])


# -- the API said no -----------------------------------------------------------

def test_auth_error(emu):
    with make_client(emu, key="not-a-valid-key") as c:
        with pytest.raises(skinanalysis.AuthError) as info:
            c.analyze(SD_IMAGE, ["pore"])
    exc = info.value
    assert exc.status == 401 and not exc.retryable
    assert exc.status_name == "auth"
    for text in (str(exc), repr(exc), repr(exc.args), exc.message):
        assert "not-a-valid-key" not in text


@pytest.mark.parametrize("variant,code", [("observed", "InvalidApiKey"),
                                          ("token", "InvalidAccessToken")])
def test_auth_error_variants(make_emulator, variant, code):
    emu = make_emulator(task_seconds=0, auth_variant=variant)
    with make_client(emu, key="wrong") as c:
        with pytest.raises(skinanalysis.AuthError) as info:
            c.analyze(SD_IMAGE, ["pore"])
    assert info.value.code == code


def test_credit_error(make_emulator):
    emu = make_emulator(task_seconds=0, units=1)
    with make_client(emu) as c:
        with pytest.raises(skinanalysis.CreditError) as info:
            c.analyze(SD_IMAGE, ["pore"])
    exc = info.value
    assert exc.status == 400 and exc.code == "CreditInsufficiency"
    assert isinstance(exc, skinanalysis.ApiError)
    assert emu.counters["tasks_created"] == 0


def test_engine_error(make_emulator):
    emu = make_emulator(task_seconds=0, engine_error="error_no_face")
    with make_client(emu) as c:
        job = c.submit(SD_IMAGE, ["pore"])
        with pytest.raises(skinanalysis.EngineError) as info:
            job.wait(10)
    exc = info.value
    assert exc.code == "error_no_face" and exc.task_id == job.task_id
    assert exc.status_name == "engine" and exc.status == 200
    assert isinstance(job.exception(), skinanalysis.EngineError)
    assert emu.units() == 100000  # errors are not billed


def test_engine_error_unknown_code_kept_verbatim(emu, client):
    emu.queue_engine_error("error_lighting_dark", "too dark")
    with pytest.raises(skinanalysis.EngineError) as info:
        client.analyze(SD_IMAGE, ["pore"])
    assert info.value.code == "error_lighting_dark"
    assert "too dark" in info.value.message


def test_task_expired_by_the_server(emu, client):
    emu.set_scenario([{"endpoint": "task_status", "fault": "invalid_task_id"}])
    with pytest.raises(skinanalysis.TaskExpiredError) as info:
        client.analyze(SD_IMAGE, ["pore"])
    assert info.value.status == 400 and info.value.task_id


def test_task_expired_after_a_short_poll_window(make_emulator):
    # the client polls every 0.5 s; the emulator expires tasks not polled for 0.2 s
    emu = make_emulator(task_seconds=2, poll_window=0.2)
    with make_client(emu, poll_interval=0.5, max_poll_interval=0.5) as c:
        with pytest.raises(skinanalysis.TaskExpiredError):
            c.analyze(SD_IMAGE, ["pore"])
    assert emu.counters["tasks_expired"] == 1


def test_task_timeout_on_the_server(emu, client):
    emu.set_scenario([{"endpoint": "task_status", "fault": "task_timeout_500"}])
    with pytest.raises(skinanalysis.TaskTimeoutError) as info:
        client.analyze(SD_IMAGE, ["pore"])
    assert info.value.status == 500


def test_ambiguous_task_create(emu):
    emu.set_scenario([{"endpoint": "task_create", "fault": "close_mid_response"}])
    with make_client(emu, max_retries=2) as c:
        with pytest.raises(skinanalysis.AmbiguousTaskError) as info:
            c.analyze(SD_IMAGE, ["pore"])
    assert "may" in info.value.message
    creates = [r for r in emu.log if r["endpoint"] == "task_create"]
    assert len(creates) == 1 and creates[0]["task_created"]  # never retried


def test_task_create_retried_when_nothing_was_sent(emu):
    emu.set_scenario([{"endpoint": "task_create", "nth": [1], "fault": "http_429"}])
    with make_client(emu) as c:
        assert c.analyze(SD_IMAGE, ["pore"]).get("pore")
    assert sum(r["endpoint"] == "task_create" for r in emu.log) == 2


@pytest.mark.parametrize("fault, error, status", [
    ("http_429", skinanalysis.RateLimitError, 429),
    ("http_502_html", skinanalysis.ServerError, 502),
], ids=["rate_limit", "server"])
def test_error_after_the_retry_budget(emu, fault, error, status):
    emu.set_scenario([{"endpoint": "file_create", "fault": fault}])
    with make_client(emu, max_retries=1) as c:
        with pytest.raises(error) as info:
            c.analyze(SD_IMAGE, ["pore"])
    assert info.value.status == status and info.value.retryable


def test_transient_faults_are_retried(emu, client):
    emu.set_scenario([
        {"endpoint": "file_create", "nth": [1], "fault": "http_503"},
        {"endpoint": "upload", "nth": [1], "fault": "close_before_response"},
        {"endpoint": "task_status", "nth": [1, 2], "fault": "http_502_html"},
    ])
    assert client.analyze(SD_IMAGE, ["pore"]).get("pore")


def test_protocol_error(emu):
    emu.set_scenario([{"endpoint": "file_create", "fault": "malformed_json"}])
    with make_client(emu, max_retries=0) as c:
        with pytest.raises(skinanalysis.ProtocolError):
            c.analyze(SD_IMAGE, ["pore"])


def test_limit_error_on_an_oversized_answer(emu):
    emu.set_scenario([{"endpoint": "file_create", "fault": "oversized_body",
                       "size_bytes": 2_000_000}])
    with make_client(emu, max_retries=0, max_body_bytes=100_000) as c:
        with pytest.raises(skinanalysis.LimitError):
            c.analyze(SD_IMAGE, ["pore"])


def test_upload_error(emu):
    emu.set_scenario([{"endpoint": "upload", "fault": "invalid_task_id"}])
    with make_client(emu, max_retries=0) as c:
        with pytest.raises(skinanalysis.UploadError):
            c.analyze(SD_IMAGE, ["pore"])


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_transport_error_on_a_closed_port():
    url = "http://127.0.0.1:%d" % closed_port()
    with skinanalysis.Client("k", base_url=url, max_retries=1, **FAST) as c:
        with pytest.raises(skinanalysis.TransportError) as info:
            c.analyze(SD_IMAGE, ["pore"])
    assert info.value.retryable and info.value.status is None


def test_request_timeout(emu):
    emu.set_scenario([{"endpoint": "file_create", "fault": "delay", "delay_ms": 3000}])
    with make_client(emu, max_retries=0, timeout=0.3) as c:
        with pytest.raises(skinanalysis.RequestTimeoutError) as info:
            c.analyze(SD_IMAGE, ["pore"])
    assert isinstance(info.value, skinanalysis.TransportError)
    assert isinstance(info.value, TimeoutError)


def test_deadline_error(make_emulator):
    emu = make_emulator(task_seconds=30)
    c = make_client(emu)
    try:
        job = c.submit(SD_IMAGE, ["pore"], deadline=0.5)
        with pytest.raises(skinanalysis.DeadlineError):
            job.wait(10)
        assert job.task_id
    finally:
        c.close(timeout=0.1)


def test_cancelled_error(client):
    job = client.submit(SD_IMAGE, ["pore"])
    job.cancel()
    with pytest.raises(skinanalysis.CancelledError) as info:
        job.result()
    assert info.value.status_name == "cancelled"


def test_usage_errors(client):
    job = client.submit(SD_IMAGE, ["pore"])
    with pytest.raises(skinanalysis.UsageError) as info:
        job.result()
    assert info.value.status_name == "not_done"
    job.wait(10)


def test_every_task_of_the_failures_was_polled_to_its_end(make_emulator):
    emu = make_emulator(task_seconds=0.2)
    emu.set_scenario([{"endpoint": "task_create", "every": 2, "fault": "engine_error"}])
    with make_client(emu) as c:
        outcomes = []
        for _ in range(4):
            try:
                outcomes.append(c.analyze(SD_IMAGE, ["pore"]))
            except skinanalysis.EngineError as exc:
                outcomes.append(exc)
    assert sum(isinstance(o, skinanalysis.EngineError) for o in outcomes) == 2
    created, unseen = tasks_polled_to_end(emu)
    assert len(created) == 4 and not unseen

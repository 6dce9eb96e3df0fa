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


def test_auth_failure(emu, caplog):
    with caplog.at_level(logging.DEBUG, logger="skinanalysis"):
        with skinanalysis.Client(WRONG_KEY, base_url=emu.base_url, **FAST) as c:
            with pytest.raises(skinanalysis.AuthError) as info:
                c.analyze(SD_IMAGE, ["pore"])
    for text in texts_of(info.value):
        assert_clean(text, WRONG_KEY)
    assert_clean(caplog.text, WRONG_KEY)


def test_transport_failure(caplog):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with caplog.at_level(logging.DEBUG, logger="skinanalysis"):
        with skinanalysis.Client(SECRET_KEY, base_url="http://127.0.0.1:%d" % port,
                                 max_retries=0, **FAST) as c:
            with pytest.raises(skinanalysis.TransportError) as info:
                c.analyze(SD_IMAGE, ["pore"])
    for text in texts_of(info.value):
        assert_clean(text, SECRET_KEY)
    assert_clean(caplog.text, SECRET_KEY)


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

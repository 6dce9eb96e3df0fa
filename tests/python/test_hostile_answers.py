"""Answers a hostile or broken server may send, through the whole client:
strings a NUL would cut, ids that are no ids (issue 12)."""

import json

import pytest

import skinanalysis
from .sa_helpers import FAST, SD_IMAGE


def _client(emu, **extra):
    opts = dict(FAST, max_retries=1)
    opts.update(extra)
    return skinanalysis.Client(emu.api_key, base_url=emu.base_url, **opts)


def test_task_id_cut_by_a_nul_never_polls_another_task(emu):
    """"<A>\\u0000/../../other" once made the client poll task A and report
    A's result as its own."""
    with _client(emu) as c:
        other = c.submit(SD_IMAGE, ["pore"])
        other.wait(10)
        emu.set_scenario([{"endpoint": "task_create", "fault": "patch",
                           "set": {"data.task_id": other.task_id + "\u0000/../../other"}}])
        polls_before = emu.counters["requests"].get("task_status", 0)
        with pytest.raises(skinanalysis.AmbiguousTaskError) as info:
            c.analyze(SD_IMAGE, ["pore"])
    assert "NUL" in str(info.value)
    assert emu.counters["requests"].get("task_status", 0) == polls_before


def test_file_id_cut_by_a_nul_never_creates_a_task(emu):
    """"<F>\\u0000EVIL" once created a billed task on file F."""
    with _client(emu) as c:
        first = c.submit(SD_IMAGE, ["pore"])
        first.wait(10)
        tasks_before = emu.counters["tasks_created"]
        emu.set_scenario([{"endpoint": "file_create", "fault": "patch",
                           "set": {"data.files.0.file_id": first.file_id + "\u0000EVIL"}}])
        with pytest.raises(skinanalysis.ProtocolError):
            c.analyze(SD_IMAGE, ["pore"])
    assert emu.counters["tasks_created"] == tasks_before
    assert emu.counters["requests"].get("task_create", 0) == 1


def test_concern_cut_by_a_nul_is_no_result(emu):
    """"wrin\\u0000kle" was read as a concern "wrin"."""
    emu.set_scenario([{"endpoint": "task_status", "fault": "patch",
                       "set": {"data.results.output.0.type": "wrin\u0000kle"}}])
    with _client(emu) as c:
        with pytest.raises(skinanalysis.ProtocolError):
            c.analyze(SD_IMAGE, ["wrinkle"])


@pytest.mark.parametrize("task_id", ["..", "a b", "a?b=1", "x\u00e9"])
def test_task_id_of_other_characters_is_unreadable(emu, task_id):
    emu.set_scenario([{"endpoint": "task_create", "fault": "patch",
                       "set": {"data.task_id": task_id}}])
    with _client(emu) as c:
        with pytest.raises(skinanalysis.AmbiguousTaskError):
            c.analyze(SD_IMAGE, ["pore"])


@pytest.mark.parametrize("url", ["ftp://storage.example/up", "file:///etc/passwd",
                                 "https://storage.example/up\r\nHost: evil"])
def test_unusable_upload_url_is_refused_at_once(emu, url):
    """Such a slot never gets better: it was retried 7 times (30 s)."""
    emu.set_scenario([{"endpoint": "file_create", "fault": "patch",
                       "set": {"data.files.0.requests.0.url": url}}])
    with _client(emu, max_retries=3) as c:
        with pytest.raises(skinanalysis.ProtocolError) as info:
            c.analyze(SD_IMAGE, ["pore"])
    assert "upload URL" in str(info.value)
    assert emu.counters["requests"].get("file_create", 0) == 1
    assert emu.counters["requests"].get("upload", 0) == 0


def test_upload_sends_only_what_a_presigned_put_needs(emu):
    headers = "data.files.0.requests.0.headers."
    emu.set_scenario([{"endpoint": "file_create", "fault": "patch", "set": {
        headers + "Cookie": "session=1", headers + "Host": "evil.example",
        headers + "Transfer-Encoding": "chunked", headers + "Authorization": "Bearer x",
        headers + "X-Forwarded-For": "1.2.3.4", headers + "x-amz-meta-user": "me"}}])
    with _client(emu) as c:
        c.analyze(SD_IMAGE, ["pore"])
    (upload,) = [r for r in emu.log if r["endpoint"] == "upload"]
    sent = {name.lower() for name in upload["headers"]}
    assert "x-amz-meta-user" in sent and "content-type" in sent and "content-length" in sent
    assert not sent & {"cookie", "transfer-encoding", "authorization", "x-forwarded-for"}
    assert emu.counters["auth_on_storage"] == 0


@pytest.mark.parametrize("fault", ["close_mid_response", "close_before_response"])
def test_ambiguous_create_has_no_status_of_an_earlier_step(emu, fault):
    """AmbiguousTaskError.status was the upload's 200 (and job.request_id
    the file create's) when no whole create answer arrived."""
    emu.set_scenario([{"endpoint": "task_create", "fault": fault, "apply": "after"}])
    with _client(emu) as c:
        job = c.submit(SD_IMAGE, ["pore"])
        with pytest.raises(skinanalysis.AmbiguousTaskError) as info:
            job.wait(10)
        rid = job.request_id
    assert info.value.status is None
    if fault == "close_before_response":   # not a byte of an answer
        assert rid is None


@pytest.mark.parametrize("results", [[1, 2, 3], [], 12345, {}, [None, "x"]])
def test_success_without_a_result_is_one_protocol_error(emu, results):
    """[1,2,3] was a success with 0 scores while 12345 was a protocol error."""
    emu.set_scenario([{"endpoint": "task_status", "fault": "patch",
                       "set": {"data.results": results}}])
    with _client(emu) as c:
        with pytest.raises(skinanalysis.ProtocolError) as info:
            c.analyze(SD_IMAGE, ["pore"])
    assert "data.results" in str(info.value)
    with pytest.raises(skinanalysis.ProtocolError):
        skinanalysis.Result.from_json(json.dumps(
            {"status": 200, "data": {"task_status": "success", "results": results}}))

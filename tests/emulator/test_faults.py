"""Fault injection (scenario files and control API), the control endpoint,
the request log and counters."""

import json
import socket
import time

import pytest
import requests

from conftest import KEY, Api, example

SD = ["wrinkle"]


def _control(emu, method, path, body=None, raw=None, headers=None):
    resp = requests.request(method, emu.base_url + "/_control/" + path, json=body, data=raw,
                            headers=headers)
    return resp.status_code, resp.json()


def _task(api, sd_jpeg):
    file_id = api.upload(sd_jpeg)
    status, body = api.create_task({"src_file_id": file_id, "dst_actions": SD, "format": "json"})
    assert status == 200
    return body["data"]["task_id"]


def _status_url(emu, task_id):
    return emu.base_url + "/s2s/v2.1/task/skin-analysis/" + task_id


HEADERS = {"Authorization": "Bearer " + KEY}


@pytest.mark.parametrize("fault,status,ctype,marker", [
    ("http_500_html", 500, "text/html", b"500 Internal Server Error"),
    ("http_502_html", 502, "text/html", b"502 Bad Gateway"),
    ("http_503", 503, "text/html", b"503 Service Temporarily Unavailable"),
])
def test_html_gateway_errors(api, emu, sd_jpeg, fault, status, ctype, marker):
    task_id = _task(api, sd_jpeg)
    emu.set_scenario({"faults": [{"endpoint": "task_status", "nth": [1, 3], "fault": fault}]})
    url = _status_url(emu, task_id)
    results = [requests.get(url, headers=HEADERS) for _ in range(4)]
    assert [r.status_code for r in results] == [status, 200, status, 200]
    assert results[0].headers["Content-Type"] == ctype and marker in results[0].content
    log = [e for e in emu.log if e["endpoint"] == "task_status"]
    assert [e["fault"] for e in log] == [fault, None, fault, None]
    assert emu.counters["faults_applied"] == {fault: 2}


def test_http_429_fault(api, emu, sd_jpeg):
    task_id = _task(api, sd_jpeg)
    emu.set_scenario([{"endpoint": "task_status", "times": 2, "fault": "http_429"}])
    statuses = []
    for _ in range(3):
        resp = requests.get(_status_url(emu, task_id), headers=HEADERS)
        statuses.append(resp.status_code)
        if resp.status_code == 429:
            assert resp.json() == example("error-429.json")
            assert "Retry-After" not in resp.headers
    assert statuses == [429, 429, 200]
    assert emu.counters["responses_429"] == 2


def test_task_timeout_and_invalid_task_id_faults(api, emu, spec, sd_jpeg):
    task_id = _task(api, sd_jpeg)
    emu.set_scenario([{"endpoint": "task_status", "nth": [1], "fault": "task_timeout_500"},
                      {"endpoint": "task_status", "nth": [2], "fault": "invalid_task_id"}])
    assert api.status(task_id) == (500, example("error-500-task-timeout.json"))
    assert api.status(task_id) == (400, example("error-400-invalid-task-id.json"))
    assert api.status(task_id)[1]["data"]["task_status"] == "success"


def test_close_before_response(api, emu, sd_jpeg):
    task_id = _task(api, sd_jpeg)
    emu.set_scenario([{"endpoint": "task_status", "nth": [1], "fault": "close_before_response"}])
    with pytest.raises(requests.ConnectionError):
        requests.get(_status_url(emu, task_id), headers=HEADERS)
    assert requests.get(_status_url(emu, task_id), headers=HEADERS).status_code == 200
    assert emu.log[-2]["status"] is None and emu.log[-2]["fault"] == "close_before_response"


@pytest.mark.parametrize("apply,created", [("before", False), ("after", True)])
def test_task_create_fault_before_or_after(api, emu, sd_jpeg, apply, created):
    file_id = api.upload(sd_jpeg)
    emu.set_scenario([{"endpoint": "task_create", "nth": [1], "fault": "http_502_html",
                       "apply": apply}])
    resp = requests.post(emu.base_url + "/s2s/v2.1/task/skin-analysis", headers=HEADERS,
                         json={"src_file_id": file_id, "dst_actions": SD})
    assert resp.status_code == 502
    entry = emu.log[-1]
    assert entry["task_created"] is created
    assert (entry["task_id"] is not None) is created
    assert emu.counters["tasks_created"] == int(created)


def test_ambiguous_create_close_mid_response(api, emu, sd_jpeg):
    """The task is created, the answer is cut: the client cannot know."""
    file_id = api.upload(sd_jpeg)
    emu.set_scenario([{"endpoint": "task_create", "nth": [1], "fault": "close_mid_response"}])
    with pytest.raises((requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        requests.post(emu.base_url + "/s2s/v2.1/task/skin-analysis", headers=HEADERS,
                      json={"src_file_id": file_id, "dst_actions": SD})
    entry = emu.log[-1]
    assert entry["fault"] == "close_mid_response" and entry["task_created"] is True
    # the task exists, runs and is billed although the client never saw its id
    emu.advance_clock(0)      # settle the running tasks now (tasks take 0 s here)
    c = emu.counters
    assert c["tasks_created"] == 1 and c["tasks_succeeded"] == 1
    assert c["units_charged"] == {KEY: 9}      # billed: 9 units for 1-4 SD actions


def test_close_mid_response_raw(api, emu, sd_jpeg):
    task_id = _task(api, sd_jpeg)
    emu.set_scenario([{"endpoint": "task_status", "nth": [1], "fault": "close_mid_response"}])
    sock = socket.create_connection((emu.host_port[0], emu.host_port[1]))
    sock.sendall(("GET /s2s/v2.1/task/skin-analysis/%s HTTP/1.1\r\nHost: x\r\n"
                  "Authorization: Bearer %s\r\n\r\n" % (task_id, KEY)).encode())
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0]
                 .split(b":")[1])
    assert head.startswith(b"HTTP/1.1 200") and 0 < len(body) < length


def test_truncated_and_malformed_json(api, emu, sd_jpeg):
    task_id = _task(api, sd_jpeg)
    emu.set_scenario([{"endpoint": "task_status", "nth": [1], "fault": "truncated_json"},
                      {"endpoint": "task_status", "nth": [2], "fault": "malformed_json"}])
    for _ in range(2):
        resp = requests.get(_status_url(emu, task_id), headers=HEADERS)
        assert resp.status_code == 200 and resp.headers["Content-Type"] == "application/json"
        with pytest.raises(ValueError):
            json.loads(resp.content)
        assert len(resp.content) == int(resp.headers["Content-Length"])


def test_oversized_body(api, emu, sd_jpeg):
    task_id = _task(api, sd_jpeg)
    size = 8 * 1024 * 1024
    emu.set_scenario([{"endpoint": "task_status", "nth": [1], "fault": "oversized_body",
                       "size_bytes": size}])
    resp = requests.get(_status_url(emu, task_id), headers=HEADERS, stream=True)
    assert int(resp.headers["Content-Length"]) == size
    total = 0
    first = b""
    for chunk in resp.iter_content(1 << 20):
        if not first:
            first = chunk[:40]
        total += len(chunk)
    assert total == size and first.startswith(b'{"status":200,"data":{"padding":"xxx')
    # the connection is still usable
    assert requests.get(_status_url(emu, task_id), headers=HEADERS).status_code == 200


def test_oversized_default_is_64_mib(api, emu, sd_jpeg):
    task_id = _task(api, sd_jpeg)
    emu.set_scenario([{"endpoint": "task_status", "nth": [1], "fault": "oversized_body"}])
    resp = requests.get(_status_url(emu, task_id), headers=HEADERS, stream=True)
    assert int(resp.headers["Content-Length"]) == 64 * 1024 * 1024
    resp.close()


def test_delay(api, emu, sd_jpeg):
    task_id = _task(api, sd_jpeg)
    emu.set_scenario([{"endpoint": "task_status", "nth": [1], "fault": "delay", "delay_ms": 300}])
    t0 = time.monotonic()
    assert requests.get(_status_url(emu, task_id), headers=HEADERS).status_code == 200
    assert time.monotonic() - t0 >= 0.29


def test_engine_error_fault_on_create(api, emu, sd_jpeg):
    emu.set_scenario([{"endpoint": "task_create", "every": 2, "fault": "engine_error",
                       "code": "error_src_face_too_small"}])
    outcomes = [api.run(sd_jpeg, SD)[1]["data"].get("error") for _ in range(4)]
    assert outcomes == [None, "error_src_face_too_small", None, "error_src_face_too_small"]


def test_engine_error_fault_on_status(make_emu, spec, sd_jpeg):
    emu = make_emu(task_seconds=0.2)
    api = Api(emu, spec)
    task_id = _task(api, sd_jpeg)
    emu.set_scenario([{"endpoint": "task_status", "nth": [1], "fault": "engine_error",
                       "code": "error_face_parsing", "message": "parse"}])
    assert api.status(task_id)[1]["data"]["task_status"] == "running"
    data = api.wait(task_id)["data"]
    assert (data["error"], data["error_message"]) == ("error_face_parsing", "parse")


@pytest.mark.parametrize("endpoint,call", [
    ("file_create", lambda api, emu, url: requests.post(
        emu.base_url + "/s2s/v2.0/file", headers=HEADERS,
        json={"files": [{"content_type": "image/png", "file_name": "a", "file_size": 1}]})),
    ("upload", lambda api, emu, url: requests.put(
        api.upload_slot(b"x")["requests"][0]["url"], data=b"x",
        headers={"Content-Type": "image/jpeg"})),
    ("result", lambda api, emu, url: requests.get(url)),
])
def test_faults_on_other_endpoints(api, emu, sd_jpeg, endpoint, call):
    _, final = api.run(sd_jpeg, SD, "zip")
    url = final["data"]["results"]["url"]
    emu.set_scenario([{"endpoint": endpoint, "nth": [1], "fault": "http_503"}])
    assert call(api, emu, url).status_code == 503


def test_any_endpoint_every(api, emu, sd_jpeg):
    emu.set_scenario({"faults": [{"endpoint": "any", "every": 3, "fault": "http_500_html"}]})
    body = {"files": [{"content_type": "image/png", "file_name": "a", "file_size": 1}]}
    statuses = [requests.post(emu.base_url + "/s2s/v2.0/file", headers=HEADERS,
                              json=body).status_code for _ in range(6)]
    assert statuses == [200, 200, 500, 200, 200, 500]


def test_scenario_file_cli_option(make_emu, tmp_path, spec, sd_jpeg):
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps({"faults": [{"endpoint": "file_create", "nth": [2],
                                            "fault": "http_502_html"}]}))
    emu = make_emu(scenario=str(path))
    body = {"files": [{"content_type": "image/png", "file_name": "a", "file_size": 1}]}
    codes = [requests.post(emu.base_url + "/s2s/v2.0/file", json=body, headers=HEADERS).status_code
             for _ in range(3)]
    assert codes == [200, 502, 200]
    emu.reset()  # reset reinstalls the configured scenario with fresh counters
    codes = [requests.post(emu.base_url + "/s2s/v2.0/file", json=body, headers=HEADERS).status_code
             for _ in range(2)]
    assert codes == [200, 502]


def test_respond_scripts_the_whole_answer(api, emu, sd_jpeg):
    task_id = _task(api, sd_jpeg)
    emu.set_scenario([
        {"endpoint": "task_status", "nth": [1], "fault": "respond", "status": 500,
         "body": {"status": 500, "error": "Bearer " + KEY}, "headers": {"x-request-id": KEY}},
        {"endpoint": "task_status", "nth": [2], "fault": "respond", "status": 403,
         "body": "<Error><Code>AccessDenied</Code></Error>", "content_type": "application/xml"},
        {"endpoint": "task_status", "nth": [3], "fault": "respond"},
    ])
    first = requests.get(_status_url(emu, task_id), headers=HEADERS)
    assert first.status_code == 500 and first.json() == {"status": 500, "error": "Bearer " + KEY}
    assert first.headers["x-request-id"] == KEY      # replaces the emulator's own
    assert first.headers["content-type"] == "application/json"
    second = requests.get(_status_url(emu, task_id), headers=HEADERS)
    assert (second.status_code, second.headers["content-type"]) == (403, "application/xml")
    assert second.content == b"<Error><Code>AccessDenied</Code></Error>"
    third = requests.get(_status_url(emu, task_id), headers=HEADERS)
    assert (third.status_code, third.content) == (200, b"")
    assert third.headers["x-request-id"].isdigit()


def test_respond_after_processes_the_request(api, emu, sd_jpeg):
    file_id = api.upload(sd_jpeg)
    emu.set_scenario([{"endpoint": "task_create", "fault": "respond", "apply": "after",
                       "status": 502, "body": ""}])
    resp = requests.post(emu.base_url + "/s2s/v2.1/task/skin-analysis", headers=HEADERS,
                         json={"src_file_id": file_id, "dst_actions": SD, "format": "json"})
    assert (resp.status_code, resp.content) == (502, b"")
    assert [r["task_created"] for r in emu.log if r["endpoint"] == "task_create"] == [True]


def test_patch_sets_paths_of_the_real_answer(api, emu, sd_jpeg):
    emu.set_scenario([{"endpoint": "file_create", "fault": "patch",
                       "set": {"data.files.0.file_id": "FILE\u0000EVIL",
                               "data.files.0.requests.0.headers.Cookie": "a=b",
                               "data.extra": [1, 2]},
                       "headers": {"x-request-id": "patched"}}])
    resp = requests.post(emu.base_url + "/s2s/v2.1/file/skin-analysis", headers=HEADERS,
                         json={"files": [{"content_type": "image/jpeg", "file_name": "a.jpg",
                                          "file_size": 100}]})
    assert resp.status_code == 200 and resp.headers["x-request-id"] == "patched"
    assert b"FILE\\u0000EVIL" in resp.content          # a JSON escape, not a raw NUL
    data = resp.json()["data"]
    assert data["files"][0]["file_id"] == "FILE\u0000EVIL"
    assert data["files"][0]["requests"][0]["headers"]["Cookie"] == "a=b"
    assert data["files"][0]["requests"][0]["headers"]["Content-Type"] == "image/jpeg"
    assert data["extra"] == [1, 2]


def test_patch_that_does_not_fit_is_a_500(api, emu, sd_jpeg):
    emu.set_scenario([{"endpoint": "file_create", "fault": "patch",
                       "set": {"data.files.7.file_id": "x"}}])
    resp = requests.post(emu.base_url + "/s2s/v2.1/file/skin-analysis", headers=HEADERS,
                         json={"files": [{"content_type": "image/jpeg", "file_name": "a.jpg",
                                          "file_size": 100}]})
    assert resp.status_code == 500 and b"does not fit" in resp.content


@pytest.mark.parametrize("bad", [
    {"faults": [{"endpoint": "task_status", "fault": "respond", "status": 1000}]},
    {"faults": [{"endpoint": "task_status", "fault": "respond", "headers": {"a b": "x"}}]},
    {"faults": [{"endpoint": "task_status", "fault": "respond", "headers": {"X": "a\r\nB: c"}}]},
    {"faults": [{"endpoint": "task_status", "fault": "patch"}]},
    {"faults": [{"endpoint": "task_status", "fault": "patch", "set": {}}]},
    {"faults": [{"endpoint": "task_status", "fault": "respond", "set": {"a": 1}}]},
    {"faults": [{"endpoint": "nowhere", "fault": "delay"}]},
    {"faults": [{"endpoint": "task_status", "fault": "explode"}]},
    {"faults": [{"endpoint": "task_status", "fault": "delay", "nth": [0]}]},
    {"faults": [{"endpoint": "upload", "fault": "engine_error"}]},
    {"faults": [{"endpoint": "task_status", "fault": "delay", "typo": 1}]},
    {"faults": "x"},
])
def test_bad_scenarios_rejected(emu, bad):
    status, body = _control(emu, "POST", "scenario", bad)
    assert status == 400 and body["error"]


# --- control endpoint ---------------------------------------------------------------

def test_control_scenario_roundtrip(emu):
    spec = {"faults": [{"endpoint": "task_status", "nth": [2], "fault": "http_503"}]}
    assert _control(emu, "POST", "scenario", spec)[0] == 200
    status, body = _control(emu, "GET", "scenario")
    assert body["scenario"] == spec and body["hits"][0]["hits"] == 0
    assert _control(emu, "DELETE", "scenario")[0] == 200
    assert _control(emu, "GET", "scenario")[1]["scenario"] == {"faults": []}


def test_control_log_and_counters(api, emu, sd_jpeg):
    task_id, _ = api.run(sd_jpeg, SD)
    status, body = _control(emu, "GET", "log")
    log = body["log"]
    assert [e["endpoint"] for e in log[:4]] == ["file_create", "upload", "task_create",
                                                "task_status"]
    for entry in log:
        assert set(entry) >= {"seq", "time", "method", "path", "client_ip", "headers",
                              "authorization", "body_size", "status", "fault", "task_id"}
        assert "emulator-key" not in json.dumps(entry)
    assert log[0]["authorization"] is True and log[1]["authorization"] is False
    assert "Content-Type" in log[1]["headers"] and log[1]["body_size"] == len(sd_jpeg)
    assert log[2]["task_created"] is True and log[2]["task_id"] == task_id
    since = log[1]["seq"]
    assert [e["seq"] for e in _control(emu, "GET", "log?since=%d" % since)[1]["log"]][0] == since + 1
    status, c = _control(emu, "GET", "counters")
    assert c["requests"]["file_create"] == 1 and c["requests"]["upload"] == 1
    assert c["tasks_created"] == 1 and c["tasks_succeeded"] == 1 and c["uploads"] == 1
    assert c["units_charged"] == {KEY: 9} and c["balances"][KEY] == 100000 - 9
    assert task_id in c["max_unpolled_gap"]


def test_control_reset(api, emu, sd_jpeg):
    api.run(sd_jpeg, SD)
    assert _control(emu, "POST", "reset")[0] == 200
    c = emu.counters
    assert c["tasks_created"] == 0 and c["balances"][KEY] == 100000 and emu.log == []


def test_control_public_and_tasks(api, emu, sd_jpeg):
    status, body = _control(emu, "POST", "public/face.jpg", raw=sd_jpeg,
                            headers={"Content-Type": "image/jpeg"})
    assert status == 200
    resp = requests.get(body["url"])
    assert resp.content == sd_jpeg and resp.headers["Content-Type"] == "image/jpeg"
    _, created = api.create_task({"src_file_url": body["url"], "dst_actions": SD})
    task_id = created["data"]["task_id"]
    assert _control(emu, "GET", "task/" + task_id)[1]["status"] in ("running", "success")
    assert [t["task_id"] for t in _control(emu, "GET", "tasks")[1]["tasks"]] == [task_id]


def test_control_task_engine_error_and_finish(make_emu, spec, sd_jpeg):
    emu = make_emu(task_seconds=30)
    api = Api(emu, spec)
    task_id = _task(api, sd_jpeg)
    assert _control(emu, "POST", "task/%s/engine_error" % task_id, {"code": "error_no_face"})[0] == 200
    status, body = _control(emu, "POST", "task/%s/finish" % task_id)
    assert status == 200 and body["status"] == "error"
    assert api.status(task_id)[1]["data"]["error"] == "error_no_face"
    assert _control(emu, "POST", "task/%s/finish" % task_id)[0] == 409
    assert _control(emu, "POST", "engine_error/next", {"code": "error_pose"})[0] == 200
    assert _control(emu, "POST", "engine_error/next", {"nope": 1})[0] == 400


def test_control_public_nested_names(emu):
    status, body = _control(emu, "POST", "public/a/mask.png", raw=b"A")
    assert status == 200 and body["url"] == emu.base_url + "/_public/a/mask.png"
    _control(emu, "POST", "public/b/mask.png", raw=b"B")
    assert requests.get(emu.base_url + "/_public/a/mask.png").content == b"A"
    assert requests.get(emu.base_url + "/_public/b/mask.png").content == b"B"
    for bad in ("public/a//b.png", "public/a/"):   # (requests folds . and ..)
        assert _control(emu, "POST", bad, raw=b"x")[0] == 400


def test_control_task_results_override(make_emu, spec, sd_jpeg):
    emu = make_emu(task_seconds=30)
    api = Api(emu, spec)
    task_id = _task(api, sd_jpeg)
    results = {"output": [
        {"type": "wrinkle", "ui_score": 50, "raw_score": 50.5,
         "mask_urls": ["{base}/_public/a.png?v=1", "{result:wrinkle_output.png}"]},
        {"type": "resize_image", "mask_urls": ["ftp://elsewhere/x.jpg"]}]}
    assert _control(emu, "POST", "task/%s/results" % task_id, {"nope": 1})[0] == 400
    assert _control(emu, "POST", "task/%s/results" % task_id, {"results": results})[0] == 200
    assert _control(emu, "POST", "task/%s/finish" % task_id)[0] == 200
    data = api.status(task_id)[1]["data"]
    assert data["task_status"] == "success"
    out = data["results"]["output"]
    assert out[0]["mask_urls"][0] == emu.base_url + "/_public/a.png?v=1"
    signed = out[0]["mask_urls"][1]
    assert signed.startswith(emu.base_url + "/_results/") and "sig=" in signed
    assert requests.get(signed).status_code == 200
    assert out[1]["mask_urls"] == ["ftp://elsewhere/x.jpg"]
    emu.set_task_results(task_id, None)
    out = api.status(task_id)[1]["data"]["results"]["output"]
    assert out[0]["type"] == "wrinkle" and "_public" not in out[0]["mask_urls"][0]


def test_trickle(api, emu, sd_jpeg):
    status, body = api.run(sd_jpeg, SD)
    url = body["data"]["results"]["output"][0]["mask_urls"][0]
    emu.set_scenario([{"endpoint": "result", "nth": [1], "fault": "trickle",
                       "size_bytes": 5, "delay_ms": 100}])
    t0 = time.monotonic()
    resp = requests.get(url, stream=True)
    assert resp.status_code == 200 and int(resp.headers["Content-Length"]) == 5
    assert resp.raw.read(5) == b"xxxxx"
    assert time.monotonic() - t0 >= 0.35   # a pause after each byte
    # the next download is the real one
    assert requests.get(url).content.startswith(b"\x89PNG")


def test_control_units(api, emu, sd_jpeg):
    assert _control(emu, "POST", "units", {"key": KEY, "units": 5})[0] == 200
    assert _control(emu, "GET", "units")[1]["balances"] == {KEY: 5}
    file_id = api.upload(sd_jpeg)
    status, body = api.create_task({"src_file_id": file_id, "dst_actions": SD})
    assert status == 400 and body["error_code"] == "CreditInsufficiency"
    assert _control(emu, "POST", "units", {"key": "stranger", "units": 5})[0] == 400


def test_control_config_hides_keys(emu):
    status, body = _control(emu, "GET", "config")
    assert status == 200 and body["keys"] == 1 and "emulator-key" not in json.dumps(body)
    assert _control(emu, "GET", "nope")[0] == 404

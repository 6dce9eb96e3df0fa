"""File slot creation (all three upload paths) and the pre-signed PUT."""

import base64

import pytest
import requests

from conftest import example

UPLOAD_PATHS = ["/s2s/v2.0/file/skin-analysis", "/s2s/v2.1/file/skin-analysis", "/s2s/v2.0/file"]


@pytest.mark.parametrize("path", UPLOAD_PATHS)
@pytest.mark.parametrize("ctype", ["image/jpeg", "image/jpg", "image/png"])
def test_file_create_shape(api, path, ctype):
    status, body = api.file_create(ctype, 547541, "skin.png", path=path)
    assert status == 200
    expected = example("file-create-response.json")
    assert set(body) == set(expected)
    files = body["data"]["files"]
    assert len(files) == 1
    f = files[0]
    assert set(f) == set(expected["data"]["files"][0])
    assert f["content_type"] == ctype and f["file_name"] == "skin.png"
    assert len(f["file_id"]) == 64 and "/" in f["file_id"] and "+" in f["file_id"]
    base64.b64decode(f["file_id"], validate=True)
    (req,) = f["requests"]
    assert req["method"] == "PUT"
    assert req["url"].startswith(api.emu.base_url + "/_storage/")
    assert req["headers"] == {"Content-Length": "547541", "Content-Type": ctype}


def test_file_create_several_files(api):
    body = {"files": [{"content_type": "image/png", "file_name": "a.png", "file_size": 10},
                      {"content_type": "image/jpeg", "file_name": "b.jpg", "file_size": 20}]}
    status, out = api.call("POST", "/s2s/v2.1/file/skin-analysis", body)
    assert status == 200
    assert [f["file_name"] for f in out["data"]["files"]] == ["a.png", "b.jpg"]


@pytest.mark.parametrize("files", [
    None, [], "x", [{}],
    [{"content_type": "image/gif", "file_name": "a.gif", "file_size": 10}],
    [{"content_type": "image/jpeg", "file_name": "", "file_size": 10}],
    [{"content_type": "image/jpeg", "file_name": "a.jpg", "file_size": 0}],
    [{"content_type": "image/jpeg", "file_name": "a.jpg", "file_size": -5}],
    [{"content_type": "image/jpeg", "file_name": "a.jpg", "file_size": 10_000_000}],
    [{"content_type": "image/jpeg", "file_name": "a.jpg", "file_size": "10"}],
    [{"content_type": "image/jpeg", "file_name": "a.jpg", "file_size": 1.5}],
    [{"content_type": "image/jpeg", "file_name": "a.jpg", "file_size": True}],
])
def test_file_create_invalid(api, files):
    body = {} if files is None else {"files": files}
    status, out = api.call("POST", "/s2s/v2.1/file/skin-analysis", body)
    assert status == 400
    assert out == {"status": 400, "error": "Invalid parameter value",
                   "error_code": "InvalidParameters"}


def test_file_create_not_json(api):
    status, out = api.call("POST", "/s2s/v2.0/file/skin-analysis", raw=b"{nope",
                           headers=dict(api.headers(), **{"Content-Type": "application/json"}))
    assert status == 400 and out["error_code"] == "InvalidParameters"


def test_file_size_boundary(api):
    assert api.file_create(size=9_999_999)[0] == 200
    assert api.file_create(size=10_000_000)[0] == 400


def test_numeric_headers_quirk(make_emu, spec):
    from conftest import Api
    api = Api(make_emu(quirks="numeric_headers"), spec)
    status, body = api.file_create("image/png", 50000)
    assert body["data"]["files"][0]["requests"][0]["headers"] == {
        "Content-Length": 50000, "Content-Type": "image/png"}


# --- the pre-signed PUT ---------------------------------------------------------------

def _slot(api, data, ctype="image/jpeg"):
    req = api.upload_slot(data, ctype)["requests"][0]
    return req["url"], req["headers"]


def test_put_success(api, sd_jpeg):
    url, headers = _slot(api, sd_jpeg)
    resp = requests.put(url, data=sd_jpeg, headers=headers)
    assert resp.status_code == 200 and resp.content == b""
    assert resp.headers["ETag"].startswith('"')
    c = api.emu.counters
    assert c["uploads"] == 1 and c["auth_on_storage"] == 0
    with api.emu.state.lock:
        assert any(f.data == sd_jpeg for f in api.emu.state.files.values())


def test_put_rejects_authorization(api, sd_jpeg):
    url, headers = _slot(api, sd_jpeg)
    resp = requests.put(url, data=sd_jpeg, headers=dict(headers, Authorization="Bearer emulator-key"))
    assert resp.status_code == 400
    assert resp.headers["Content-Type"] == "application/xml"
    assert "<Code>InvalidArgument</Code>" in resp.text
    assert "<Message>Only one auth mechanism allowed" in resp.text
    assert api.emu.counters["auth_on_storage"] == 1
    assert api.emu.counters["uploads"] == 0


def test_put_bad_signature(api, sd_jpeg):
    url, headers = _slot(api, sd_jpeg)
    bad = url[:-4] + ("0000" if not url.endswith("0000") else "1111")
    resp = requests.put(bad, data=sd_jpeg, headers=headers)
    assert resp.status_code == 403
    assert "<Code>SignatureDoesNotMatch</Code>" in resp.text


def test_put_tampered_expiry(api, sd_jpeg):
    url, headers = _slot(api, sd_jpeg)
    base, _, query = url.partition("?")
    params = dict(p.split("=") for p in query.split("&"))
    params["expires"] = str(int(params["expires"]) + 1000)
    resp = requests.put(base + "?" + "&".join("%s=%s" % kv for kv in params.items()),
                        data=sd_jpeg, headers=headers)
    assert resp.status_code == 403 and "SignatureDoesNotMatch" in resp.text


def test_put_wrong_size(api, sd_jpeg):
    url, headers = _slot(api, sd_jpeg)
    resp = requests.put(url, data=sd_jpeg[:-10], headers={"Content-Type": "image/jpeg"})
    assert resp.status_code == 403 and "SignatureDoesNotMatch" in resp.text
    assert "Content-Length" in resp.text  # the emulator's hint names the mismatch


def test_put_wrong_type(api, sd_jpeg):
    url, headers = _slot(api, sd_jpeg)
    resp = requests.put(url, data=sd_jpeg, headers=dict(headers, **{"Content-Type": "image/png"}))
    assert resp.status_code == 403 and "SignatureDoesNotMatch" in resp.text


def test_put_expired(make_emu, spec, sd_jpeg):
    from conftest import Api
    emu = make_emu(upload_ttl=0.2, test_clock=True)
    api = Api(emu, spec)
    url, headers = _slot(api, sd_jpeg)
    emu.advance_clock(0.21)
    resp = requests.put(url, data=sd_jpeg, headers=headers)
    assert resp.status_code == 403
    assert "<Code>AccessDenied</Code>" in resp.text and "Request has expired" in resp.text


def test_put_unknown_key(api, sd_jpeg):
    resp = requests.put(api.emu.base_url + "/_storage/nope?expires=1&sig=ab", data=b"x",
                        headers={"Content-Type": "image/jpeg"})
    assert resp.status_code == 403 and "AccessDenied" in resp.text


def test_put_is_not_rate_limited(make_emu, spec, sd_jpeg):
    from conftest import Api
    api = Api(make_emu(rate_limit=True, rate_qps=100, rate_window_max=3), spec)
    url, headers = _slot(api, sd_jpeg)
    for _ in range(5):
        assert requests.put(url, data=sd_jpeg, headers=headers).status_code == 200
    assert api.emu.counters["uploads"] == 5


def test_put_expect_100_continue(api, sd_jpeg):
    import http.client
    from urllib.parse import urlsplit
    url, headers = _slot(api, sd_jpeg)
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    conn.putrequest("PUT", parts.path + "?" + parts.query, skip_accept_encoding=True)
    for k, v in headers.items():
        conn.putheader(k, v)
    conn.putheader("Expect", "100-continue")
    conn.endheaders()
    # The server must answer 100 Continue before the body is sent.
    line = conn.sock.recv(64)
    assert line.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    conn.sock.sendall(sd_jpeg)
    resp = conn.getresponse()
    assert resp.status == 200
    conn.close()

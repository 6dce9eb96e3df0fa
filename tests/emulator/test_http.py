"""The HTTP layer: keep-alive, pipelining, chunked bodies, malformed input,
and the CLI entry point."""

import os
import signal
import socket
import subprocess
import sys

import pytest
import requests

from conftest import KEY, REPO


def _raw(emu, payload, read_until_close=True):
    sock = socket.create_connection(emu.host_port, timeout=5)
    sock.sendall(payload)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            if not read_until_close:
                break
    finally:
        sock.close()
    return data


def test_keep_alive_and_pipelining(emu):
    req = ("GET /s2s/v2.1/task/skin-analysis/nope HTTP/1.1\r\nHost: h\r\n"
           "Authorization: Bearer %s\r\n\r\n" % KEY).encode()
    last = req.replace(b"Host: h\r\n", b"Host: h\r\nConnection: close\r\n")
    data = _raw(emu, req * 3 + last)
    assert data.count(b"HTTP/1.1 400 Bad Request") == 4
    assert data.count(b'{"status":400,"error":"Invalid task ID"}') == 4


def test_session_reuses_connection(emu):
    s = requests.Session()
    for _ in range(20):
        assert s.get(emu.base_url + "/_control/health").status_code == 200
    assert len(emu.app.state.own_netlocs) >= 1


def test_chunked_body_refused(emu):
    data = _raw(emu, b"POST /s2s/v2.1/file/skin-analysis HTTP/1.1\r\nHost: h\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 411 Length Required")


@pytest.mark.parametrize("payload,status", [
    (b"NONSENSE\r\n\r\n", b"400"),
    (b"GET / HTTP/1.1\r\nbad header line\r\n\r\n", b"400"),
    (b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", b"400"),
    (b"POST / HTTP/1.1\r\nContent-Length: 999999999999\r\n\r\n", b"413"),
])
def test_malformed_requests(emu, payload, status):
    assert _raw(emu, payload).startswith(b"HTTP/1.1 " + status)


def test_http10_closes(emu):
    data = _raw(emu, b"GET /_control/health HTTP/1.0\r\n\r\n")
    assert b"Connection: close" in data and data.endswith(b'"ok": true\n}')


def test_unknown_paths(emu):
    assert requests.get(emu.base_url + "/nope").status_code == 404
    resp = requests.get(emu.base_url + "/s2s/v2.1/file/skin-analysis",
                        headers={"Authorization": "Bearer " + KEY})
    assert resp.status_code == 405 and resp.headers["x-request-id"]
    assert requests.get(emu.base_url + "/s2s/v9/other").status_code == 404


def test_many_concurrent_connections(emu):
    socks = [socket.create_connection(emu.host_port) for _ in range(200)]
    try:
        req = b"GET /_control/health HTTP/1.1\r\nHost: h\r\n\r\n"
        for s in socks:
            s.sendall(req)
        for s in socks:
            assert s.recv(4096).startswith(b"HTTP/1.1 200 OK")
    finally:
        for s in socks:
            s.close()


# --- CLI ------------------------------------------------------------------------------

def _start_cli(*args):
    proc = subprocess.Popen([os.path.join(REPO, "scripts", "emulator"), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    return proc, line


def test_cli_prints_listening_line_and_stops_on_sigterm(sd_jpeg):
    proc, line = _start_cli("--port", "0", "--task-seconds", "0", "--keys", "a,b",
                            "--quirks", "zip_bare_string,polling_interval")
    try:
        assert line.startswith("listening on http://127.0.0.1:")
        base = line.split()[-1]
        resp = requests.post(base + "/s2s/v2.1/file/skin-analysis",
                             json={"files": [{"content_type": "image/jpeg", "file_name": "x",
                                              "file_size": 5}]},
                             headers={"Authorization": "Bearer b"})
        assert resp.status_code == 200
        config = requests.get(base + "/_control/config").json()
        assert config["quirks"] == ["polling_interval", "zip_bare_string"]
        assert config["keys"] == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0


def test_cli_sigint(sd_jpeg):
    proc, line = _start_cli()
    assert line.startswith("listening on ")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(10) == 0


def test_cli_help_lists_every_flag():
    out = subprocess.run([os.path.join(REPO, "scripts", "emulator"), "--help"],
                         capture_output=True, text=True, check=True).stdout
    for flag in ("--host", "--port", "--keys", "--task-seconds", "--poll-window",
                 "--rate-limit", "--rate-qps", "--rate-window-max", "--rate-window-seconds",
                 "--quirks", "--scenario", "--units", "--url-ttl", "--upload-ttl",
                 "--engine-error", "--verbose", "--auth-variant", "--polling-interval-ms",
                 "--task-timeout-after", "--retention", "--log-max"):
        assert flag in out


@pytest.mark.parametrize("args", [["--quirks", "nope"], ["--scenario", "/nonexistent.json"],
                                  ["--rate-limit", "maybe"]])
def test_cli_bad_options(args):
    res = subprocess.run([os.path.join(REPO, "scripts", "emulator"), *args],
                         capture_output=True, text=True, timeout=10)
    assert res.returncode == 2 and res.stderr


def test_module_entry_point():
    proc = subprocess.Popen([sys.executable, "-c",
                             "import sys; sys.path.insert(0, %r); "
                             "from emulator.__main__ import main; sys.exit(main())"
                             % os.path.join(REPO, "python", "skinanalysis"), "--port", "0"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().startswith("listening on http://")
    finally:
        proc.terminate()
        assert proc.wait(10) == 0

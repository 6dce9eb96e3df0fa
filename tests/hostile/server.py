#!/usr/bin/env python3
"""tests/hostile/server.py - a Skin Analysis API server that lies.

Standalone (standard library only)::

    python3 tests/hostile/server.py CASE --key KEY [--record FILE]

prints its URL (``http://127.0.0.1:PORT``, loopback, port 0) on the first line
of stdout and serves until SIGINT/SIGTERM; then it writes what it recorded as
JSON to FILE (or to stderr).  ``--list`` prints the cases.  The test suite
(test_hostile.py) imports it and runs one ``HostileServer`` per analysis.

It speaks the API's endpoints (shared/API.md §3): file create on
/s2s/v2.1/file/skin-analysis, /s2s/v2.0/file/skin-analysis and
/s2s/v2.0/file; the pre-signed upload (a PUT on a path of its own,
/upload/<token>?X-Amz-Signature=...); task create on /s2s/v2.x/task/skin-analysis;
task status (GET .../task/skin-analysis/<id>); and result downloads (masks, on
paths it hands out in results).  The CASE picks the lie.  Uploads and
downloads are served by the same host and port as the API on purpose: a
client must never send the key to them even so.

What it records (``HostileServer.record()``):

- ``requests``: every request (method, path, headers, body length, time);
- ``counts``: file creates, uploads, task create requests, tasks it created,
  polls, downloads;
- ``key_to_storage``: each request to an upload or download path that carried
  the API key anywhere (request line, any header, the body);
- ``unoffered``: each request to a path it never offered (a redirect target,
  a truncated id such as /s2s/v2.1/task/skin-analysis/TASK, a file that was
  never handed out);
- ``bad_auth``: API requests without exactly ``Authorization: Bearer <key>``;
- ``sent``: body bytes written per request kind (to see a client hang up);
- ``upload_headers``: the headers of each upload.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional

MiB = 1 << 20
GiB = 1 << 30

FILE_PATHS = ("/s2s/v2.1/file/skin-analysis", "/s2s/v2.0/file/skin-analysis",
              "/s2s/v2.0/file")
TASK_PATHS = ("/s2s/v2.1/task/skin-analysis", "/s2s/v2.0/task/skin-analysis")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------
# Replies
# ---------------------------------------------------------------------------

class Reply:
    """One answer: status, headers (a list: names may repeat) and a body,
    either bytes or a callable ``stream(handler) -> bytes sent`` that writes
    the body itself (after the headers) and stops when the client hangs
    up."""

    def __init__(self, status: int, body: Any = b"", headers: Any = (),
                 content_type: Optional[str] = "application/json",
                 length: Optional[int] = None, chunked: bool = False,
                 close: bool = False) -> None:
        self.status = status
        self.body = body
        self.headers = list(headers)
        self.content_type = content_type
        self.length = length          # Content-Length of a streamed body
        self.chunked = chunked        # streamed with Transfer-Encoding: chunked
        self.close = close            # close the connection after it
        self.drop = False             # no answer at all: close the socket


def jreply(status: int, obj: Any, headers: Any = ()) -> Reply:
    return Reply(status, json.dumps(obj).encode(), headers)


def drop() -> Reply:
    r = Reply(0)
    r.drop = True
    return r


class ClientGone(Exception):
    pass


# ---------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------

CASES: dict[str, type] = {}


def case(name: str) -> Callable[[type], type]:
    def register(cls: type) -> type:
        cls.name = name
        CASES[name] = cls
        return cls
    return register


class Honest:
    """The API as documented: file create, upload, task create, one
    "running" answer, then success with a JSON result whose masks live on
    this server.  Every lie below overrides one step."""

    name = "honest"
    running_polls = 1

    def __init__(self, server: "HostileServer", **params: Any) -> None:
        self.server = server
        self.key = server.key
        self.params = params
        self.lock = threading.Lock()
        self.polls = 0
        self.first_poll: Optional[float] = None
        self.file_ids: dict[str, dict] = {}      # file_id -> {"size", "type"}
        self.uploads: dict[str, str] = {}        # upload token -> file_id
        self.tasks: dict[str, int] = {}          # task_id -> polls so far
        self.counters: dict[str, int] = {}

    def bump(self, what: str) -> int:
        """Count one more ``what``; returns the new count."""
        with self.lock:
            self.counters[what] = self.counters.get(what, 0) + 1
            return self.counters[what]

    # -- helpers ------------------------------------------------------------

    @property
    def base(self) -> str:
        return self.server.url

    def new_file_id(self) -> str:
        # standard base64 with '/', '+' and '=' as the API's ids have them
        return "F" + base64.b64encode(os.urandom(30)).decode() + "/+="

    def new_task_id(self) -> str:
        return "T" + base64.urlsafe_b64encode(os.urandom(30)).decode()

    def offer_mask(self, path: str, size: int = 4096, marker: Optional[str] = None) -> str:
        """Hand out a download at ``path`` (served by ``download``)."""
        self.server.offer_download(path, size, marker or path)
        return self.base + path

    def file_create_answer(self, body: dict) -> dict:
        f = (body.get("files") or [{}])[0]
        size = int(f.get("file_size") or 0)
        ctype = str(f.get("content_type") or "image/jpeg")
        fid = self.new_file_id()
        token = base64.urlsafe_b64encode(os.urandom(12)).decode().rstrip("=")
        with self.lock:
            self.file_ids[fid] = {"size": size, "type": ctype}
            self.uploads[token] = fid
        self.server.offer_upload("/upload/" + token)
        return {"status": 200, "data": {"files": [{
            "content_type": ctype, "file_name": f.get("file_name", "x.jpg"),
            "file_id": fid,
            "requests": [{"method": "PUT",
                          "url": self.base + "/upload/" + token +
                          "?X-Amz-Expires=1800&X-Amz-Signature=" + "ab" * 32,
                          "headers": self.upload_headers(size, ctype)}]}]}}

    def upload_headers(self, size: int, ctype: str) -> dict:
        return {"Content-Length": str(size), "Content-Type": ctype}

    def create_task(self) -> str:
        tid = self.new_task_id()
        with self.lock:
            self.tasks[tid] = 0
        self.server.count("tasks_created")
        return tid

    def running(self, **extra: Any) -> Reply:
        data = {"task_status": "running", "error": None, "results": None}
        data.update(extra)
        return jreply(200, {"status": 200, "data": data})

    def outputs(self, task_id: str) -> list:
        m = "/masks/%s/" % urllib.parse.quote(task_id, safe="")
        return [
            {"type": "wrinkle", "raw_score": 57.33, "ui_score": 68,
             "mask_urls": [self.offer_mask(m + "wrinkle_output.png",
                                           marker="wrinkle_output.png")]},
            {"type": "pore", "raw_score": 95.34, "ui_score": 92,
             "mask_urls": [self.offer_mask(m + "pore_output.png", marker="pore_output.png")]},
            {"type": "skin_age", "score": 31},
            {"type": "all", "score": 75.5},
        ]

    def success(self, task_id: str) -> Reply:
        return jreply(200, {"status": 200, "data": {
            "task_status": "success", "error": None,
            "results": {"output": self.outputs(task_id)}}})

    def since_first_poll(self) -> float:
        with self.lock:
            if self.first_poll is None:
                self.first_poll = time.monotonic()
            return time.monotonic() - self.first_poll

    # -- the steps (each returns a Reply) -----------------------------------

    def file_create(self, h: "Handler", body: bytes) -> Reply:
        try:
            req = json.loads(body or b"{}")
        except ValueError:
            return jreply(400, {"status": 400, "error": "Invalid parameter value",
                                "error_code": "InvalidParameters"})
        return jreply(200, self.file_create_answer(req))

    def upload(self, h: "Handler", token: str, body: bytes) -> Reply:
        fid = self.uploads.get(token)
        want = self.file_ids.get(fid or "", {}).get("size")
        if want is not None and want != len(body):
            return Reply(400, b"<Error><Code>IncompleteBody</Code></Error>",
                         content_type="application/xml")
        return Reply(200, b"", content_type=None)

    def task_create(self, h: "Handler", body: bytes) -> Reply:
        try:
            req = json.loads(body or b"{}")
        except ValueError:
            req = {}
        src = req.get("src_file_id")
        if src is not None and src not in self.file_ids:
            return jreply(400, {"status": 400, "error": "Invalid parameter value",
                                "error_code": "InvalidParameters"})
        return jreply(200, {"status": 200, "data": {"task_id": self.create_task()}})

    def poll(self, h: "Handler", task_id: str) -> Reply:
        with self.lock:
            n = self.tasks[task_id]
            self.tasks[task_id] = n + 1
        self.since_first_poll()
        if n < self.running_polls:
            return self.running()
        return self.success(task_id)

    def download(self, h: "Handler", path: str) -> Reply:
        return self.server.serve_download(path)


@case("baseline")
class Baseline(Honest):
    """The honest API: proves the harness (success, one task)."""


@case("baseline_v20")
class BaselineV20(Honest):
    """The honest API through the v2.0 endpoints."""


@case("baseline_masks")
class BaselineMasks(Honest):
    """The honest API; the driver saves the two small masks into a folder."""


# -- the key echoed ----------------------------------------------------------

@case("echo_key_401")
class EchoKey401(Honest):
    """File create: 401 whose body echoes the key."""

    def file_create(self, h, body):
        return jreply(401, {"status": 401,
                            "error": "Invalid API key Bearer " + self.key})


@case("echo_key_cut_401")
class EchoKeyCut401(Honest):
    """File create: 401 whose body echoes the first 24 bytes of the key."""

    def file_create(self, h, body):
        return jreply(401, {"status": 401, "error_code": "InvalidApiKey",
                            "error": "This API key is not recognized: " + self.key[:24]})


@case("echo_key_500_poll")
class EchoKey500Poll(Honest):
    """Every status poll: 500 whose body echoes the key.  The analysis'
    deadline passes; its message says what the last poll met."""

    def poll(self, h, task_id):
        self.since_first_poll()
        return jreply(500, {"status": 500,
                            "error": "Internal error for Authorization: Bearer " + self.key})


@case("echo_key_engine")
class EchoKeyEngine(Honest):
    """The task ends in an engine error whose error_message echoes the key."""

    def poll(self, h, task_id):
        return jreply(200, {"status": 200, "data": {
            "task_status": "error", "error": "error_no_face", "results": None,
            "error_message": "No face detected (request signed with Bearer %s)" % self.key}})


@case("echo_key_s3_upload")
class EchoKeyS3Upload(Honest):
    """The pre-signed upload: an S3-style 403 XML error that echoes the key."""

    def upload(self, h, token, body):
        xml = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code>"
               "<Message>Request has an unexpected Authorization: Bearer %s</Message>"
               "<RequestId>4442587FB7D0A2F9</RequestId></Error>" % self.key)
        return Reply(403, xml.encode(), content_type="application/xml")


@case("echo_key_request_id")
class EchoKeyRequestId(Honest):
    """Every API answer carries ``x-request-id: Bearer <key>``; the task
    ends in an engine error."""

    def rid(self, r: Reply) -> Reply:
        r.headers.append(("x-request-id", "Bearer " + self.key))
        return r

    def file_create(self, h, body):
        return self.rid(super().file_create(h, body))

    def task_create(self, h, body):
        return self.rid(super().task_create(h, body))

    def poll(self, h, task_id):
        return self.rid(jreply(200, {"status": 200, "data": {
            "task_status": "error", "error": "error_no_face", "results": None,
            "error_message": "No face detected on source image"}}))


@case("echo_key_result")
class EchoKeyResult(Honest):
    """Success, but the result echoes the key in a skin type and in a
    mask URL."""

    def outputs(self, task_id):
        out = super().outputs(task_id)
        out.append({"type": "skin_type", "region": "whole",
                    "skin_type": "Oily Bearer " + self.key,
                    "mask_urls": [self.offer_mask("/masks/k/%s.png" % self.key)]})
        return out


# -- NUL ---------------------------------------------------------------------

@case("nul_task_id")
class NulTaskId(Honest):
    """Task create answers task_id "TASK\\u0000/../../other"."""

    def task_create(self, h, body):
        self.create_task()  # the server did create (and may bill) a task
        return jreply(200, {"status": 200, "data": {"task_id": "TASK\u0000/../../other"}})


@case("raw_nul_task_id")
class RawNulTaskId(Honest):
    """Task create answers a task_id holding a raw NUL byte (not even valid
    JSON)."""

    def task_create(self, h, body):
        self.create_task()
        return Reply(200, b'{"status":200,"data":{"task_id":"TASK\x00/../../other"}}')


@case("raw_nul_file_id")
class RawNulFileId(Honest):
    """File create answers a file_id holding a raw NUL byte (not valid
    JSON), every time."""

    def file_create(self, h, body):
        good = super().file_create(h, body).body
        return Reply(200, good.replace(b'"file_id": "', b'"file_id": "FILE\x00', 1))


@case("nul_file_id")
class NulFileId(Honest):
    """File create answers file_id "FILE\\u0000EVIL"."""

    def file_create_answer(self, body):
        ans = super().file_create_answer(body)
        ans["data"]["files"][0]["file_id"] = "FILE\u0000EVIL"
        return ans


@case("nul_concern")
class NulConcern(Honest):
    """Success, but a concern name holds a NUL: "wrinkle\\u0000pore"."""

    def outputs(self, task_id):
        out = super().outputs(task_id)
        out[0]["type"] = "wrinkle\u0000pore"
        return out


# -- answers that go on ------------------------------------------------------

@case("storm_503")
class Storm503(Honest):
    """Every poll answers 503 (HTML) for ``storm`` seconds (45) from the
    first poll, then success."""

    def poll(self, h, task_id):
        if self.since_first_poll() < float(self.params.get("storm", 45)):
            return Reply(503, b"<html><body>503 Service Unavailable</body></html>",
                         content_type="text/html")
        return self.success(task_id)


@case("storm_429")
class Storm429(Honest):
    """Every poll answers 429 for ``storm`` seconds (45), then success."""

    def poll(self, h, task_id):
        if self.since_first_poll() < float(self.params.get("storm", 45)):
            return jreply(429, {"status": 429, "error": "Too many requests"})
        return self.success(task_id)


@case("unknown_status")
class UnknownStatus(Honest):
    """task_status "queued" (undocumented) for 10 polls, then success."""

    def poll(self, h, task_id):
        with self.lock:
            n = self.tasks[task_id]
            self.tasks[task_id] = n + 1
        if n < 10:
            return jreply(200, {"status": 200, "data": {
                "task_status": "queued", "error": None, "results": None}})
        return self.success(task_id)


@case("polling_interval_lie")
class PollingIntervalLie(Honest):
    """Three running answers asking for a polling_interval of a day
    (86,400,000 ms), then success."""

    running_polls = 3

    def running(self, **extra):
        return super().running(polling_interval=86400000)


@case("trickle_poll")
class TricklePoll(Honest):
    """For ``trickle`` seconds (40) from the first poll, each poll answer
    comes at 1 byte/s; then success."""

    def poll(self, h, task_id):
        if self.since_first_poll() < float(self.params.get("trickle", 40)):
            body = json.dumps({"status": 200, "data": {
                "task_status": "running", "error": None, "results": None}}).encode()
            return Reply(200, self.server.trickle(body), length=len(body))
        return self.success(task_id)


@case("huge_poll")
class HugePoll(Honest):
    """The first poll answers a 1 GiB body (Content-Length), the second a
    1 GiB chunked body, both streamed until the client hangs up; then
    success."""

    def poll(self, h, task_id):
        with self.lock:
            n = self.tasks[task_id]
            self.tasks[task_id] = n + 1
        if n < 2:
            head = b'{"status":200,"data":{"task_status":"running","error":null,"pad":"'
            tail = b'"}}'
            stream = self.server.huge(head, tail, GiB, "huge_poll")
            if n == 0:
                return Reply(200, stream, length=GiB)
            return Reply(200, stream, chunked=True)
        return self.success(task_id)


@case("truncated_file_create")
class TruncatedFileCreate(Honest):
    """File create answers truncated JSON twice, then a good answer."""

    def file_create(self, h, body):
        if self.bump("file_create") <= 2:
            good = super().file_create(h, body).body
            return Reply(200, good[: len(good) // 2])
        return super().file_create(h, body)


# -- redirects, schemes, headers ---------------------------------------------

@case("redirect_file_create")
class RedirectFileCreate(Honest):
    """File create answers 302 to /moved/... (which would answer a good
    file create: a client that follows it goes on, and is seen)."""

    def file_create(self, h, body):
        if h.path.startswith("/moved/"):
            return super().file_create(h, body)
        return Reply(302, b"", headers=[("Location", self.base + "/moved" + h.path)],
                     content_type=None)


@case("redirect_upload")
class RedirectUpload(Honest):
    """The upload answers 307 to /moved-upload/... (a client that follows
    it sends the image to a path never offered)."""

    def upload(self, h, token, body):
        return Reply(307, b"", headers=[("Location", self.base + "/moved-upload/" + token)],
                     content_type=None)


@case("ftp_upload_url")
class FtpUploadUrl(Honest):
    """The upload URL is ftp://."""

    def file_create_answer(self, body):
        ans = super().file_create_answer(body)
        req = ans["data"]["files"][0]["requests"][0]
        req["url"] = "ftp://127.0.0.1:%d/upload/file.jpg" % self.server.port
        return ans


@case("upload_header_injection")
class UploadHeaderInjection(Honest):
    """The upload headers add Host, Cookie and Transfer-Encoding."""

    def upload_headers(self, size, ctype):
        h = super().upload_headers(size, ctype)
        h.update({"Host": "evil.example", "Cookie": "session=stolen",
                  "Transfer-Encoding": "chunked"})
        return h


# -- task create -------------------------------------------------------------

@case("task_create_500")
class TaskCreate500(Honest):
    """Task create makes the task, then answers 500."""

    def task_create(self, h, body):
        self.create_task()
        return jreply(500, {"status": 500, "error": "Internal Server Error"})


@case("task_create_reset")
class TaskCreateReset(Honest):
    """Task create makes the task, then closes the connection unanswered."""

    def task_create(self, h, body):
        self.create_task()
        return drop()


@case("task_create_429")
class TaskCreate429(Honest):
    """Task create answers 429 (no task made) twice, then makes one."""

    def task_create(self, h, body):
        if self.bump("task_create") <= 2:
            return jreply(429, {"status": 429, "error": "Too many requests"})
        return super().task_create(h, body)


# -- masks -------------------------------------------------------------------

@case("masks_10x60")
class Masks10x60(Honest):
    """Success with 10 mask URLs of 60 MiB each (made on the fly)."""

    def outputs(self, task_id):
        names = ["wrinkle", "pore", "texture", "acne", "oiliness", "radiance",
                 "eye_bag", "age_spot", "redness", "firmness"]
        size = int(self.params.get("mask_size", 60 * MiB))
        return [{"type": n, "raw_score": 50.0, "ui_score": 60,
                 "mask_urls": [self.offer_mask("/big/%s_output.png" % n, size)]}
                for n in names] + [{"type": "all", "score": 60.0}]


@case("masks_colliding")
class MasksColliding(Honest):
    """Success with three mask URLs /a/mask.png /b/mask.png /c/mask.png."""

    def outputs(self, task_id):
        return [{"type": n, "raw_score": 50.0, "ui_score": 60,
                 "mask_urls": [self.offer_mask("/%s/mask.png" % d, 2048, "mask-" + d)]}
                for n, d in (("wrinkle", "a"), ("pore", "b"), ("acne", "c"))]


@case("masks_traversal")
class MasksTraversal(Honest):
    """Success with mask URLs whose last segment tries to leave the folder
    (%2F, %2e%2e, an absolute path, a dot file)."""

    def outputs(self, task_id):
        tmp = "/tmp/hostile-escape-%s.png" % self.server.token
        self.server.add("escape_paths", tmp)
        paths = ["/t/..%2F..%2Fescaped.png", "/t/%2e%2e", "/t/" + urllib.parse.quote(tmp, safe=""),
                 "/t/.hidden.png"]
        return [{"type": n, "raw_score": 50.0, "ui_score": 60,
                 "mask_urls": [self.offer_mask(p, 1024, "trav-%d" % i)]}
                for i, (n, p) in enumerate(zip(("wrinkle", "pore", "acne", "texture"), paths))]


# ---------------------------------------------------------------------------
# The HTTP server
# ---------------------------------------------------------------------------

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "HostileServer"

    def log_message(self, fmt: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self.dispatch()

    do_POST = do_PUT = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    def read_body(self) -> bytes:
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            out = bytearray()
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    break
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                out += self.rfile.read(size)
                self.rfile.readline(3)
            return bytes(out)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def dispatch(self) -> None:
        srv = self.server
        body = self.read_body()
        path = self.path.split("?", 1)[0]
        srv.note_request(self, body)
        try:
            reply = srv.route(self, path, body)
        except ClientGone:
            self.close_connection = True
            return
        self.send(reply)

    def send(self, r: Reply) -> None:
        if r.drop:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        try:
            self.send_response(r.status)
            for k, v in r.headers:
                self.send_header(k, v)
            if r.content_type:
                self.send_header("Content-Type", r.content_type)
            if callable(r.body):
                if r.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                else:
                    self.send_header("Content-Length", str(r.length))
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                if self.command != "HEAD":
                    r.body(self, r.chunked)
                return
            self.send_header("Content-Length", str(len(r.body)))
            if r.close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(r.body)
        except (BrokenPipeError, ConnectionResetError, ClientGone, OSError):
            self.close_connection = True


class HostileServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, case_name: str, key: str, **params: Any) -> None:
        if case_name not in CASES:
            raise KeyError("unknown case %r (known: %s)" % (case_name, ", ".join(CASES)))
        super().__init__(("127.0.0.1", 0), Handler)
        self.key = key
        self.port = self.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._record: dict[str, Any] = {
            "case": case_name, "url": self.url, "requests": [],
            "counts": {"file_create": 0, "upload": 0, "task_create_requests": 0,
                       "tasks_created": 0, "poll": 0, "download": 0},
            "key_to_storage": [], "unoffered": [], "bad_auth": [], "sent": {},
            "upload_headers": [], "poll_times": [], "escape_paths": []}
        self.token = base64.b32encode(os.urandom(5)).decode().lower()
        self._uploads: set[str] = set()
        self._downloads: dict[str, tuple] = {}   # path -> (size, marker)
        self.case = CASES[case_name](self, **params)
        self._thread: Optional[threading.Thread] = None

    # -- lifetime -----------------------------------------------------------

    def start(self) -> "HostileServer":
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="hostile-" + self.case.name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()

    def __enter__(self) -> "HostileServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- bookkeeping --------------------------------------------------------

    def count(self, what: str, n: int = 1) -> None:
        with self._lock:
            self._record["counts"][what] = self._record["counts"].get(what, 0) + n

    def add(self, what: str, item: Any) -> None:
        with self._lock:
            self._record[what].append(item)

    def add_sent(self, what: str, n: int) -> None:
        with self._lock:
            self._record["sent"][what] = self._record["sent"].get(what, 0) + n

    def record(self) -> dict:
        with self._lock:
            return json.loads(json.dumps(self._record))

    def offer_upload(self, path: str) -> None:
        with self._lock:
            self._uploads.add(path)

    def offer_download(self, path: str, size: int, marker: str) -> None:
        with self._lock:
            self._downloads[path] = (size, marker)

    def note_request(self, h: Handler, body: bytes) -> None:
        self.add("requests", {"method": h.command, "path": h.path,
                              "headers": [[k, v] for k, v in h.headers.items()],
                              "body_len": len(body), "t": time.time()})

    def carries_key(self, h: Handler, body: bytes) -> list:
        """Where the key appears in a request: request line, headers, body."""
        key = self.key
        where = []
        if key in h.requestline or key in urllib.parse.unquote(h.requestline):
            where.append("request line")
        for k, v in h.headers.items():
            if key in v or key in k or k.lower() == "authorization":
                where.append("header " + k)
        if key.encode() in body:
            where.append("body")
        return where

    # -- routing ------------------------------------------------------------

    def route(self, h: Handler, path: str, body: bytes) -> Reply:
        c = self.case
        if path.startswith("/upload/") and path in self._uploads:
            self.check_storage(h, body, "upload")
            self.count("upload")
            self.add("upload_headers", [[k, v] for k, v in h.headers.items()]
                     + [["(body length)", str(len(body))]])
            return c.upload(h, path[len("/upload/"):], body)
        if path in self._downloads:
            self.check_storage(h, body, "download")
            self.count("download")
            return c.download(h, path)
        is_file = path in FILE_PATHS or (path.startswith("/moved/") and
                                         path[len("/moved"):] in FILE_PATHS)
        is_task = path in TASK_PATHS
        poll_prefix = next((p + "/" for p in TASK_PATHS if path.startswith(p + "/")), None)
        if path.startswith("/moved/"):
            self.add("unoffered", {"method": h.command, "path": h.path})
        if is_file or is_task or poll_prefix:
            if h.headers.get("Authorization") != "Bearer " + self.key:
                self.add("bad_auth", {"method": h.command, "path": h.path})
                return jreply(401, {"status": 401, "error": "Invalid API key"})
        if is_file and h.command == "POST":
            self.count("file_create")
            return c.file_create(h, body)
        if is_task and h.command == "POST":
            self.count("task_create_requests")
            return c.task_create(h, body)
        if poll_prefix and h.command == "GET":
            task_id = urllib.parse.unquote(path[len(poll_prefix):])
            if task_id in c.tasks:
                self.count("poll")
                self.add("poll_times", time.time())
                return c.poll(h, task_id)
            self.add("unoffered", {"method": h.command, "path": h.path})
            return jreply(400, {"status": 400, "error": "Invalid task ID"})
        if not path.startswith("/moved/"):
            self.add("unoffered", {"method": h.command, "path": h.path})
        return jreply(404, {"status": 404, "error": "Not found"})

    def check_storage(self, h: Handler, body: bytes, what: str) -> None:
        where = self.carries_key(h, body)
        if where:
            self.add("key_to_storage", {"method": h.command, "path": h.path,
                                        "kind": what, "where": where})

    # -- streamed bodies ----------------------------------------------------

    def _write(self, h: Handler, data: bytes, chunked: bool) -> None:
        if self.stopping.is_set():
            raise ClientGone()
        try:
            if chunked:
                h.wfile.write(b"%x\r\n" % len(data) + data + b"\r\n")
            else:
                h.wfile.write(data)
        except OSError as exc:
            raise ClientGone() from exc

    def trickle(self, body: bytes) -> Callable:
        def stream(h: Handler, chunked: bool) -> None:
            sent = 0
            try:
                for i in range(len(body)):
                    self._write(h, body[i:i + 1], chunked)
                    h.wfile.flush()
                    sent += 1
                    if self.stopping.wait(1.0):
                        break
                if chunked:
                    h.wfile.write(b"0\r\n\r\n")
            except (ClientGone, OSError):
                pass
            self.add_sent("trickle", sent)
        return stream

    def huge(self, head: bytes, tail: bytes, total: int, what: str) -> Callable:
        def stream(h: Handler, chunked: bool) -> None:
            block = b"x" * MiB
            sent = 0
            try:
                self._write(h, head, chunked)
                sent += len(head)
                pad = total - len(head) - len(tail)
                while pad > 0:
                    n = min(pad, len(block))
                    self._write(h, block[:n], chunked)
                    sent += n
                    pad -= n
                self._write(h, tail, chunked)
                sent += len(tail)
                if chunked:
                    h.wfile.write(b"0\r\n\r\n")
            except (ClientGone, OSError):
                pass
            self.add_sent(what, sent)
        return stream

    def serve_download(self, path: str) -> Reply:
        size, marker = self._downloads[path]
        head = (PNG_SIGNATURE + ("MASK:%s;" % marker).encode()).ljust(64, b"\0")
        if size <= MiB:
            data = (head + bytes(size))[:size]
            return Reply(200, data, content_type="binary/octet-stream")

        def stream(h: Handler, chunked: bool) -> None:
            block = bytes(MiB)
            sent = 0
            try:
                self._write(h, head, chunked)
                sent = len(head)
                while sent < size:
                    n = min(size - sent, len(block))
                    self._write(h, block[:n], chunked)
                    sent += n
            except (ClientGone, OSError):
                pass
            self.add_sent("download", sent)
        return Reply(200, stream, content_type="binary/octet-stream", length=size)


def download_marker(data: bytes) -> Optional[str]:
    """The marker a downloaded file starts with (see serve_download)."""
    if not data.startswith(PNG_SIGNATURE + b"MASK:"):
        return None
    rest = data[len(PNG_SIGNATURE) + 5:64]
    return rest.split(b";", 1)[0].decode("latin-1")


def main(argv: Optional[list] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("case", nargs="?")
    ap.add_argument("--key", default=os.environ.get("YOUCAM_API_KEY", "hostile-key"))
    ap.add_argument("--record", help="write the record here (JSON) at exit")
    ap.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                    help="a case parameter (storm=45, trickle=40, mask_size=...)")
    ap.add_argument("--list", action="store_true", help="list the cases")
    args = ap.parse_args(argv)
    if args.list or not args.case:
        for name, cls in CASES.items():
            print("%-24s %s" % (name, " ".join((cls.__doc__ or "").split())))
        return 0
    params = dict(p.split("=", 1) for p in args.param)
    srv = HostileServer(args.case, args.key, **params).start()
    print(srv.url, flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    srv.stop()
    text = json.dumps(srv.record(), indent=1)
    if args.record:
        with open(args.record, "w") as f:
            f.write(text)
    else:
        print(text, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

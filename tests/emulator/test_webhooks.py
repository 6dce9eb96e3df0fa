"""Webhook delivery: the emulator POSTs a Standard Webhooks notification to
loopback receivers when a task ends. Signatures are checked here with
Python's hmac module (independently of the C library's verifier)."""

import base64
import hashlib
import hmac
import http.server
import json
import socket
import threading
import time

import pytest
import requests

import emulator
from conftest import Api
from emulator import webhooks
from emulator.__main__ import main as emulator_main


class Receiver:
    """An HTTP server on 127.0.0.1 in a thread that records every POST and
    answers with the next status of ``statuses`` (200 when they run out)."""

    def __init__(self, statuses=(), hang=False):
        self.requests = []
        self.statuses = list(statuses)
        self.hang = hang
        self.cond = threading.Condition()
        self.release = threading.Event()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.cond:
                    receiver.requests.append({
                        "path": self.path, "body": body, "time": time.time(),
                        "headers": {k.lower(): v for k, v in self.headers.items()}})
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver.cond.notify_all()
                if receiver.hang:
                    receiver.release.wait(10)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d/hooks/skin" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait(self, count, timeout=10):
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                assert left > 0, "only %d of %d deliveries arrived" % (len(self.requests), count)
                self.cond.wait(left)
            return list(self.requests)

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = []

    def factory(**kw):
        r = Receiver(**kw)
        made.append(r)
        return r

    yield factory
    for r in made:
        r.close()


def expected_signature(secret, msg_id, timestamp, body):
    key = base64.b64decode(secret[len("whsec_"):])
    mac = hmac.new(key, msg_id.encode() + b"." + timestamp.encode() + b"." + body,
                   hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def start_task(api, data, **extra):
    file_id = api.upload(data)
    body = {"src_file_id": file_id, "dst_actions": ["wrinkle", "pore"], "format": "json"}
    body.update(extra)
    status, created = api.create_task(body)
    assert status == 200, created
    return created["data"]["task_id"]


def wait_counter(emu, name, value, timeout=10):
    deadline = time.monotonic() + timeout
    while emu.counters[name] < value:
        assert time.monotonic() < deadline, "%s stayed at %d" % (name, emu.counters[name])
        time.sleep(0.02)


def check_delivery(emu, req, task_id, task_status):
    headers, body = req["headers"], req["body"]
    assert headers["content-type"] == "application/json"
    doc = json.loads(body)
    assert doc == {"created_at": doc["created_at"],
                   "data": {"task_id": task_id, "task_status": task_status}}
    assert headers["webhook-id"] == "msg_%s:%d" % (task_id, doc["created_at"])
    ts = headers["webhook-timestamp"]
    assert ts.isdigit() and abs(int(ts) - time.time()) < 30
    sig = headers["webhook-signature"]
    assert hmac.compare_digest(sig, expected_signature(emu.webhook_secret,
                                                       headers["webhook-id"], ts, body))
    # a different secret or a changed body does not verify
    other = "whsec_" + base64.b64encode(b"x" * 32).decode()
    assert sig != expected_signature(other, headers["webhook-id"], ts, body)
    assert sig != expected_signature(emu.webhook_secret, headers["webhook-id"], ts,
                                     body.replace(b"}}", b"} }"))


# --- delivery ---------------------------------------------------------------------

def test_success_delivered_without_polling(make_emu, spec, receiver, sd_jpeg):
    r = receiver()
    emu = make_emu(task_seconds=0.3, webhook_urls=[r.url], test_clock=True)
    api = Api(emu, spec)
    task_id = start_task(api, sd_jpeg)
    emu.advance_clock(0.29)
    assert emu.webhook_log == [] and r.requests == []
    # nobody polls: the task ends at its time and the webhook fires
    emu.advance_clock(0.02)
    req = r.wait(1)[0]
    assert req["path"] == "/hooks/skin"
    check_delivery(emu, req, task_id, "success")
    wait_counter(emu, "webhooks_sent", 1)
    c = emu.counters
    assert (c["webhooks_sent"], c["webhooks_failed"], c["webhook_attempts"]) == (1, 0, 1)
    assert c["tasks_succeeded"] == 1
    log = emu.webhook_log
    assert len(log) == 1
    assert log[0]["outcome"] == "sent" and log[0]["status"] == 200 and log[0]["attempts"] == 1
    assert log[0]["webhook_id"] == req["headers"]["webhook-id"]
    # the client then fetches the results with the status call
    status, body = api.status(task_id)
    assert status == 200 and body["data"]["task_status"] == "success"
    # one notification per task: the status call queued no other delivery
    # (a delivery is logged when queued, and the one logged is over)
    assert len(emu.webhook_log) == 1 and len(r.requests) == 1


def test_engine_error_delivered(make_emu, spec, receiver, sd_jpeg):
    r = receiver()
    emu = make_emu(webhook_urls=r.url)
    emu.queue_engine_error("error_no_face")
    task_id = start_task(Api(emu, spec), sd_jpeg)
    check_delivery(emu, r.wait(1)[0], task_id, "error")


def test_every_url_gets_the_same_notification(make_emu, spec, receiver, sd_jpeg):
    r1, r2 = receiver(), receiver()
    emu = make_emu(webhook_urls=r1.url + "," + r2.url.replace("127.0.0.1", "localhost"))
    task_id = start_task(Api(emu, spec), sd_jpeg)
    a, b = r1.wait(1)[0], r2.wait(1)[0]
    check_delivery(emu, a, task_id, "success")
    check_delivery(emu, b, task_id, "success")
    assert a["headers"]["webhook-id"] == b["headers"]["webhook-id"]
    assert a["body"] == b["body"]
    wait_counter(emu, "webhooks_sent", 2)


def test_custom_secret_and_default_secret(make_emu, spec, receiver, sd_jpeg):
    assert emulator.Emulator().webhook_secret == webhooks.DEFAULT_SECRET
    assert base64.b64decode(webhooks.DEFAULT_SECRET[6:]) == b"emulator-webhook-secret-32bytes!"
    secret = "whsec_" + base64.b64encode(b"a-test-secret-of-some-length").decode()
    r = receiver()
    emu = make_emu(webhook_urls=[r.url], webhook_secret=secret)
    assert requests.get(emu.base_url + "/_control/config").json()["webhook_secret"] == secret
    task_id = start_task(Api(emu, spec), sd_jpeg)
    req = r.wait(1)[0]
    check_delivery(emu, req, task_id, "success")
    h = req["headers"]
    assert h["webhook-signature"] != expected_signature(webhooks.DEFAULT_SECRET, h["webhook-id"],
                                                        h["webhook-timestamp"], req["body"])


# --- retries ----------------------------------------------------------------------

def test_retried_after_500_then_sent(make_emu, spec, receiver, sd_jpeg):
    r = receiver(statuses=[500, 503])
    emu = make_emu(webhook_urls=[r.url], webhook_retries=3, webhook_backoff=0.05)
    task_id = start_task(Api(emu, spec), sd_jpeg)
    reqs = r.wait(3)
    for req in reqs:
        check_delivery(emu, req, task_id, "success")
    assert len({req["headers"]["webhook-id"] for req in reqs}) == 1
    assert len({req["body"] for req in reqs}) == 1
    # backoff: 0.05 s, then 0.1 s
    assert reqs[1]["time"] - reqs[0]["time"] >= 0.04
    assert reqs[2]["time"] - reqs[1]["time"] >= 0.09
    wait_counter(emu, "webhooks_sent", 1)
    c = emu.counters
    assert (c["webhooks_failed"], c["webhook_attempts"]) == (0, 3)
    assert emu.webhook_log[0]["attempts"] == 3
    assert len(r.requests) == 3   # the delivery is over: no attempt can follow


def test_gives_up_after_the_retry_budget(make_emu, spec, receiver, sd_jpeg):
    r = receiver(statuses=[500] * 10)
    emu = make_emu(webhook_urls=[r.url], webhook_retries=2, webhook_backoff=0.02)
    start_task(Api(emu, spec), sd_jpeg)
    r.wait(3)
    wait_counter(emu, "webhooks_failed", 1)
    assert len(r.requests) == 3   # the delivery is over: no attempt can follow
    c = emu.counters
    assert (c["webhooks_sent"], c["webhook_attempts"]) == (0, 3)
    rec = emu.webhook_log[0]
    assert rec["outcome"] == "failed" and rec["status"] == 500 and "HTTP 500" in rec["error"]


def test_connection_refused_is_retried_then_failed(make_emu, spec, sd_jpeg):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]   # closed again: nothing listens there
    emu = make_emu(webhook_urls="http://127.0.0.1:%d/x" % port, webhook_retries=1,
                   webhook_backoff=0.01)
    start_task(Api(emu, spec), sd_jpeg)
    wait_counter(emu, "webhooks_failed", 1)
    rec = emu.webhook_log[0]
    assert rec["attempts"] == 2 and rec["status"] is None
    assert "Error" in rec["error"]
    assert emu.counters["webhooks_sent"] == 0


def test_slow_receiver_does_not_block_the_server(make_emu, spec, receiver, sd_jpeg):
    r = receiver(hang=True)
    emu = make_emu(webhook_urls=[r.url])
    api = Api(emu, spec)
    start_task(api, sd_jpeg)
    r.wait(1)
    # the delivery waits for an answer; the API keeps answering meanwhile
    t0 = time.monotonic()
    for _ in range(5):
        assert requests.get(emu.base_url + "/_control/health").status_code == 200
        assert api.file_create()[0] == 200
    assert time.monotonic() - t0 < 2
    assert emu.webhook_log[0]["outcome"] == "pending"
    r.release.set()
    wait_counter(emu, "webhooks_sent", 1)


# --- which endings notify ---------------------------------------------------------

def test_expired_and_timed_out_tasks_do_not_notify(make_emu, spec, receiver, sd_jpeg):
    r = receiver()
    emu = make_emu(task_seconds=5, poll_window=0.2, webhook_urls=[r.url], test_clock=True)
    start_task(Api(emu, spec), sd_jpeg)
    emu.advance_clock(0.3)
    assert emu.counters["tasks_expired"] == 1
    emu2 = make_emu(task_seconds=5, task_timeout_after=0.2, webhook_urls=[r.url],
                    test_clock=True)
    start_task(Api(emu2, spec), sd_jpeg)
    emu2.advance_clock(0.3)
    assert emu2.counters["tasks_timed_out"] == 1
    # a delivery is logged as soon as a task ends: none was queued
    assert emu.webhook_log == emu2.webhook_log == []
    assert r.requests == []
    assert emu.counters["webhook_attempts"] == emu2.counters["webhook_attempts"] == 0


def test_no_urls_no_delivery(api, sd_jpeg):
    task_id, body = api.run(sd_jpeg, ["wrinkle"])
    assert body["data"]["task_status"] == "success"
    assert api.emu.webhook_log == [] and api.emu.webhook_urls == []
    assert api.emu.counters["webhook_attempts"] == 0


# --- control and configuration ----------------------------------------------------

def test_control_sets_urls_at_run_time(make_emu, spec, receiver, sd_jpeg):
    r = receiver()
    emu = make_emu()
    api = Api(emu, spec)
    base = emu.base_url + "/_control/webhooks"
    assert requests.get(base).json() == {"urls": [], "deliveries": []}
    resp = requests.post(base, json={"urls": [r.url]})
    assert resp.status_code == 200 and resp.json()["urls"] == [r.url]
    task_id = start_task(api, sd_jpeg)
    check_delivery(emu, r.wait(1)[0], task_id, "success")
    wait_counter(emu, "webhooks_sent", 1)
    shown = requests.get(base).json()
    assert shown["urls"] == [r.url] and shown["deliveries"][0]["task_id"] == task_id
    assert requests.delete(base).json()["urls"] == []
    api.wait(start_task(api, sd_jpeg))
    assert len(emu.webhook_log) == 1   # the ended task queued no delivery
    assert len(r.requests) == 1
    # the Python API does the same; reset restores the configured (empty) list
    emu.set_webhook_urls([r.url])
    assert emu.webhook_urls == [r.url]
    emu.reset()
    assert emu.webhook_urls == [] and emu.webhook_log == []


@pytest.mark.parametrize("url", [
    "http://example.com/hook", "http://10.0.0.1:8080/", "https://127.0.0.1:9/",
    "ftp://127.0.0.1/", "http://user:pw@127.0.0.1:9/", "http://127.0.0.1:99999/",
    "http:///nohost", "127.0.0.1:9",
])
def test_non_loopback_urls_are_rejected(make_emu, url):
    with pytest.raises(ValueError):
        emulator.Config(webhook_urls=[url])
    emu = make_emu()
    resp = requests.post(emu.base_url + "/_control/webhooks", json={"urls": [url]})
    assert resp.status_code == 400 and "webhook URL" in resp.json()["error"]
    with pytest.raises(ValueError):
        emu.set_webhook_urls([url])
    assert emu.webhook_urls == []


def test_loopback_forms_are_accepted():
    urls = ("http://127.0.0.1:9/a", "http://127.8.9.10:9/", "http://localhost:9",
            "http://[::1]:9/b?x=1")
    assert emulator.Config(webhook_urls=",".join(urls)).webhook_urls == urls
    assert webhooks.check_url("http://[::1]:9/b?x=1")[1:3] == (9, "/b?x=1")
    assert webhooks.check_url("http://localhost")[1:3] == (80, "/")


def test_bad_options_are_rejected(make_emu):
    with pytest.raises(ValueError):
        emulator.Config(webhook_urls=["http://127.0.0.1:%d/" % (9000 + i) for i in range(11)])
    for secret in ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_", "whsec_%%%", "whsec_QUJ"):
        with pytest.raises(ValueError):
            emulator.Config(webhook_secret=secret)
    with pytest.raises(ValueError):
        emulator.Config(webhook_retries=-1)
    with pytest.raises(ValueError):
        emulator.Config(webhook_backoff=-0.1)
    emu = make_emu()
    for body in ({}, {"urls": 5}, [1], {"urls": [5]}):
        resp = requests.post(emu.base_url + "/_control/webhooks", json=body)
        assert resp.status_code == 400


def test_cli_flags(capsys):
    cfg = emulator.config.config_from_args(
        ["--webhook-url", "http://127.0.0.1:9/a,http://127.0.0.1:9/b",
         "--webhook-url", "http://localhost:9/c", "--webhook-retries", "1",
         "--webhook-backoff", "0.1"])
    assert cfg.webhook_urls == ("http://127.0.0.1:9/a", "http://127.0.0.1:9/b",
                                "http://localhost:9/c")
    assert (cfg.webhook_retries, cfg.webhook_backoff) == (1, 0.1)
    assert cfg.webhook_secret == webhooks.DEFAULT_SECRET
    assert cfg.public()["webhook_urls"] == list(cfg.webhook_urls)
    assert emulator_main(["--webhook-url", "http://192.0.2.1/hook"]) == 2
    assert "loopback" in capsys.readouterr().err
    assert emulator_main(["--webhook-secret", "not-a-secret"]) == 2

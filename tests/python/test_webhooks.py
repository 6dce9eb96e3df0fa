"""Webhooks: skinanalysis.verify_webhook against deliveries the emulator
really signs and sends (to a small receiver on loopback), forged and stale
deliveries, header and body forms, and Client.notify."""

import base64
import hashlib
import hmac
import http.server
import json
import queue
import threading
import time

import pytest

import skinanalysis
from skinanalysis import errors
from skinanalysis._native import _core
from .sa_helpers import FAST, SD_IMAGE

SECRET = "whsec_" + base64.b64encode(b"python-tests-webhook-secret-0001").decode()


class Receiver:
    """An http.server on a free loopback port that queues every POST as
    (headers dict, raw body) and answers 204."""

    def __init__(self):
        deliveries = self.deliveries = queue.Queue()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                deliveries.put((dict(self.headers.items()), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = "http://127.0.0.1:%d/hook" % self.server.server_address[1]

    def get(self, timeout=10.0):
        return self.deliveries.get(timeout=timeout)

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def sign(secret, msg_id, stamp, body):
    key = base64.b64decode(secret[len("whsec_"):])
    mac = hmac.new(key, b"%s.%s.%s" % (msg_id.encode(), stamp.encode(), body),
                   hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def test_a_delivery_from_the_emulator_verifies(make_emulator, receiver):
    emu = make_emulator(task_seconds=0, webhook_urls=[receiver.url], webhook_secret=SECRET)
    assert emu.webhook_secret == SECRET
    with skinanalysis.Client(emu.api_key, base_url=emu.base_url, **FAST) as c:
        res = c.analyze(SD_IMAGE, ["pore"])
    headers, body = receiver.get()
    delivery = skinanalysis.verify_webhook(SECRET, headers, body)
    assert isinstance(delivery, skinanalysis.WebhookDelivery)
    assert delivery.task_id == res.task_id
    assert delivery.task_status == "success"
    assert delivery.id == "msg_%s:%d" % (res.task_id, delivery.created_at)
    assert abs(delivery.timestamp - time.time()) < 60
    assert delivery.raw == json.loads(body)
    # header names in any case; the body as str
    lowered = {k.upper(): v for k, v in headers.items()}
    again = skinanalysis.verify_webhook(SECRET, lowered, body.decode("utf-8"))
    assert again == delivery

    # a forged signature
    forged = dict(headers)
    forged["webhook-signature"] = sign(
        "whsec_" + base64.b64encode(b"not-the-secret-not-the-secret-00").decode(),
        headers["webhook-id"], headers["webhook-timestamp"], body)
    with pytest.raises(skinanalysis.WebhookError) as info:
        skinanalysis.verify_webhook(SECRET, forged, body)
    assert info.value.code == "webhook_signature"
    assert isinstance(info.value, skinanalysis.Error)
    # a tampered body
    with pytest.raises(skinanalysis.WebhookError) as info:
        skinanalysis.verify_webhook(SECRET, headers, body.replace(b"success", b"error"))
    assert info.value.code == "webhook_signature"
    # the real delivery, checked far from its time
    later = int(headers["webhook-timestamp"]) + 3600
    with pytest.raises(skinanalysis.WebhookError) as info:
        skinanalysis.verify_webhook(SECRET, headers, body, now=later)
    assert info.value.code == "webhook_stale"
    assert skinanalysis.verify_webhook(SECRET, headers, body, now=later,
                                       tolerance=7200).task_id == res.task_id


def test_stale_and_future_timestamps():
    body = b'{"created_at": 1761112848, "data": {"task_id": "t1", "task_status": "error"}}'
    now = 1_800_000_000
    for stamp in (now - 301, now + 301):
        headers = {"webhook-id": "msg_t1:1", "webhook-timestamp": str(stamp),
                   "webhook-signature": sign(SECRET, "msg_t1:1", str(stamp), body)}
        with pytest.raises(skinanalysis.WebhookError) as info:
            skinanalysis.verify_webhook(SECRET, headers, body, now=now)
        assert info.value.code == "webhook_stale"
    stamp = str(now - 299)
    headers = {"Webhook-Id": "msg_t1:1", "Webhook-Timestamp": stamp,
               "Webhook-Signature": "v1,AAAA " + sign(SECRET, "msg_t1:1", stamp, body)}
    delivery = skinanalysis.verify_webhook(SECRET, headers, body, now=now)
    assert (delivery.task_id, delivery.task_status, delivery.created_at) == (
        "t1", "error", 1761112848)


def test_malformed_input_is_a_webhook_error():
    body = b"{}"
    stamp = str(int(time.time()))
    good = {"webhook-id": "m", "webhook-timestamp": stamp,
            "webhook-signature": sign(SECRET, "m", stamp, body)}
    cases = [("not-a-secret", good),
             (SECRET, {k: v for k, v in good.items() if k != "webhook-signature"}),
             (SECRET, dict(good, **{"webhook-timestamp": "yesterday"})),
             (SECRET, dict(good, **{"webhook-signature": "v1,@@@"}))]
    for secret, headers in cases:
        with pytest.raises(skinanalysis.WebhookError) as info:
            skinanalysis.verify_webhook(secret, headers, body)
        assert info.value.code in ("invalid_argument", "webhook_signature"), (secret, headers)
    with pytest.raises(skinanalysis.WebhookError) as info:
        skinanalysis.verify_webhook("not-a-secret", good, body)
    assert info.value.code == "invalid_argument"
    with pytest.raises(TypeError):
        skinanalysis.verify_webhook(SECRET, good, 42)
    # a signed body that is not JSON: not a task notification
    text = b"not json"
    bad = dict(good, **{"webhook-signature": sign(SECRET, "m", stamp, text)})
    with pytest.raises(skinanalysis.WebhookError) as info:
        skinanalysis.verify_webhook(SECRET, bad, text)
    assert info.value.code == "protocol"


def _signed(body, stamp=None):
    stamp = stamp or str(int(time.time()))
    return {"webhook-id": "m", "webhook-timestamp": stamp,
            "webhook-signature": sign(SECRET, "m", stamp, body)}


# The contract shared with Lua (the core reads the body): a verified
# delivery is a task notification whose task_id is a string, or a
# WebhookError "protocol" ("limit" over 64 KiB).  The body may come from
# anyone who knows the secret, or a buggy sender.
@pytest.mark.parametrize("body,code", [
    (b'{"data": {}}', "protocol"),                       # was accepted, task_id None
    (b'{"created_at": 1}', "protocol"),
    (b'[1, 2]', "protocol"),
    (b'{"data": [1]}', "protocol"),
    (b'{"data": {"task_id": 5}}', "protocol"),
    (b'{"data": {"task_id": "a\\u0000b"}}', "protocol"),  # was "a\x00b"
    (b'{"data": {"task_id": "a b"}}', "protocol"),
    (b'{"data": {"task_id": "\\ud800"}}', "protocol"),    # a lone surrogate
    (b'{"data": {"task_id": "\xff"}}', "protocol"),        # not UTF-8
    (b"[" * 100000 + b"]" * 100000, "limit"),              # was RecursionError
    (b"[" * 1000 + b"]" * 1000, "protocol"),
    (b'{"data": {"task_id": "t"}, "pad": "' + b"x" * 70000 + b'"}', "limit"),
])
def test_signed_body_that_is_no_task_notification(body, code):
    with pytest.raises(skinanalysis.WebhookError) as info:
        skinanalysis.verify_webhook(SECRET, _signed(body), body)
    assert info.value.code == code


def test_notification_fields_as_the_core_reads_them():
    body = b'\xef\xbb\xbf{"data": {"task_id": "T-1_a/b+c=", "task_status": 7}, "created_at": 2.0}'
    d = skinanalysis.verify_webhook(SECRET, _signed(body), body)
    assert (d.task_id, d.task_status, d.created_at) == ("T-1_a/b+c=", None, 2)
    assert d.raw["data"]["task_status"] == 7


@pytest.mark.parametrize("secret,headers,body", [
    ("whsec_a\0b", None, b"{}"),                 # was ValueError
    ("whsec_\ud800", None, b"{}"),               # was UnicodeEncodeError
    (SECRET, {"webhook-id": "\ud800"}, b"{}"),   # was UnicodeEncodeError
    (SECRET, {"webhook-id": "m\0x"}, b"{}"),     # was ValueError
    (SECRET, None, "\ud800"),                    # was UnicodeEncodeError
    (SECRET, "no mapping", b"{}"),               # was AttributeError
    (SECRET, [("webhook-id", "m")], b"{}"),      # was AttributeError
    (SECRET, 42, b"{}"),                          # was AttributeError
])
def test_hostile_input_is_a_webhook_error(secret, headers, body):
    if headers is None or isinstance(headers, dict):
        headers = dict(_signed(b"{}"), **(headers or {}))
    with pytest.raises(skinanalysis.WebhookError) as info:
        skinanalysis.verify_webhook(secret, headers, body)
    assert info.value.code == "invalid_argument"


@pytest.mark.parametrize("kw", [{"tolerance": float("nan")}, {"tolerance": float("inf")},
                                {"tolerance": 0}, {"tolerance": 1e30}, {"now": float("nan")},
                                {"now": -5}, {"now": 1e300}])
def test_bad_tolerance_or_now_is_a_value_error(kw):
    with pytest.raises(ValueError):
        skinanalysis.verify_webhook(SECRET, _signed(b"{}"), b"{}", **kw)


def test_webhook_error_class():
    assert issubclass(skinanalysis.WebhookError, skinanalysis.Error)
    exc = errors.error_for(_core.ERR_WEBHOOK_STALE)
    assert type(exc) is skinanalysis.WebhookError and not exc.retryable
    assert exc.code == "webhook_stale" and exc.sa_status == _core.ERR_WEBHOOK_STALE


def test_webhook_then_notify_ends_the_job_before_its_next_poll(make_emulator, receiver):
    # the whole webhook flow: the task ends, the emulator signs and sends a
    # delivery, the receiver verifies it and notifies the client, and the
    # job ends at once instead of at its next scheduled poll (20 s away)
    emu = make_emulator(task_seconds=0.5, webhook_urls=[receiver.url], webhook_secret=SECRET)
    with skinanalysis.Client(emu.api_key, base_url=emu.base_url, poll_interval=20,
                             max_poll_interval=20) as c:
        job = c.submit(SD_IMAGE, ["pore"])
        while not job.task_id:
            c.step(0.05)
        headers, body = receiver.get(timeout=10)
        delivery = skinanalysis.verify_webhook(SECRET, headers, body)
        assert delivery.task_id == job.task_id and delivery.task_status == "success"
        start = time.monotonic()
        assert c.notify(delivery.task_id) == 1
        res = job.wait(timeout=5)
        assert time.monotonic() - start < 5
        assert res.get("pore") is not None

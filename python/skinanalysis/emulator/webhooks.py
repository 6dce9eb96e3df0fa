"""Webhook delivery (API.md section 12, Standard Webhooks).

When a task ends in ``success`` or ``error`` (not on expiry or timeout),
every configured URL gets ``POST`` with the documented body
``{"created_at": <unix s>, "data": {"task_id": ..., "task_status": ...}}``
and the headers ``webhook-id: msg_<task_id>:<created_at>`` (stable across
retries), ``webhook-timestamp`` (the time of the attempt) and
``webhook-signature: v1,<base64 HMAC-SHA256>`` over
``"<id>.<timestamp>.<body>"``, keyed with the base64-decoded secret.

Deliveries run as asyncio tasks on the server's loop, so they never block
it. A non-2xx answer, a connection error or a timeout is retried
``webhook_retries`` times after ``webhook_backoff * 2**k`` seconds (capped).
Only loopback ``http://`` URLs are accepted: the emulator never sends
traffic anywhere else.
"""

import asyncio
import base64
import binascii
import collections
import hashlib
import hmac
import ipaddress
import json
import sys
from urllib.parse import urlsplit

DEFAULT_SECRET = "whsec_" + base64.b64encode(b"emulator-webhook-secret-32bytes!").decode()
MAX_URLS = 10              # the console allows up to 10 endpoints
ATTEMPT_TIMEOUT = 5.0      # seconds for one POST (connect, send, status line)
BACKOFF_CAP = 30.0         # seconds
MAX_RETRIES = 10
LOG_MAX = 1000             # delivery records kept


def _is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url):
    """(host, port, target, netloc) of a loopback http URL; ValueError
    otherwise."""
    if not isinstance(url, str) or not url:
        raise ValueError("webhook URL must be a non-empty string")
    try:
        parts = urlsplit(url)
        port = parts.port or 80
    except ValueError as exc:
        raise ValueError("webhook URL %r: %s" % (url, exc)) from None
    if parts.scheme != "http":
        raise ValueError("webhook URL %r: only http:// to loopback is allowed" % url)
    if parts.username is not None or parts.password is not None:
        raise ValueError("webhook URL %r: credentials are not allowed" % url)
    if not parts.hostname or not _is_loopback(parts.hostname):
        raise ValueError("webhook URL %r: the host must be loopback (127.0.0.0/8, ::1, "
                         "localhost); the emulator sends nothing elsewhere" % url)
    target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
    return parts.hostname, port, target, parts.netloc


def parse_urls(value):
    """A tuple of checked URLs from a comma-separated string or a sequence."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    if not all(isinstance(item, str) for item in items):
        raise ValueError("webhook URLs must be strings")
    urls = tuple(item.strip() for item in items if item.strip())
    if len(urls) > MAX_URLS:
        raise ValueError("at most %d webhook URLs" % MAX_URLS)
    for url in urls:
        check_url(url)
    return urls


def secret_key(secret):
    """The key bytes of ``whsec_<base64>``; ValueError otherwise."""
    if not isinstance(secret, str) or not secret.startswith("whsec_"):
        raise ValueError("webhook secret must be 'whsec_' followed by base64")
    try:
        key = base64.b64decode(secret[len("whsec_"):], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("webhook secret must be 'whsec_' followed by base64") from None
    if not key:
        raise ValueError("webhook secret must not be empty")
    return key


def sign(key, msg_id, timestamp, body):
    """The ``webhook-signature`` value for one attempt."""
    mac = hmac.new(key, b"%s.%d." % (msg_id.encode(), timestamp) + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


async def _post(url, headers, body):
    """POST once; returns the response status code."""
    host, port, target, netloc = check_url(url)
    reader, writer = await asyncio.open_connection(host, port)
    try:
        head = "".join(["POST %s HTTP/1.1\r\nHost: %s\r\n" % (target, netloc)]
                       + ["%s: %s\r\n" % kv for kv in headers]
                       + ["Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)])
        writer.write(head.encode("latin-1") + body)
        await writer.drain()
        line = await reader.readline()
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
            raise ValueError("no HTTP status line in the answer")
        return int(parts[1])
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass


class Dispatcher:
    """Webhook URLs, the signing key, in-flight deliveries and their log.
    ``task_ended`` runs under the state lock, from any thread."""

    def __init__(self, state):
        self.state = state
        self.config = state.config
        self.key = secret_key(self.config.webhook_secret)
        self.urls = tuple(self.config.webhook_urls)
        self.loop = None
        self.inflight = set()
        self.log = collections.deque(maxlen=LOG_MAX)
        self.seq = 0

    def attach(self, loop):
        self.loop = loop

    def reset(self):
        self.urls = tuple(self.config.webhook_urls)
        self.log.clear()

    def set_urls(self, urls):
        self.urls = parse_urls(urls)

    def snapshot(self):
        return {"urls": list(self.urls), "deliveries": [dict(r) for r in self.log]}

    def task_ended(self, task):
        if not self.urls or task.status not in ("success", "error"):
            return
        created = int(self.state.clock.time())
        body = json.dumps({"created_at": created,
                           "data": {"task_id": task.task_id, "task_status": task.status}},
                          separators=(",", ":")).encode()
        msg_id = "msg_%s:%d" % (task.task_id, created)
        for url in self.urls:
            self.seq += 1
            record = {"seq": self.seq, "webhook_id": msg_id, "url": url,
                      "task_id": task.task_id, "task_status": task.status, "attempts": 0,
                      "status": None, "error": None, "outcome": "pending"}
            self.log.append(record)
            if self.loop is None or self.loop.is_closed():
                self._finish(record, "failed", "emulator not running")
                continue
            try:
                self.loop.call_soon_threadsafe(self._spawn, record, msg_id, body)
            except RuntimeError:   # the loop closed meanwhile
                self._finish(record, "failed", "emulator not running")

    def _spawn(self, record, msg_id, body):
        job = asyncio.get_running_loop().create_task(self._deliver(record, msg_id, body))
        self.inflight.add(job)
        job.add_done_callback(self.inflight.discard)

    def _finish(self, record, outcome, error=None):
        record["outcome"] = outcome
        if error is not None:
            record["error"] = error
        self.state.count("webhooks_sent" if outcome == "sent" else "webhooks_failed")

    async def _deliver(self, record, msg_id, body):
        cfg = self.config
        for attempt in range(1 + cfg.webhook_retries):
            if attempt:
                await asyncio.sleep(min(BACKOFF_CAP, cfg.webhook_backoff * 2 ** (attempt - 1)))
            now = int(self.state.clock.time())
            headers = (("Content-Type", "application/json"), ("webhook-id", msg_id),
                       ("webhook-timestamp", str(now)),
                       ("webhook-signature", sign(self.key, msg_id, now, body)))
            status, error = None, None
            try:
                status = await asyncio.wait_for(_post(record["url"], headers, body),
                                                ATTEMPT_TIMEOUT)
            except asyncio.TimeoutError:
                error = "timed out after %g s" % ATTEMPT_TIMEOUT
            except (OSError, ValueError) as exc:
                error = "%s: %s" % (type(exc).__name__, exc)
            with self.state.lock:
                record["attempts"] = attempt + 1
                record["status"] = status
                record["error"] = error if status is None else None
                self.state.count("webhook_attempts")
                if status is not None and 200 <= status < 300:
                    self._finish(record, "sent")
                    return
                if self.config.verbose:
                    print("webhook %s -> %s" % (record["url"], status or error),
                          file=sys.stderr, flush=True)
        with self.state.lock:
            self._finish(record, "failed",
                         record["error"] or "HTTP %s after %d attempts"
                         % (record["status"], record["attempts"]))

    async def close(self):
        """Cancel deliveries still in flight (server shutdown)."""
        jobs = list(self.inflight)
        for job in jobs:
            job.cancel()
        if jobs:
            await asyncio.gather(*jobs, return_exceptions=True)

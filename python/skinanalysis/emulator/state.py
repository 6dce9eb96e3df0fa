"""The emulator's model: API keys and balances, upload slots, tasks and
their life cycle, rate-limit windows, counters and the request log.

All mutation happens under ``State.lock`` (handlers run on the event loop
thread; the in-process Python API reads from another thread).
"""

import base64
import collections
import random
import hashlib
import hmac
import secrets
import sys
import threading
import time as _time
from urllib.parse import parse_qsl, unquote, urlsplit

from . import catalog, images, webhooks
from .clock import Clock
from .results import ZIP_NAME, Analysis


def new_file_id():
    """Standard base64, 64 chars, with '/' and '+' like the documented example."""
    while True:
        fid = base64.b64encode(secrets.token_bytes(48)).decode()
        if "/" in fid and "+" in fid:
            return fid


def new_task_id():
    return base64.urlsafe_b64encode(secrets.token_bytes(48)).decode()


class FileRecord:
    __slots__ = ("file_id", "storage_key", "content_type", "file_name", "size", "owner",
                 "created", "data", "uploaded_at")

    def __init__(self, file_id, storage_key, content_type, file_name, size, owner, now):
        self.file_id = file_id
        self.storage_key = storage_key
        self.content_type = content_type
        self.file_name = file_name
        self.size = size
        self.owner = owner
        self.created = now
        self.data = None
        self.uploaded_at = None


class Task:
    """One analysis task. Time is the emulator clock's ``monotonic()``. ``status`` is one of
    running, success, error, expired (not polled in time), timed_out."""

    def __init__(self, task_id, owner, version, actions, tier, fmt, overlay, source, cost,
                 run_seconds, now):
        self.task_id = task_id
        self.owner = owner
        self.version = version
        self.actions = actions
        self.tier = tier
        self.format = fmt
        self.overlay = overlay
        self.source = source          # ("file", file_id) or ("url", url)
        self.cost = cost
        self.created = now
        self.done_at = now + run_seconds
        self.ended_at = None          # when it ended on the server (any end)
        self.seen_done_at = None      # when a poll first answered its final status
        self.poll_times = []          # when each status call arrived (first 1000)
        self.last_seen = now
        self.max_gap = 0.0
        self.polls = 0
        self.terminal_seen = False    # a status call has reported a final state
        self.status = "running"
        self.forced_error = None      # (code, message) set by scenario/control API
        self.error = None
        self.error_message = None
        self.analysis = None
        self.finished_at = None
        self.token = secrets.token_urlsafe(24)
        self.blobs = {}               # result file name -> bytes (cache)
        self.results_override = None  # data.results set by the control API

    def public(self):
        return {"task_id": self.task_id, "status": self.status, "version": self.version,
                "dst_actions": list(self.actions), "tier": self.tier, "format": self.format,
                "cost": self.cost, "polls": self.polls, "max_unpolled_gap": self.max_gap,
                "error": self.error, "error_message": self.error_message,
                "forced_error": self.forced_error[0] if self.forced_error else None,
                "source": self.source[0],
                # times: the emulator clock's monotonic() seconds
                "created_at": self.created, "done_at": self.ended_at,
                "seen_done_at": self.seen_done_at, "poll_times": list(self.poll_times)}


class RateLimiter:
    """Sliding windows: at most ``qps`` requests in any ``qps_seconds`` (the
    API: one second) and ``window_max`` in any ``window_seconds``, per bucket
    (key or IP)."""

    def __init__(self, qps, window_max, window_seconds, qps_seconds=1.0):
        self.qps = qps
        self.qps_seconds = qps_seconds
        self.window_max = window_max
        self.window_seconds = window_seconds
        self.history = {}

    def allow(self, buckets, now):
        queues = []
        for bucket in buckets:
            q = self.history.get(bucket)
            if q is None:
                q = self.history[bucket] = collections.deque()
            horizon = now - self.window_seconds
            while q and q[0] <= horizon:
                q.popleft()
            if len(q) >= self.window_max:
                return False
            recent = 0
            for t in reversed(q):
                if t <= now - self.qps_seconds:
                    break
                recent += 1
                if recent >= self.qps:
                    return False
            queues.append(q)
        for q in queues:
            q.append(now)
        return True


def _new_counters():
    return {
        "requests": {}, "responses": {}, "requests_total": 0,
        "files_created": 0, "uploads": 0, "uploads_rejected": 0,
        "tasks_created": 0, "tasks_succeeded": 0, "tasks_failed": 0, "tasks_expired": 0,
        "tasks_timed_out": 0,
        "units_charged": {}, "units_charged_on_expiry": {},
        "rate_limited": 0, "responses_429": 0, "unauthorized": 0,
        "auth_on_storage": 0, "auth_on_results": 0,
        "faults_applied": {}, "max_unpolled_gap": {}, "result_downloads": 0,
        "webhooks_sent": 0, "webhooks_failed": 0, "webhook_attempts": 0,
        "tasks_purged": 0, "files_purged": 0, "tasks_deleted": 0,
    }


class State:
    def __init__(self, config):
        self.config = config
        self.lock = threading.RLock()
        self.clock = Clock(test=config.test_clock)   # outlives reset()
        self.secret = secrets.token_bytes(32)
        self.own_netlocs = set()     # host:port strings this server is reached as
        self.webhooks = webhooks.Dispatcher(self)
        self.reset()

    def reset(self):
        with self.lock:
            self.grants = {k: self.starting_grants() for k in self.config.keys}
            self.deleted_tokens = set()  # result tokens of deleted tasks (404)
            self.files = {}          # file_id -> FileRecord
            self.storage = {}        # storage key -> file_id
            self.tasks = {}          # task_id -> Task
            self.active = set()      # task_ids still running
            self.tokens = {}         # result token -> task_id
            self.public_files = {}   # name -> (content_type, bytes)
            self.stored = collections.OrderedDict()  # file_id -> uploaded bytes, oldest first
            self.stored_bytes = 0
            self.finished = collections.deque()      # task ids, in the order they ended
            self.forced_next = collections.deque()  # engine errors for the next tasks
            self.limiter = RateLimiter(self.config.rate_qps, self.config.rate_window_max,
                                       self.config.rate_window_seconds,
                                       self.config.rate_qps_seconds)
            self.counters = _new_counters()
            self.log = collections.deque(maxlen=self.config.log_max)
            self.seq = 0
            self.rng = random.Random(self.config.seed)  # task durations
            self.webhooks.reset()

    # -- credit grants (API.md sections 11 and 17.1) -----------------------------

    def starting_grants(self):
        """One "ApiSubscription" grant of ``units`` per key, plus the grants
        of ``config.grants`` ("TYPE:AMOUNT,..."), each with an expiry."""
        specs = [("ApiSubscription", self.config.units)] + list(self.config.grant_specs)
        return self.make_grants(specs)

    def make_grants(self, specs):
        """Grant entries from (type, amount[, days to expiry]) tuples."""
        out = []
        now = self.clock.time()
        for n, spec in enumerate(specs):
            gtype, amount = spec[0], spec[1]
            days = spec[2] if len(spec) > 2 and spec[2] is not None else \
                catalog.GRANT_TYPES_DEFAULT_DAYS.get(gtype, catalog.OTHER_GRANT_DAYS)
            out.append({"type": gtype, "amount": amount,
                        "expired_date": _time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                      _time.gmtime(now + days * 86400)),
                        "grant_id": "g%d" % (n + 1), "_expires": now + days * 86400,
                        "_order": n})
        return out

    @staticmethod
    def is_api_grant(grant):
        return isinstance(grant.get("type"), str) and grant["type"].startswith("Api")

    @property
    def balances(self):
        """Units the API can spend, per key (the "Api*" grants), a copy."""
        return {k: sum(g["amount"] for g in grants if self.is_api_grant(g))
                for k, grants in self.grants.items()}

    def balance(self, key):
        return sum(g["amount"] for g in self.grants.get(key, ()) if self.is_api_grant(g))

    def set_units(self, key, units):
        """The key's Api balance becomes one ApiSubscription grant of
        ``units``; its other (non-Api) grants stay."""
        others = [(g["type"], g["amount"]) for g in self.grants.get(key, ())
                  if not self.is_api_grant(g)]
        self.grants[key] = self.make_grants([("ApiSubscription", units)] + others)

    def draw(self, key, cost):
        """Spend ``cost`` units: Api grants closest to expiry first, and
        among equal dates the oldest (D-REF Step 6); never below 0."""
        left = cost
        for g in sorted((g for g in self.grants.get(key, ()) if self.is_api_grant(g)),
                        key=lambda g: (g["_expires"], g["_order"])):
            take = min(left, g["amount"])
            g["amount"] -= take
            left -= take
            if left <= 0:
                break

    def public_grants(self, key):
        return [{k: v for k, v in g.items() if not k.startswith("_")}
                for g in self.grants.get(key, ())]

    def delete_task(self, task_id):
        """POST /task/delete: the task, its input file and its results go."""
        task = self.tasks.pop(task_id, None)
        if task is None:
            return
        self.active.discard(task_id)
        self.tokens.pop(task.token, None)
        if len(self.deleted_tokens) < 100000:
            self.deleted_tokens.add(task.token)
        task.blobs = {}
        task.analysis = None
        try:
            self.finished.remove(task_id)
        except ValueError:
            pass
        if task.source[0] == "file":
            self.purge_file(task.source[1])
            record = self.files.pop(task.source[1], None)
            if record is not None:
                self.storage.pop(record.storage_key, None)
        self.count("tasks_deleted")

    # -- signing -------------------------------------------------------------

    def sign(self, *parts):
        msg = "\n".join(str(p) for p in parts).encode()
        return hmac.new(self.secret, msg, hashlib.sha256).hexdigest()

    def check_sig(self, sig, *parts):
        return isinstance(sig, str) and hmac.compare_digest(sig, self.sign(*parts))

    # -- counters and log ----------------------------------------------------

    def count(self, name, key=None, amount=1):
        if key is None:
            self.counters[name] += amount
        else:
            bucket = self.counters[name]
            bucket[key] = bucket.get(key, 0) + amount

    def record(self, entry):
        self.seq += 1
        entry["seq"] = self.seq
        self.log.append(entry)
        if self.config.verbose:
            print("%(method)s %(path)s -> %(status)s fault=%(fault)s" % entry, file=sys.stderr,
                  flush=True)

    def snapshot_counters(self):
        with self.lock:
            self.sweep()
            out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.counters.items()}
            out["balances"] = dict(self.balances)
            out["tasks_running"] = len(self.active)
            return out

    def snapshot_log(self, since=0):
        with self.lock:
            return [dict(e) for e in self.log if e["seq"] > since]

    # -- stored bytes ------------------------------------------------------------

    def stored_add(self, record):
        """An upload landed: count its bytes, then keep the store under
        ``store_max_mb`` (a long benchmark uploads gigabytes)."""
        self.stored_bytes -= self.stored.pop(record.file_id, 0)
        self.stored[record.file_id] = len(record.data)
        self.stored_bytes += len(record.data)
        limit = self.config.store_max_mb * 1e6
        if limit <= 0:
            return
        while self.stored_bytes > limit and (self.finished or len(self.stored) > 1):
            if self.finished:
                self.purge_task(self.finished.popleft())
            else:
                # no finished task left: the oldest upload (not the one just made)
                self.purge_file(next(iter(self.stored)))

    def purge_task(self, task_id):
        """A finished task and its file go early, as if their retention had
        passed: the task id then answers 400 Invalid task ID."""
        task = self.tasks.pop(task_id, None)
        if task is None:
            return
        self.tokens.pop(task.token, None)
        task.blobs = {}
        task.analysis = None
        self.count("tasks_purged")
        if task.source[0] == "file":
            self.purge_file(task.source[1])

    def purge_file(self, file_id):
        n = self.stored.pop(file_id, None)
        if n is None:
            return
        self.stored_bytes -= n
        record = self.files.get(file_id)
        if record is not None:
            record.data = None
        self.count("files_purged")

    # -- tasks -----------------------------------------------------------------

    def add_task(self, task):
        self.tasks[task.task_id] = task
        self.active.add(task.task_id)
        self.tokens[task.token] = task.task_id
        if self.forced_next:
            task.forced_error = self.forced_next.popleft()
        self.count("tasks_created")

    def task_seconds(self):
        """The run time of a new task: the configured number, or a uniform
        draw from its MIN:MAX range (seeded by ``seed``)."""
        lo, hi = self.config.task_seconds_range()
        return lo if hi <= lo else self.rng.uniform(lo, hi)

    def next_done_at(self):
        """The earliest done_at of a running task, or None."""
        times = [self.tasks[t].done_at for t in self.active]
        return min(times) if times else None

    def sweep(self, now=None):
        """Advance every running task to ``now`` (charges, expiries, timeouts)."""
        now = self.clock.monotonic() if now is None else now
        for task_id in list(self.active):
            self.advance(self.tasks[task_id], now)

    def advance(self, task, now):
        if task.status != "running":
            return
        cfg = self.config
        events = [(task.done_at, 0, "done")]
        if cfg.poll_window > 0:
            events.append((task.last_seen + cfg.poll_window, 1, "expired"))
        if cfg.task_timeout_after is not None:
            events.append((task.created + cfg.task_timeout_after, 2, "timed_out"))
        when, _, what = min(events)
        if when > now:
            return
        self.active.discard(task.task_id)
        self.finished.append(task.task_id)
        task.finished_at = now
        task.ended_at = when
        if what == "done":
            self.finish(task)
        elif what == "expired":
            task.status = "expired"
            self.count("tasks_expired")
            self.charge(task, on_expiry=True)
        else:
            task.status = "timed_out"
            self.count("tasks_timed_out")

    def charge(self, task, on_expiry=False):
        self.draw(task.owner, task.cost)
        self.count("units_charged", task.owner, task.cost)
        if on_expiry:
            self.count("units_charged_on_expiry", task.owner, task.cost)

    def finish(self, task):
        """The engine runs: decide success or an engine error."""
        forced = task.forced_error or ((self.config.engine_error, None)
                                       if self.config.engine_error else None)
        if forced:
            return self.fail(task, forced[0], forced[1])
        kind, ref = task.source
        if kind == "file":
            data = self.files[ref].data
            if data is None:
                return self.fail(task, "unknown_internal_error",
                                 "Source file was never uploaded to the pre-signed URL")
        else:
            data = self.fetch_internal(ref)
            if data is None:
                return self.fail(task, "error_download_image")
        info = images.sniff(data)
        if info is None:
            return self.fail(task, "error_decode_image")
        _, width, height = info
        if min(width, height) < catalog.MIN_SHORT_SIDE[task.tier]:
            return self.fail(task, "error_below_min_image_size",
                             "Short side %d px is below the %s minimum of %d px"
                             % (min(width, height), task.tier.upper(),
                                catalog.MIN_SHORT_SIDE[task.tier]))
        task.analysis = Analysis(data, width, height, task.actions, task.tier)
        task.blobs[Analysis.resize_name] = data
        task.status = "success"
        self.count("tasks_succeeded")
        self.charge(task)
        self.webhooks.task_ended(task)

    def fail(self, task, code, message=None):
        task.status = "error"
        task.error = code
        task.error_message = message or catalog.ENGINE_ERROR_MESSAGES.get(code, code)
        self.count("tasks_failed")
        self.webhooks.task_ended(task)

    def force_error(self, task, code, message=None):
        task.forced_error = (code, message)

    # -- internal URL fetches (src_file_url) ---------------------------------

    def fetch_internal(self, url):
        """Bytes behind one of the emulator's own URLs, or None. The
        emulator never makes outbound requests."""
        try:
            parts = urlsplit(url)
        except ValueError:
            return None
        if parts.scheme not in ("http", "https") or parts.netloc not in self.own_netlocs:
            return None
        path = unquote(parts.path)
        if path.startswith("/_public/"):
            item = self.public_files.get(path[len("/_public/"):])
            return item[1] if item else None
        if path.startswith("/_storage/"):
            fid = self.storage.get(path[len("/_storage/"):])
            return self.files[fid].data if fid else None
        if path.startswith("/_results/"):
            token, _, name = path[len("/_results/"):].partition("/")
            task_id = self.tokens.get(token)
            if task_id is None:
                return None
            query = dict(parse_qsl(parts.query))
            if not self.result_url_valid(path, query):
                return None
            return self.result_blob(self.tasks[task_id], name)
        return None

    # -- results ---------------------------------------------------------------

    def result_url(self, base, task, name):
        path = "/_results/%s/%s" % (task.token, name)
        expires = int((self.clock.time() + self.config.url_ttl) * 1000)
        return "%s%s?expires=%d&sig=%s" % (base, path, expires, self.sign("GET", path, expires))

    def result_url_valid(self, path, query):
        exp = query.get("expires", "")
        return exp.isdigit() and self.check_sig(query.get("sig"), "GET", path, int(exp)) \
            and int(exp) >= self.clock.time() * 1000

    def result_names(self, task):
        analysis = task.analysis
        if task.format == "zip":
            return {ZIP_NAME}
        return analysis.json_mask_names(task.overlay) | {Analysis.resize_name}

    def result_blob(self, task, name):
        if task.analysis is None or name not in self.result_names(task):
            return None
        blob = task.blobs.get(name)
        if blob is None:
            if task.format == "zip":
                blob = task.analysis.build_zip(task.overlay)
            else:
                blob = task.analysis.render_mask(name)
            task.blobs[name] = blob
        return blob

"""Emulator options: one dataclass used by the CLI flags and by the
``Emulator(**options)`` keyword arguments alike."""

import argparse
import dataclasses
import json

from . import catalog, webhooks


@dataclasses.dataclass
class Config:
    host: str = "127.0.0.1"
    port: int = 0
    keys: tuple = ("emulator-key",)
    units: int = 100000
    grants: str = ""          # more grants per key: "TYPE:AMOUNT[:DAYS],..."
    task_seconds: object = 3.0  # seconds, or "MIN:MAX" / (MIN, MAX): uniform per task
    seed: int = None            # seeds the task-duration draws (repeatable runs)
    poll_window: float = 20.0
    task_timeout_after: float = None
    retention: float = 86400.0
    store_max_mb: float = 1024.0  # uploaded bytes kept; 0 = no bound
    rate_limit: bool = True
    rate_qps: int = 5
    rate_window_max: int = 250
    rate_window_seconds: float = 300.0
    quirks: frozenset = frozenset()
    polling_interval_ms: int = 1000
    auth_variant: str = "docs"
    url_ttl: float = 7200.0
    upload_ttl: float = 300.0
    engine_error: str = None
    scenario: object = None   # dict, list or path of a JSON scenario file
    log_max: int = 100000
    verbose: bool = False
    webhook_urls: tuple = ()  # loopback http URLs (comma-separated string or sequence)
    webhook_secret: str = webhooks.DEFAULT_SECRET
    webhook_retries: int = 3
    webhook_backoff: float = 0.5
    test_clock: bool = False      # time moves only by POST /_control/clock (clock.py)
    control_any_host: bool = False  # /_control/ answers non-loopback peers too
    rate_qps_seconds: float = 1.0   # the window rate_qps counts (the API: 1 s)

    def __post_init__(self):
        if isinstance(self.keys, str):
            self.keys = tuple(k for k in self.keys.split(",") if k)
        self.keys = tuple(self.keys)
        if not self.keys:
            raise ValueError("at least one API key is required")
        self.grant_specs = parse_grants(self.grants)
        if self.units < 0:
            raise ValueError("units must be >= 0")
        if isinstance(self.quirks, str):
            self.quirks = [q for q in self.quirks.split(",") if q]
        self.quirks = frozenset(self.quirks)
        unknown = self.quirks - catalog.QUIRKS
        if unknown:
            raise ValueError("unknown quirks %s (known: %s)"
                             % (sorted(unknown), ", ".join(sorted(catalog.QUIRKS))))
        if isinstance(self.rate_limit, str):
            if self.rate_limit not in ("on", "off"):
                raise ValueError("rate_limit must be on or off")
            self.rate_limit = self.rate_limit == "on"
        if self.auth_variant not in catalog.AUTH_VARIANTS:
            raise ValueError("auth_variant must be one of %s" % ", ".join(catalog.AUTH_VARIANTS))
        self.task_seconds = parse_task_seconds(self.task_seconds)
        if self.seed is not None and not isinstance(self.seed, int):
            self.seed = int(self.seed)
        for name in ("poll_window", "url_ttl", "upload_ttl", "retention",
                     "rate_window_seconds", "store_max_mb"):
            if getattr(self, name) < 0:
                raise ValueError("%s must be >= 0" % name)
        if not self.rate_qps_seconds > 0:
            raise ValueError("rate_qps_seconds must be > 0")
        if self.task_timeout_after is not None and self.task_timeout_after < 0:
            raise ValueError("task_timeout_after must be >= 0")
        self.webhook_urls = webhooks.parse_urls(self.webhook_urls)
        webhooks.secret_key(self.webhook_secret)
        if not 0 <= self.webhook_retries <= webhooks.MAX_RETRIES:
            raise ValueError("webhook_retries must be 0..%d" % webhooks.MAX_RETRIES)
        if self.webhook_backoff < 0:
            raise ValueError("webhook_backoff must be >= 0")
        if isinstance(self.scenario, str):
            with open(self.scenario, encoding="utf-8") as fh:
                self.scenario = json.load(fh)

    def task_seconds_range(self):
        """(MIN, MAX) of the task durations (MIN == MAX: a fixed duration)."""
        t = self.task_seconds
        return (t, t) if isinstance(t, (int, float)) else t

    def public(self):
        """JSON-friendly view (GET /_control/config)."""
        out = dataclasses.asdict(self)
        out["keys"] = len(self.keys)  # never echo key values
        out.pop("grant_specs", None)
        out["quirks"] = sorted(self.quirks)
        out["webhook_urls"] = list(self.webhook_urls)
        return out


def parse_task_seconds(value):
    """A plain number (every task runs that long) or MIN:MAX (a string, or a
    pair): each task's duration drawn uniformly from [MIN, MAX].  Returns a
    float or a (min, max) tuple of floats; ValueError when malformed."""
    if isinstance(value, str):
        if ":" in value:
            lo, _, hi = value.partition(":")
            value = (float(lo), float(hi))
        else:
            value = float(value)
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError("task_seconds must be a number or MIN:MAX")
        lo, hi = float(value[0]), float(value[1])
        if not 0 <= lo <= hi:
            raise ValueError("task_seconds MIN:MAX needs 0 <= MIN <= MAX")
        return (lo, hi)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("task_seconds must be a number or MIN:MAX")
    if value < 0:
        raise ValueError("task_seconds must be >= 0")
    return float(value)


def parse_grants(text):
    """[(type, amount, days or None)] from "TYPE:AMOUNT[:DAYS],..."."""
    out = []
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        parts = item.split(":")
        if len(parts) not in (2, 3) or not parts[0]:
            raise ValueError("grants: %r is not TYPE:AMOUNT[:DAYS]" % item)
        try:
            amount = int(parts[1])
            days = float(parts[2]) if len(parts) == 3 else None
        except ValueError:
            raise ValueError("grants: %r is not TYPE:AMOUNT[:DAYS]" % item) from None
        if amount < 0:
            raise ValueError("grants: amount must be >= 0 in %r" % item)
        out.append((parts[0], amount, days))
    return out


def _float_or_none(text):
    return None if text in ("", "none", "off") else float(text)


def build_parser():
    p = argparse.ArgumentParser(
        prog="emulator",
        description="Local emulator of Perfect Corp's AI Skin Analysis API (v2.0 and v2.1). "
                    "Prints 'listening on http://HOST:PORT' first, then serves until "
                    "SIGINT/SIGTERM. See docs/emulator.md.")
    d = Config()
    p.add_argument("--host", default=d.host, help="address to bind (default %(default)s)")
    p.add_argument("--port", type=int, default=d.port, help="port; 0 picks a free one (default 0)")
    p.add_argument("--keys", default=",".join(d.keys),
                   help="comma-separated accepted API keys (default %(default)s)")
    p.add_argument("--units", type=int, default=d.units,
                   help="starting unit balance per key: one ApiSubscription grant "
                        "(default %(default)s)")
    p.add_argument("--grants", default="", metavar="TYPE:AMOUNT[:DAYS],...",
                   help="more credit grants per key, e.g. ApiPayAsYouGo:50,Web:30 (types "
                        "starting with Api are spent by the API, closest expiry first; "
                        "DAYS to expiry)")
    p.add_argument("--task-seconds", default=str(d.task_seconds), metavar="S|MIN:MAX",
                   help="how long a task runs; 0 = done at once; MIN:MAX draws each "
                        "task's duration uniformly from that range (default %(default)s)")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of the task-duration draws, for repeatable runs "
                        "(default: random)")
    p.add_argument("--poll-window", type=float, default=d.poll_window,
                   help="a running task not polled within this many seconds expires; "
                        "0 disables expiry (default %(default)s)")
    p.add_argument("--task-timeout-after", type=_float_or_none, default=None, metavar="S",
                   help="a task still running S seconds after creation fails with 500 "
                        "'Task execution timed out' (default: never)")
    p.add_argument("--retention", type=float, default=d.retention,
                   help="seconds a finished task stays queryable (default %(default)s)")
    p.add_argument("--store-max-mb", type=float, default=d.store_max_mb,
                   help="uploaded bytes kept, in MB: beyond it the oldest finished tasks "
                        "and their files are purged as if their retention had passed; "
                        "0 = no bound (default %(default)s)")
    p.add_argument("--rate-limit", choices=("on", "off"), default="on",
                   help="per-key and per-IP rate limits on /s2s/ calls (default on)")
    p.add_argument("--rate-qps", type=int, default=d.rate_qps,
                   help="requests per second per key and per IP (default %(default)s)")
    p.add_argument("--rate-window-max", type=int, default=d.rate_window_max,
                   help="requests per window per key and per IP (default %(default)s)")
    p.add_argument("--rate-window-seconds", type=float, default=d.rate_window_seconds,
                   help="length of that window in seconds (default %(default)s)")
    p.add_argument("--quirks", default="",
                   help="comma-separated quirks to switch on: " + ", ".join(sorted(catalog.QUIRKS)))
    p.add_argument("--polling-interval-ms", type=int, default=d.polling_interval_ms,
                   help="value of data.polling_interval with the polling_interval quirk "
                        "(default %(default)s)")
    p.add_argument("--auth-variant", choices=sorted(catalog.AUTH_VARIANTS), default=d.auth_variant,
                   help="401 body: docs, observed or token (default %(default)s)")
    p.add_argument("--url-ttl", type=float, default=d.url_ttl,
                   help="seconds result/mask/zip URLs stay valid (default %(default)s)")
    p.add_argument("--upload-ttl", type=float, default=d.upload_ttl,
                   help="seconds a pre-signed PUT URL stays valid (default %(default)s)")
    p.add_argument("--engine-error", default=None, metavar="CODE",
                   help="make every task end with this engine error code, e.g. error_no_face")
    p.add_argument("--scenario", default=None, metavar="FILE",
                   help="fault-injection scenario (JSON file, see docs/emulator.md)")
    p.add_argument("--log-max", type=int, default=d.log_max,
                   help="request log records kept in memory (default %(default)s)")
    p.add_argument("--verbose", action="store_true", help="print one line per request on stderr")
    p.add_argument("--webhook-url", action="append", default=[], metavar="URL",
                   help="POST a signed notification here when a task ends (loopback http only; "
                        "repeatable or comma-separated, at most %d)" % webhooks.MAX_URLS)
    p.add_argument("--webhook-secret", default=d.webhook_secret, metavar="whsec_...",
                   help="signing secret, 'whsec_' + base64 (default: a fixed test secret, "
                        "see GET /_control/config)")
    p.add_argument("--webhook-retries", type=int, default=d.webhook_retries,
                   help="retries of a failed delivery (default %(default)s)")
    p.add_argument("--webhook-backoff", type=float, default=d.webhook_backoff,
                   help="seconds before the first retry, doubled each time "
                        "(default %(default)s)")
    p.add_argument("--test-clock", action="store_true",
                   help="start the emulator's clock stopped: time (task progress, expiry, "
                        "rate windows, URL expiry, timestamps) moves only by "
                        "POST /_control/clock {\"advance_ms\": N}")
    p.add_argument("--rate-qps-seconds", type=float, default=d.rate_qps_seconds,
                   help="the window --rate-qps counts, in seconds; shorter than the API's 1 s "
                        "it tolerates late arrivals on a loaded machine (default %(default)s)")
    p.add_argument("--control-any-host", action="store_true",
                   help="let /_control/ answer peers other than loopback (by default it "
                        "answers 403 to them; only for an emulator bound to a trusted network)")
    return p


def config_from_args(argv=None):
    args = build_parser().parse_args(argv)
    return Config(host=args.host, port=args.port, keys=args.keys, units=args.units,
                  grants=args.grants,
                  task_seconds=args.task_seconds, seed=args.seed, poll_window=args.poll_window,
                  task_timeout_after=args.task_timeout_after, retention=args.retention,
                  store_max_mb=args.store_max_mb,
                  rate_limit=args.rate_limit, rate_qps=args.rate_qps,
                  rate_window_max=args.rate_window_max,
                  rate_window_seconds=args.rate_window_seconds, quirks=args.quirks,
                  polling_interval_ms=args.polling_interval_ms, auth_variant=args.auth_variant,
                  url_ttl=args.url_ttl, upload_ttl=args.upload_ttl, engine_error=args.engine_error,
                  scenario=args.scenario, log_max=args.log_max, verbose=args.verbose,
                  webhook_urls=",".join(args.webhook_url), webhook_secret=args.webhook_secret,
                  webhook_retries=args.webhook_retries, webhook_backoff=args.webhook_backoff,
                  test_clock=args.test_clock, control_any_host=args.control_any_host,
                  rate_qps_seconds=args.rate_qps_seconds)

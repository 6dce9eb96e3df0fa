"""Routing, the /s2s/ guard (rate limits, then auth), fault injection and
the request log. ``App.handle`` is the HTTP server's handler."""

import json
import random
import re
import sys
import traceback

from . import api, catalog, control
from .faults import Scenario
from .httpserver import Response
from .state import State

FAULT_ENDPOINTS = frozenset({"file_create", "upload", "task_create", "task_status", "result",
                             "credit", "feature_cost", "task_delete"})

_ROUTES = (
    ("POST", re.compile(r"/s2s/(v2\.[01])/file/skin-analysis"), "file_create"),
    ("POST", re.compile(r"/s2s/v2\.0/file"), "file_create"),
    ("POST", re.compile(r"/s2s/(v2\.[01])/task/skin-analysis"), "task_create"),
    ("GET", re.compile(r"/s2s/(v2\.[01])/task/skin-analysis/([^/]+)"), "task_status"),
    # account endpoints (API.md section 17.1)
    ("GET", re.compile(r"/s2s/v1\.0/client/credit"), "credit"),
    ("GET", re.compile(r"/s2s/v2\.0/credit/feature-cost"), "feature_cost"),
    ("POST", re.compile(r"/s2s/v2\.0/task/delete"), "task_delete"),
)

_HTML = ("<html>\r\n<head><title>{0}</title></head>\r\n<body>\r\n<center><h1>{0}</h1></center>"
         "\r\n</body>\r\n</html>\r\n")
_HTML_FAULTS = {"http_500_html": (500, "500 Internal Server Error"),
                "http_502_html": (502, "502 Bad Gateway"),
                "http_503": (503, "503 Service Temporarily Unavailable")}


class Context:
    """Per-request facts gathered by handlers for the log."""
    __slots__ = ("request", "endpoint", "version", "api_key", "base_url", "file_id", "task_id",
                 "task_created", "forced_error", "fault")

    def __init__(self, request, endpoint, base_url):
        self.request = request
        self.endpoint = endpoint
        self.version = None
        self.api_key = None
        self.base_url = base_url
        self.file_id = None
        self.task_id = None
        self.task_created = False
        self.forced_error = None
        self.fault = None


class App:
    def __init__(self, config):
        self.config = config
        self.state = State(config)
        self.keyset = frozenset(config.keys)
        self.scenario = Scenario(config.scenario)
        self.default_base = None   # set once the port is known

    # -- helpers used by handlers -----------------------------------------------

    def ok(self, obj):
        """A 200 JSON body; with the extra_fields quirk it gains an unknown key."""
        if "extra_fields" in self.config.quirks:
            obj["debug_info"] = {"emulator": True, "note": "undocumented field"}
        return api.json_response(200, obj)

    def set_scenario(self, spec):
        self.scenario = Scenario(spec)

    def reset(self):
        with self.state.lock:
            self.state.reset()
            self.scenario = Scenario(self.config.scenario)

    # -- entry point ----------------------------------------------------------------

    def handle(self, request):
        with self.state.lock:
            return self._handle(request)

    def on_error(self, request, exc):
        print("emulator: error handling %s %s:\n%s" % (
            request.method, request.path,
            "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))),
            file=sys.stderr, flush=True)

    def _route(self, request):
        path = request.path
        if path.startswith("/s2s/"):
            for method, pattern, endpoint in _ROUTES:
                match = pattern.fullmatch(path)
                if match:
                    if request.method != method:
                        return "s2s_other", None
                    return endpoint, match.groups()
            return "s2s_other", None
        for prefix, endpoint in (("/_storage/", "upload"), ("/_results/", "result"),
                                 ("/_public/", "public"), ("/_control/", "control")):
            if path.startswith(prefix):
                return endpoint, ()
        return "other", None

    def _handle(self, request):
        state = self.state
        host = request.headers.get("host")
        if host:
            if host not in state.own_netlocs and len(state.own_netlocs) < 64:
                state.own_netlocs.add(host)
            base_url = "http://" + host
        else:
            base_url = self.default_base
        endpoint, args = self._route(request)
        ctx = Context(request, endpoint, base_url)
        state.count("requests", endpoint)
        state.counters["requests_total"] += 1

        rule = self.scenario.pick(endpoint) if endpoint in FAULT_ENDPOINTS else None
        if rule is None:
            response = self._dispatch(ctx, endpoint, args)
        else:
            ctx.fault = rule.fault
            state.count("faults_applied", rule.fault)
            if rule.fault == "delay":
                response = self._dispatch(ctx, endpoint, args)
                response.delay = rule.delay_ms / 1000.0
            elif rule.fault == "engine_error":
                ctx.forced_error = (rule.code, rule.message)
                response = self._dispatch(ctx, endpoint, args)
            elif rule.apply == "after":
                response = self._fault_response(rule, self._dispatch(ctx, endpoint, args))
            else:
                response = self._fault_response(rule, None)

        if endpoint.startswith(("file_", "task_", "s2s_", "credit", "feature_")) and not any(
                name.lower() == "x-request-id" for name, _ in response.headers):
            response.headers.append(("x-request-id", str(10 ** 18 + random.getrandbits(59))))
        if response.mode == "close_before":
            status = None
        else:
            status = response.status
            state.count("responses", str(status))
            if status == 429:
                state.counters["responses_429"] += 1
        if endpoint != "control":
            state.record({
                "time": state.clock.time(), "method": request.method, "path": request.path,
                "endpoint": endpoint, "version": ctx.version, "client_ip": request.client_ip,
                "headers": list(request.header_names),
                "authorization": "authorization" in request.headers,
                "body_size": len(request.body), "status": status, "fault": ctx.fault,
                "task_id": ctx.task_id, "task_created": ctx.task_created, "file_id": ctx.file_id,
            })
        return response

    # The handlers(app, ctx) of the endpoints outside /s2s/, then of the /s2s/
    # ones that take no version from the path (behind the key and rate guard).
    _UNGUARDED = {"upload": api.upload, "result": api.result, "public": api.public,
                  "control": control.handle}
    _GUARDED = {"credit": api.credit, "feature_cost": api.feature_cost,
                "task_delete": api.task_delete}

    def _dispatch(self, ctx, endpoint, args):
        if endpoint in self._UNGUARDED:
            return self._UNGUARDED[endpoint](self, ctx)
        if endpoint == "other":
            return api.json_response(404, catalog.ERR_NOT_FOUND)
        if endpoint == "s2s_other":
            return api.json_response(405 if self._path_known(ctx.request.path) else 404,
                                     catalog.ERR_METHOD if self._path_known(ctx.request.path)
                                     else catalog.ERR_NOT_FOUND)
        guard = self._guard(ctx)
        if guard is not None:
            return guard
        if endpoint == "file_create":
            ctx.version = args[0] if args else "v2.0"
            return api.file_create(self, ctx)
        if endpoint in self._GUARDED:
            return self._GUARDED[endpoint](self, ctx)
        ctx.version = args[0]
        if endpoint == "task_create":
            return api.task_create(self, ctx, args[0])
        return api.task_status(self, ctx, args[0], args[1])

    @staticmethod
    def _path_known(path):
        return any(p.fullmatch(path) for _, p, _ in _ROUTES)

    def _guard(self, ctx):
        """Rate limits (per IP and per key, both must hold), then auth."""
        request = ctx.request
        auth = request.headers.get("authorization")
        key = auth[7:] if auth is not None and auth.startswith("Bearer ") else None
        valid = key in self.keyset
        state = self.state
        if self.config.rate_limit:
            buckets = ["ip:" + request.client_ip]
            if valid:
                buckets.append("key:" + key)
            if not state.limiter.allow(buckets, state.clock.monotonic()):
                state.counters["rate_limited"] += 1
                return api.json_response(429, catalog.ERR_TOO_MANY)
        if not valid:
            state.counters["unauthorized"] += 1
            return api.json_response(401, catalog.AUTH_VARIANTS[self.config.auth_variant])
        ctx.api_key = key
        return None

    def _fault_response(self, rule, real):
        fault = rule.fault
        if fault in _HTML_FAULTS:
            status, title = _HTML_FAULTS[fault]
            return Response(status, _HTML.format(title).encode(), content_type="text/html")
        if fault == "http_429":
            return api.json_response(429, catalog.ERR_TOO_MANY)
        if fault == "task_timeout_500":
            return api.json_response(500, catalog.ERR_TASK_TIMEOUT)
        if fault == "invalid_task_id":
            return api.json_response(400, catalog.ERR_INVALID_TASK_ID)
        if fault == "malformed_json":
            return Response(200, b'{"status": 200, "data": {"task_status": running, "error": }',
                            content_type=api.JSON)
        if fault == "close_before_response":
            response = Response(200)
            response.mode = "close_before"
            return response
        if fault == "oversized_body":
            return _oversized(rule.size_bytes)
        if fault == "trickle":
            return _trickle(rule.size_bytes, rule.delay_ms / 1000.0)
        if fault == "close_mid_response":
            real.mode = "close_mid"
            return real
        if fault == "truncated_json":
            real.body = real.body[:len(real.body) // 2]
            return real
        if fault == "respond":
            return _respond(rule)
        if fault == "patch":
            return _patch(rule, real)
        raise AssertionError("unhandled fault " + fault)


def _trickle(size, interval):
    """200 announcing ``size`` bytes, then one byte every ``interval``
    seconds (a host that stalls a download without closing it)."""
    def chunks():
        for _ in range(size):
            yield b"x"
            yield interval       # a number: the server sleeps that long

    response = Response(200, content_type="binary/octet-stream")
    response.stream = (size, chunks())
    return response


def _respond(rule):
    """The scripted answer of a ``respond`` fault: a string body is sent as
    its UTF-8 bytes, any other JSON value serialised (application/json)."""
    body, ctype = rule.body, rule.content_type
    if body is None:
        data = b""
    elif isinstance(body, str):
        data = body.encode("utf-8", "surrogatepass")
    else:
        data = json.dumps(body, separators=(",", ":")).encode()
        ctype = ctype or api.JSON
    response = Response(rule.status, data, content_type=ctype)
    response.headers.extend(rule.headers.items())
    return response


def _patch(rule, real):
    """The real JSON answer with each dotted path of ``set`` given its value
    (list indexes as numbers) and ``headers`` added; a path that does not fit
    the answer gives a 500 naming it, so a test cannot miss it."""
    try:
        obj = json.loads(real.body.decode("utf-8"))
        for path, value in rule.set.items():
            _set_path(obj, path.split("."), value)
    except (UnicodeDecodeError, ValueError, KeyError, IndexError, TypeError) as exc:
        return Response(500, ("emulator: patch %r does not fit the answer: %s"
                              % (sorted(rule.set), exc)).encode(), content_type="text/plain")
    real.body = json.dumps(obj, separators=(",", ":")).encode()
    real.headers.extend(rule.headers.items())
    return real


def _set_path(obj, parts, value):
    for part in parts[:-1]:
        obj = obj[int(part)] if isinstance(obj, list) else obj[part]
    last = parts[-1]
    if isinstance(obj, list):
        obj[int(last)] = value
    elif isinstance(obj, dict):
        obj[last] = value
    else:
        raise TypeError("%s is inside a %s" % (last, type(obj).__name__))


def _oversized(size):
    head = b'{"status":200,"data":{"padding":"'
    tail = b'"}}'
    pad = max(0, size - len(head) - len(tail))
    chunk = b"x" * (256 * 1024)

    def chunks():
        yield head
        left = pad
        while left > 0:
            n = min(left, len(chunk))
            yield chunk if n == len(chunk) else chunk[:n]
            left -= n
        yield tail

    response = Response(200, content_type=api.JSON)
    response.stream = (len(head) + pad + len(tail), chunks())
    return response



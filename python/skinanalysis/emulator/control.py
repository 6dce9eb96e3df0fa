"""The control endpoint ``/_control/...``: scenario, log, counters, reset,
hosted images, per-task engine errors, unit balances and the clock. Never
rate limited and never authenticated (the emulator is a local test tool), so
it answers only loopback peers unless ``control_any_host`` is set."""

import ipaddress
import json
import math
import re

from .faults import ScenarioError
from .httpserver import Response

_TASK = re.compile(r"/_control/task/([A-Za-z0-9_\-=]+)(?:/(engine_error|finish|results))?")


def _json(status, obj):
    return Response(status, json.dumps(obj, indent=1).encode(), content_type="application/json")


def _error(status, message):
    return _json(status, {"status": status, "error": message})


def _body(ctx):
    try:
        return json.loads(ctx.request.body.decode("utf-8")) if ctx.request.body else {}
    except (UnicodeDecodeError, ValueError):
        return None


def _engine_error_spec(body):
    """(code, message) from {"code": ..., "message": ...} or None."""
    if not isinstance(body, dict) or not isinstance(body.get("code"), str):
        return None
    message = body.get("message")
    if message is not None and not isinstance(message, str):
        return None
    return body["code"], message


def peer_allowed(client_ip, any_host=False):
    """Whether a peer at ``client_ip`` (the socket's address text) may use
    /_control/: loopback (127.0.0.0/8, ::1, ::ffff:127.x.y.z) always, any
    other address only with ``any_host``; an unknown or unparsable peer
    never without it."""
    if any_host:
        return True
    if not isinstance(client_ip, str):
        return False
    try:
        addr = ipaddress.ip_address(client_ip.split("%", 1)[0])
    except ValueError:
        return False
    if addr.version == 6 and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


def advance_clock(state, seconds):
    """Move the clock forward and settle every running task at the new time
    (ends, expiries, timeouts; webhooks of tasks that end). Under state.lock."""
    state.clock.advance(seconds)
    state.sweep()


def _clock(app, ctx):
    state = app.state
    if ctx.request.method == "GET":
        return _json(200, state.clock.snapshot())
    body = _body(ctx)
    usage = 'body must be {"advance_ms": <number >= 0>} and/or {"mode": "test" | "real"}'
    if not isinstance(body, dict) or not body or set(body) - {"advance_ms", "mode"}:
        return _error(400, usage)
    mode = body.get("mode")
    advance = body.get("advance_ms", 0)
    if mode not in (None, "test", "real") or isinstance(advance, bool) \
            or not isinstance(advance, (int, float)) or not 0 <= advance < math.inf:
        return _error(400, usage)
    if mode is not None:
        state.clock.set_test(mode == "test")
    advance_clock(state, advance / 1000.0)
    return _json(200, state.clock.snapshot())


def handle(app, ctx):
    state = app.state
    req = ctx.request
    path = req.path
    method = req.method

    if not peer_allowed(req.client_ip, app.config.control_any_host):
        return _error(403, "the control endpoint answers only loopback peers "
                           "(start the emulator with --control-any-host to allow others)")
    if path == "/_control/clock" and method in ("GET", "POST"):
        return _clock(app, ctx)

    if path == "/_control/health":
        return _json(200, {"ok": True})
    if path == "/_control/config" and method == "GET":
        return _json(200, app.config.public())
    if path == "/_control/counters" and method == "GET":
        return _json(200, state.snapshot_counters())
    if path == "/_control/log" and method == "GET":
        since = req.query.get("since", "0")
        return _json(200, {"log": state.snapshot_log(int(since) if since.isdigit() else 0)})
    if path == "/_control/reset" and method == "POST":
        app.reset()
        return _json(200, {"ok": True})
    if path == "/_control/scenario":
        if method == "GET":
            return _json(200, app.scenario.to_json())
        if method == "DELETE":
            app.set_scenario(None)
            return _json(200, {"ok": True})
        if method == "POST":
            body = _body(ctx)
            try:
                app.set_scenario(body)
            except ScenarioError as exc:
                return _error(400, str(exc))
            return _json(200, {"ok": True, "faults": len(app.scenario.rules)})
    if path.startswith("/_control/public/") and method in ("POST", "PUT"):
        name = path[len("/_control/public/"):]
        if not name or any(part in ("", ".", "..") for part in name.split("/")):
            return _error(400, "public name must be a relative path without empty, "
                               "'.' or '..' segments")
        ctype = req.headers.get("content-type", "application/octet-stream")
        state.public_files[name] = (ctype, req.body)
        return _json(200, {"ok": True, "url": "%s/_public/%s" % (ctx.base_url, name),
                           "size": len(req.body)})
    if path == "/_control/engine_error/next" and method == "POST":
        spec = _engine_error_spec(_body(ctx))
        if spec is None:
            return _error(400, 'body must be {"code": "...", "message": "..."}')
        state.forced_next.append(spec)
        return _json(200, {"ok": True, "queued": len(state.forced_next)})
    if path == "/_control/units":
        if method == "GET":
            return _json(200, {"balances": dict(state.balances)})
        if method == "POST":
            body = _body(ctx)
            if not (isinstance(body, dict) and body.get("key") in app.keyset
                    and isinstance(body.get("units"), int) and body["units"] >= 0):
                return _error(400, 'body must be {"key": <configured key>, "units": <int >= 0>}')
            state.set_units(body["key"], body["units"])
            return _json(200, {"ok": True})
    if path == "/_control/credit":
        if method == "GET":
            return _json(200, {"grants": {k: state.public_grants(k) for k in state.grants}})
        if method == "POST":
            body = _body(ctx)
            grants = body.get("grants") if isinstance(body, dict) else None
            if not (isinstance(body, dict) and body.get("key") in app.keyset
                    and isinstance(grants, list)
                    and all(isinstance(g, dict) and isinstance(g.get("type"), str)
                            and isinstance(g.get("amount"), int) and g["amount"] >= 0
                            and isinstance(g.get("days", 30), (int, float))
                            for g in grants)):
                return _error(400, 'body must be {"key": <configured key>, "grants": '
                                   '[{"type": "ApiSubscription", "amount": <int >= 0>, '
                                   '"days": <to expiry, optional>}, ...]}')
            state.grants[body["key"]] = state.make_grants(
                [(g["type"], g["amount"], g.get("days")) for g in grants])
            return _json(200, {"ok": True})
    if path == "/_control/webhooks":
        if method == "GET":
            return _json(200, state.webhooks.snapshot())
        if method in ("POST", "DELETE"):
            body = {"urls": []} if method == "DELETE" else _body(ctx)
            if not isinstance(body, dict) or not isinstance(body.get("urls"), (list, str)):
                return _error(400, 'body must be {"urls": ["http://127.0.0.1:PORT/path", ...]}')
            try:
                state.webhooks.set_urls(body["urls"])
            except ValueError as exc:
                return _error(400, str(exc))
            return _json(200, {"ok": True, "urls": list(state.webhooks.urls)})
    if path == "/_control/tasks" and method == "GET":
        state.sweep()
        return _json(200, {"tasks": [t.public() for t in state.tasks.values()]})
    match = _TASK.fullmatch(path)
    if match:
        task = state.tasks.get(match.group(1))
        if task is None:
            return _error(404, "no such task")
        action = match.group(2)
        if action is None and method == "GET":
            state.advance(task, state.clock.monotonic())
            return _json(200, task.public())
        if action == "engine_error" and method == "POST":
            spec = _engine_error_spec(_body(ctx))
            if spec is None:
                return _error(400, 'body must be {"code": "...", "message": "..."}')
            if task.status != "running":
                return _error(409, "task already finished: " + task.status)
            state.force_error(task, *spec)
            return _json(200, {"ok": True})
        if action == "results" and method == "POST":
            body = _body(ctx)
            if not isinstance(body, dict) or "results" not in body:
                return _error(400, 'body must be {"results": <data.results of a success '
                                   'answer, or null to drop the override>}')
            task.results_override = body["results"]
            return _json(200, {"ok": True})
        if action == "finish" and method == "POST":
            if task.status != "running":
                return _error(409, "task already finished: " + task.status)
            now = state.clock.monotonic()
            task.done_at = min(task.done_at, now)
            state.advance(task, now)
            return _json(200, task.public())
    return _error(404, "unknown control endpoint %s %s (see docs/emulator.md)" % (method, path))



"""Handlers of the emulated endpoints: the /s2s/ API, the pre-signed storage
PUT, result downloads and publicly hosted test images.

Every handler is ``handler(app, ctx, ...) -> Response`` and runs under the
state lock. ``ctx`` (see app.Context) carries the request, the caller's API
key, the base URL the client used, and what the log should say.
"""

import hashlib
import json
import re
import secrets
import time

from . import catalog
from .httpserver import Response
from .results import ZIP_NAME
from .state import FileRecord, Task, new_file_id, new_task_id

JSON = "application/json"


def json_response(status, obj, headers=()):
    return Response(status, json.dumps(obj, separators=(",", ":")).encode(), headers,
                    content_type=JSON)


def xml_error(status, code, message, extra=None):
    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>', code,
             "</Code><Message>", message, "</Message>"]
    for name, value in (extra or {}).items():
        parts += ["<", name, ">", _xml_escape(value), "</", name, ">"]
    parts += ["<RequestId>", secrets.token_hex(8).upper(), "</RequestId></Error>"]
    return Response(status, "".join(parts).encode(), content_type="application/xml")


def _xml_escape(text):
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _parse_json(body):
    try:
        return json.loads(body.decode("utf-8")) if body else None
    except (UnicodeDecodeError, ValueError):
        return None


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


# --- POST /s2s/v2.x/file/skin-analysis and POST /s2s/v2.0/file --------------

def file_create(app, ctx):
    state = app.state
    body = _parse_json(ctx.request.body)
    files = body.get("files") if isinstance(body, dict) else None
    if not isinstance(files, list) or not files:
        return json_response(400, catalog.ERR_INVALID_PARAMETERS)
    for item in files:
        if not (isinstance(item, dict)
                and item.get("content_type") in catalog.ACCEPTED_CONTENT_TYPES
                and isinstance(item.get("file_name"), str) and item["file_name"]
                and _is_int(item.get("file_size"))
                and 0 < item["file_size"] < catalog.MAX_FILE_SIZE):
            return json_response(400, catalog.ERR_INVALID_PARAMETERS)
    numeric = "numeric_headers" in app.config.quirks
    out = []
    for item in files:
        file_id = new_file_id()
        key = secrets.token_urlsafe(24)
        record = FileRecord(file_id, key, item["content_type"], item["file_name"],
                            item["file_size"], ctx.api_key, state.clock.time())
        state.files[file_id] = record
        state.storage[key] = file_id
        state.count("files_created")
        path = "/_storage/" + key
        expires = int((state.clock.time() + app.config.upload_ttl) * 1000)
        sig = state.sign("PUT", path, expires, record.size, record.content_type)
        out.append({
            "content_type": record.content_type,
            "file_name": record.file_name,
            "file_id": file_id,
            "requests": [{
                "method": "PUT",
                "url": "%s%s?expires=%d&sig=%s" % (ctx.base_url, path, expires, sig),
                "headers": {"Content-Length": record.size if numeric else str(record.size),
                            "Content-Type": record.content_type},
            }],
        })
        ctx.file_id = file_id
    return app.ok({"status": 200, "data": {"files": out}})


# --- PUT /_storage/<key> (the "S3" upload host) ------------------------------

_SIG_MISMATCH = ("The request signature we calculated does not match the signature you "
                 "provided. Check your key and signing method.")


def _storage_refusal(app, req, method, auth_counter, rejected_counter=None):
    """What the storage hosts check first, S3's XML error or None: an
    Authorization header is counted (auth_counter); a method other than method
    is refused (a GET of a key that only takes uploads: 403 AccessDenied);
    then an Authorization header beside the signed query (counted in
    rejected_counter when given)."""
    has_auth = "authorization" in req.headers
    if has_auth:
        app.state.count(auth_counter)
    if req.method != method:
        if req.method == "GET":
            return xml_error(403, "AccessDenied", "Access Denied")
        return xml_error(405, "MethodNotAllowed",
                         "The specified method is not allowed against this resource.")
    if not has_auth:
        return None
    if rejected_counter is not None:
        app.state.count(rejected_counter)
    return xml_error(400, "InvalidArgument",
                     "Only one auth mechanism allowed; only the X-Amz-Algorithm query "
                     "parameter, Signature query string parameter or the Authorization "
                     "header should be specified", {"ArgumentName": "Authorization"})


def upload(app, ctx):
    state = app.state
    req = ctx.request
    refused = _storage_refusal(app, req, "PUT", "auth_on_storage", "uploads_rejected")
    if refused is not None:
        return refused
    key = req.path[len("/_storage/"):]
    file_id = state.storage.get(key)
    expires = req.query.get("expires", "")
    sig = req.query.get("sig")
    if file_id is None or not expires.isdigit() or not sig:
        state.count("uploads_rejected")
        return xml_error(403, "AccessDenied", "Access Denied")
    record = state.files[file_id]
    ctx.file_id = file_id
    if "content-length" not in req.headers:
        state.count("uploads_rejected")
        return xml_error(411, "MissingContentLength",
                         "You must provide the Content-Length HTTP header.")
    length = req.headers["content-length"]
    ctype = req.headers.get("content-type", "")
    if not state.check_sig(sig, "PUT", req.path, int(expires), length, ctype):
        state.count("uploads_rejected")
        hint = "signed URL, Content-Length and Content-Type must match the upload slot"
        if state.check_sig(sig, "PUT", req.path, int(expires), record.size, record.content_type):
            hint = ("Content-Length %s / Content-Type %r differ from the signed %d / %r"
                    % (length, ctype, record.size, record.content_type))
        return xml_error(403, "SignatureDoesNotMatch", _SIG_MISMATCH, {"EmulatorHint": hint})
    if int(expires) < state.clock.time() * 1000:
        state.count("uploads_rejected")
        return xml_error(403, "AccessDenied", "Request has expired",
                         {"Expires": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                   time.gmtime(int(expires) / 1000))})
    record.data = req.body
    record.uploaded_at = state.clock.time()
    state.stored_add(record)
    state.count("uploads")
    etag = '"%s"' % hashlib.md5(req.body).hexdigest()
    return Response(200, b"", [("ETag", etag)])


# --- POST /s2s/v2.x/task/skin-analysis --------------------------------------

def _check_miniserver_args(args):
    """None if valid, else an error body."""
    if not isinstance(args, dict):
        return catalog.ERR_INVALID_PARAMETERS
    for name, value in args.items():
        kind = catalog.MINISERVER_KEYS.get(name)
        if kind is None:
            return catalog.err_bad_request("unexpected parameter miniserver_args.%s" % name)
        if kind == "bool" and not isinstance(value, bool):
            return catalog.ERR_INVALID_PARAMETERS
        if kind == "color" and not (isinstance(value, str)
                                    and re.fullmatch(r"[0-9A-Fa-f]{6}", value)):
            return catalog.ERR_INVALID_PARAMETERS
        if kind == "opacity" and not (isinstance(value, (int, float))
                                      and not isinstance(value, bool) and 0 <= value <= 1):
            return catalog.ERR_INVALID_PARAMETERS
    return None


def validate_task_request(app, ctx, version, body):
    """Returns (error_status, error_body) or (None, parsed request dict)."""
    if not isinstance(body, dict):
        return 400, catalog.ERR_INVALID_PARAMETERS
    allowed = catalog.TASK_FIELDS[version]
    for name in body:
        if name not in allowed:
            return 400, catalog.err_bad_request("unexpected parameter %s" % name)
    actions = body.get("dst_actions")
    if not (isinstance(actions, list) and actions and all(isinstance(a, str) for a in actions)):
        return 400, catalog.ERR_INVALID_PARAMETERS
    for action in actions:
        if action not in catalog.ALL_ACTIONS:
            return 400, catalog.err_unknown_action(action)
    if any(a in catalog.HD_SET for a in actions) and any(a in catalog.SD_SET for a in actions):
        return 400, catalog.ERR_MIX
    fmt = body.get("format", "zip")
    if fmt not in ("json", "zip"):
        return 400, catalog.ERR_INVALID_PARAMETERS
    args = body.get("miniserver_args")
    if args is not None:
        err = _check_miniserver_args(args)
        if err:
            return 400, err
    if "pf_camera_kit" in body and not isinstance(body["pf_camera_kit"], bool):
        return 400, catalog.ERR_INVALID_PARAMETERS
    file_id = body.get("src_file_id")
    url = body.get("src_file_url")
    for value in (file_id, url):
        if value is not None and not (isinstance(value, str) and value):
            return 400, catalog.ERR_INVALID_PARAMETERS
    if file_id is None and url is None:
        return 400, catalog.ERR_INVALID_PARAMETERS
    if file_id is not None:
        record = app.state.files.get(file_id)
        if record is None or record.owner != ctx.api_key:
            return 404, catalog.ERR_FILE_NOT_FOUND
        source = ("file", file_id)
    else:
        source = ("url", url)
    unique = list(dict.fromkeys(actions))
    tier = catalog.tier_of(unique)
    return None, {"actions": unique, "tier": tier, "format": fmt, "source": source,
                  "overlay": bool((args or {}).get("enable_mask_overlay", False)),
                  "cost": catalog.unit_cost(tier, len(unique))}


def task_create(app, ctx, version):
    state = app.state
    status, parsed = validate_task_request(app, ctx, version, _parse_json(ctx.request.body))
    if status is not None:
        return json_response(status, parsed)
    balance = state.balance(ctx.api_key)
    if balance < parsed["cost"]:
        return json_response(400, catalog.err_credit(parsed["cost"], balance))
    task = Task(new_task_id(), ctx.api_key, version, parsed["actions"], parsed["tier"],
                parsed["format"], parsed["overlay"], parsed["source"], parsed["cost"],
                state.task_seconds(), state.clock.monotonic())
    state.add_task(task)
    if ctx.forced_error:
        state.force_error(task, *ctx.forced_error)
    ctx.task_id = task.task_id
    ctx.task_created = True
    return app.ok({"status": 200, "data": {"task_id": task.task_id}})


# --- GET /s2s/v2.x/task/skin-analysis/{task_id} -------------------------------

def task_status(app, ctx, version, task_id):
    state = app.state
    cfg = app.config
    task = state.tasks.get(task_id)
    ctx.task_id = task_id
    if task is None or task.owner != ctx.api_key:
        return json_response(400, catalog.ERR_INVALID_TASK_ID)
    now = state.clock.monotonic()
    if ctx.forced_error and task.status == "running":
        state.force_error(task, *ctx.forced_error)
    state.advance(task, now)
    if not task.terminal_seen:
        # Gap since creation or the previous poll, while the client still
        # believed the task to be running (the first terminal answer included).
        gap = now - task.last_seen
        if gap > task.max_gap:
            task.max_gap = gap
            state.counters["max_unpolled_gap"][task_id] = round(gap, 6)
        task.last_seen = now
        task.terminal_seen = task.status != "running"
    task.polls += 1
    if len(task.poll_times) < 1000:
        task.poll_times.append(now)
    if task.seen_done_at is None and task.status != "running":
        task.seen_done_at = now
    if task.status == "expired" or (task.finished_at is not None
                                    and now - task.finished_at > cfg.retention):
        return json_response(400, catalog.ERR_INVALID_TASK_ID)
    if task.status == "timed_out":
        return json_response(500, catalog.ERR_TASK_TIMEOUT)
    if task.status == "running":
        data = {"task_status": "running", "error": None, "results": None}
        if "polling_interval" in cfg.quirks:
            data["polling_interval"] = cfg.polling_interval_ms
    elif task.status == "error":
        data = {"task_status": "error", "error": task.error,
                "error_message": task.error_message, "results": None}
    else:
        data = {"task_status": "success", "error": None, "results": _results(app, ctx, task)}
        if "extra_fields" in cfg.quirks:
            data["dst_id"] = None
    return app.ok({"status": 200, "data": data})


def _results(app, ctx, task):
    state = app.state

    def url_for(name):
        return state.result_url(ctx.base_url, task, name)

    if task.results_override is not None:
        return _fill_urls(task.results_override, ctx.base_url, url_for)

    if task.format == "zip":
        url = url_for(ZIP_NAME)
        return url if "zip_bare_string" in app.config.quirks else {"url": url}
    return {"output": task.analysis.json_output(url_for, "extra_fields" in app.config.quirks,
                                                task.overlay)}


def _fill_urls(value, base_url, url_for):
    """A copy of an override of data.results with "{base}" in its strings
    replaced by the server's base URL and "{result:NAME}" by the signed
    result URL of NAME (a mask or the resized image of the task)."""
    if isinstance(value, dict):
        return {k: _fill_urls(v, base_url, url_for) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill_urls(v, base_url, url_for) for v in value]
    if isinstance(value, str):
        if value.startswith("{result:") and value.endswith("}"):
            return url_for(value[len("{result:"):-1])
        return value.replace("{base}", base_url)
    return value


# --- Account endpoints (API.md section 17.1) -----------------------------------

def credit(app, ctx):
    """GET /s2s/v1.0/client/credit: one entry per grant of the caller's key."""
    return app.ok({"status": 200, "results": app.state.public_grants(ctx.api_key)})


def _page_token(app, offset):
    return "%d.%s" % (offset, app.state.sign("feature-cost", offset)[:16])


def feature_cost(app, ctx):
    """GET /s2s/v2.0/credit/feature-cost?page_size=1..20[&starting_token=T]."""
    query = ctx.request.query
    size_text = query.get("page_size", str(catalog.FEATURE_COST_PAGE_MAX))
    if not (size_text.isdigit() and 1 <= int(size_text) <= catalog.FEATURE_COST_PAGE_MAX):
        return json_response(400, catalog.ERR_INVALID_PARAMETERS)
    size = int(size_text)
    offset = 0
    token = query.get("starting_token")
    if token:
        head, _, _ = token.partition(".")
        if not head.isdigit() or token != _page_token(app, int(head)) \
                or int(head) >= len(catalog.SKUS):
            return json_response(400, catalog.ERR_INVALID_PARAMETERS)
        offset = int(head)
    skus = [dict(s) for s in catalog.SKUS[offset:offset + size]]
    nxt = offset + size
    return app.ok({"status": 200, "result": {
        "skus": skus, "next_token": _page_token(app, nxt) if nxt < len(catalog.SKUS) else None}})


def task_delete(app, ctx):
    """POST /s2s/v2.0/task/delete {"task_id": ...}: a finished task goes with
    its input and outputs; its status and result URLs then fail."""
    state = app.state
    body = _parse_json(ctx.request.body)
    task_id = body.get("task_id") if isinstance(body, dict) else None
    if not (isinstance(task_id, str) and task_id) or set(body) != {"task_id"}:
        return json_response(400, catalog.ERR_INVALID_PARAMETERS)
    ctx.task_id = task_id
    task = state.tasks.get(task_id)
    if task is None or task.owner != ctx.api_key:
        return json_response(400, catalog.ERR_DELETE_INVALID_TASK_ID)
    state.advance(task, state.clock.monotonic())
    if task.status == "running":
        return json_response(400, catalog.ERR_OPERATION_INVALID)
    if task.status == "expired":
        return json_response(400, catalog.ERR_DELETE_INVALID_TASK_ID)
    state.delete_task(task_id)
    return app.ok({"status": 200, "data": {}})


# --- GET /_results/<token>/<name> ------------------------------------------------

def result(app, ctx):
    state = app.state
    req = ctx.request
    refused = _storage_refusal(app, req, "GET", "auth_on_results")
    if refused is not None:
        return refused
    token, _, name = req.path[len("/_results/"):].partition("/")
    task_id = state.tokens.get(token)
    expires = req.query.get("expires", "")
    if task_id is None and token in state.deleted_tokens:
        # API.md 17.1: mask URLs answer 404 once their task is deleted
        return xml_error(404, "NoSuchKey", "The specified key does not exist.", {"Key": name})
    if task_id is None or not expires.isdigit():
        return xml_error(403, "AccessDenied", "Access Denied")
    ctx.task_id = task_id
    if not state.check_sig(req.query.get("sig"), "GET", req.path, int(expires)):
        return xml_error(403, "SignatureDoesNotMatch", _SIG_MISMATCH)
    if int(expires) < state.clock.time() * 1000:
        return xml_error(403, "AccessDenied", "Request has expired")
    blob = state.result_blob(state.tasks[task_id], name)
    if blob is None:
        return xml_error(404, "NoSuchKey", "The specified key does not exist.", {"Key": name})
    state.count("result_downloads")
    return Response(200, blob, [("ETag", '"%s"' % hashlib.md5(blob).hexdigest())],
                    content_type="binary/octet-stream")


# --- GET /_public/<name> ----------------------------------------------------------

def public(app, ctx):
    item = app.state.public_files.get(ctx.request.path[len("/_public/"):])
    if ctx.request.method != "GET":
        return xml_error(405, "MethodNotAllowed",
                         "The specified method is not allowed against this resource.")
    if item is None:
        return xml_error(404, "NoSuchKey", "The specified key does not exist.")
    return Response(200, item[1], content_type=item[0])


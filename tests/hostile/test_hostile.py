"""The hostile-server suite: every lie of tests/hostile/server.py against the
C library, the Python package and the Lua module (tests/hostile/README.md).

Each (case, language) pair is one test: a fresh server for the case, one
analysis by that language's driver in a child process (waited for with
os.wait4 to read its peak RSS), then the checks:

- the outcome the case expects (written for the behaviour issue 12 asks
  for: storms and unknown statuses end in success, echoed keys in the right
  typed error, NUL ids in protocol errors, ...);
- the key (and "Bearer <key>", and the first half of the key) appears in
  none of the driver's stdout, stderr (which carries every log line of the
  library at debug level) and names of the files it wrote;
- the number of tasks the server created (at most one, always);
- the upload and download paths never saw the key (nor any Authorization);
- no request went to a path the server never offered (a redirect target, a
  truncated id);
- the driver's peak RSS stays under the case's bound (printed for every run
  in the summary at the end).

All runs start at once (a thread pool; the two heavy cases one at a time),
so the suite takes about as long as its longest case (the 45 s storms).
The C driver and the Lua module come from the build directory
$SA_BUILD_DIR (default build-test, then build); scripts/test builds
build-test first.
"""

from __future__ import annotations

import concurrent.futures
import importlib.util
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

_spec = importlib.util.spec_from_file_location("hostile_server", os.path.join(HERE, "server.py"))
server = importlib.util.module_from_spec(_spec)
sys.modules["hostile_server"] = server
_spec.loader.exec_module(server)

MiB = 1 << 20
# SA_HOSTILE_LANGS=c,lua runs only those drivers.
LANGS = tuple(x for x in os.environ.get("SA_HOSTILE_LANGS", "c,python,lua").split(",") if x)

# Driver options shared by every case (seconds).  Small intervals keep the
# suite fast; the storms are longer than the old retry budget at any setting.
DEFAULT_OPTS = {
    "timeout": 5, "connect_timeout": 5, "upload_timeout": 20,
    "poll_interval": 0.3, "max_poll_interval": 1, "backoff_initial": 0.1,
    "backoff_max": 1, "deadline": 100, "wait": 130,
}
DRIVER_WALL_S = 170          # a driver still running then is killed
RSS_KILL_MB = 3072           # a driver over this is killed (protects the host)
WORKERS = int(os.environ.get("SA_HOSTILE_WORKERS", "10"))


def build_dir() -> str:
    env = os.environ.get("SA_BUILD_DIR")
    if env:
        return env if os.path.isabs(env) else os.path.join(ROOT, env)
    for d in ("build-test", "build"):
        if os.path.isdir(os.path.join(ROOT, d)):
            return os.path.join(ROOT, d)
    return os.path.join(ROOT, "build-test")


# ---------------------------------------------------------------------------
# What each case expects
# ---------------------------------------------------------------------------

@dataclass
class Run:
    case: str
    lang: str
    key: str
    tmp: str
    masks_dir: Optional[str] = None
    out: Optional[dict] = None
    stdout: bytes = b""
    stderr: bytes = b""
    exit_status: Optional[int] = None
    maxrss_kb: int = 0
    wall: float = 0.0
    killed: Optional[str] = None
    record: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)     # name -> (size, marker)
    outside: list = field(default_factory=list)   # files written outside the folder
    error: Optional[str] = None

    @property
    def outcome(self) -> Optional[str]:
        return (self.out or {}).get("outcome")

    @property
    def counts(self) -> dict:
        return self.record.get("counts", {})


def engine_code(run: Run) -> Optional[str]:
    o = run.out or {}
    if run.lang == "c":
        return o.get("engine_error")
    if run.lang == "lua":
        return (o.get("info") or {}).get("engine_error")
    return (o.get("attrs") or {}).get("code")


def max_poll_gap(run: Run) -> float:
    t = run.record.get("poll_times", [])
    return max((b - a for a, b in zip(t, t[1:])), default=0.0)


def ck_scores_kept(run: Run) -> list:
    names = [s.get("concern") for s in (run.out or {}).get("scores") or []]
    return [] if {"wrinkle", "pore"} <= set(names) else \
        ["the result lost its scores: %r" % names]


def ck_no_poll(run: Run) -> list:
    return ["%d status poll(s) of a task id it never had" % run.counts.get("poll")] \
        if run.counts.get("poll") else []


def ck_engine_code(run: Run) -> list:
    code = engine_code(run)
    return [] if code == "error_no_face" else ["engine code %r, not 'error_no_face'" % code]


def ck_no_upload_no_task(run: Run) -> list:
    c = run.counts
    bad = []
    if c.get("upload"):
        bad.append("%d upload(s) after an unusable file-create answer" % c["upload"])
    if c.get("task_create_requests"):
        bad.append("%d task create request(s) on a refused file id" % c["task_create_requests"])
    return bad


def ck_polls_through(min_elapsed: float) -> Callable[[Run], list]:
    def check(run: Run) -> list:
        bad = []
        gap = max_poll_gap(run)
        if gap > 10.0:
            bad.append("a gap of %.1f s between two polls (the API allows 10)" % gap)
        if (run.out or {}).get("ok") and run.wall < min_elapsed:
            bad.append("success after %.1f s, before the server stopped lying (%.0f s)"
                       % (run.wall, min_elapsed))
        return bad
    return check


def ck_counts(**want: int) -> Callable[[Run], list]:
    def check(run: Run) -> list:
        return ["server counted %s=%s, expected %s" % (k, run.counts.get(k), v)
                for k, v in want.items() if run.counts.get(k) != v]
    return check


def ck_at_once(seconds: float) -> Callable[[Run], list]:
    def check(run: Run) -> list:
        return [] if run.wall <= seconds else \
            ["took %.1f s; expected to be refused at once (<= %.0f s)" % (run.wall, seconds)]
    return check


def ck_huge_cut(run: Run) -> list:
    sent = run.record.get("sent", {}).get("huge_poll", 0)
    return [] if sent <= 2 * 64 * MiB else \
        ["the client read %d MiB of the two 1 GiB answers before hanging up" % (sent // MiB)]


def ck_mask_files(markers: set, size: Optional[int] = None) -> Callable[[Run], list]:
    def check(run: Run) -> list:
        bad = []
        if (run.out or {}).get("masks_outcome") != "ok":
            bad.append("saving the masks: %r (%s)" % (
                (run.out or {}).get("masks_outcome"),
                (run.out or {}).get("masks_errmsg") or (run.out or {}).get("masks_message")
                or ((run.out or {}).get("masks_error") or {}).get("str")))
        got = {m for _, m in run.files.values()}
        if len(run.files) != len(markers) or got != markers:
            bad.append("folder holds %d file(s) %s with contents %s; expected %d: %s" % (
                len(run.files), sorted(run.files), sorted(map(str, got)), len(markers),
                sorted(markers)))
        if size is not None:
            wrong = {n: s for n, (s, _) in run.files.items() if s != size}
            if wrong:
                bad.append("files of the wrong size (want %d): %s" % (size, wrong))
        if run.outside:
            bad.append("files written outside the folder: %s" % run.outside)
        return bad
    return check


def ck_upload_headers(run: Run) -> list:
    """Either the answer is refused (protocol error, no upload, no task) or
    the upload goes out without the server's Host, Cookie and
    Transfer-Encoding, with the real length."""
    bad = []
    o = run.out or {}
    port = run.record.get("url", "").rsplit(":", 1)[-1]
    if o.get("outcome") == "ok":
        if run.counts.get("tasks_created") != 1:
            bad.append("success with %s tasks" % run.counts.get("tasks_created"))
    elif o.get("outcome") == "protocol":
        bad += ck_no_upload_no_task(run)
    for hdrs in run.record.get("upload_headers", []):
        h = {k.lower(): v for k, v in hdrs}
        if h.get("host") != "127.0.0.1:" + port:
            bad.append("upload sent Host: %r" % h.get("host"))
        if "cookie" in h:
            bad.append("upload sent Cookie: %r" % h["cookie"])
        if "transfer-encoding" in h:
            bad.append("upload sent Transfer-Encoding: %r" % h["transfer-encoding"])
        if h.get("content-length") != h.get("(body length)"):
            bad.append("upload Content-Length %r for %r bytes" % (
                h.get("content-length"), h.get("(body length)")))
    return bad


def ck_v20(run: Run) -> list:
    paths = [r["path"] for r in run.record.get("requests", []) if r["path"].startswith("/s2s/")]
    wrong = [p for p in paths if not p.startswith("/s2s/v2.0/")]
    return ["v2.1 paths used by a v2.0 client: %s" % wrong] if wrong else []


@dataclass
class Spec:
    expect: tuple                     # accepted outcomes ("ok" or status names)
    tasks: Optional[int]              # tasks the server must have created (None: see checks)
    doc: str = ""
    opts: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    masks: bool = False
    rss_mb: int = 100
    heavy: bool = False
    checks: tuple = ()
    long: bool = False                # runs for about a minute when fixed


SPECS: dict[str, Spec] = {
    "baseline": Spec(("ok",), 1, "honest server: success, one task"),
    "baseline_v20": Spec(("ok",), 1, "honest server, v2.0 endpoints", opts={"version": "2.0"},
                         checks=(ck_v20,)),
    "baseline_masks": Spec(("ok",), 1, "honest server, two masks saved into a folder", masks=True,
                           checks=(ck_mask_files({
                               "wrinkle_output.png", "pore_output.png"}),)),
    "echo_key_401": Spec(("auth",), 0, "401 body echoes 'Bearer <key>': AuthError, no task"),
    "echo_key_cut_401": Spec(("auth",), 0, "401 body echoes the key's first 24 bytes"),
    "echo_key_500_poll": Spec(("deadline",), 1,
                              "every poll 500 echoing the key: polled until the deadline",
                              opts={"deadline": 8}),
    "echo_key_engine": Spec(("engine",), 1, "engine error_message echoes the key",
                            checks=(ck_engine_code,)),
    "echo_key_s3_upload": Spec(("upload",), 0, "S3 403 XML on the upload echoes the key"),
    "echo_key_request_id": Spec(("engine",), 1, "x-request-id 'Bearer <key>' on every answer",
                                checks=(ck_engine_code,)),
    "echo_key_result": Spec(("ok",), 1, "the key in a skin type and a mask URL of a success",
                            checks=(ck_scores_kept,)),
    # A task create answer that cannot be read whole: "a task may exist"
    # (ambiguous: it holds for a billed create) is as right as protocol;
    # what matters is no poll (of the truncated id or any other), one task.
    "nul_task_id": Spec(("protocol", "ambiguous"), 1, 'task_id "TASK\\u0000/../../other": no poll',
                        checks=(ck_no_poll,)),
    "raw_nul_task_id": Spec(("protocol", "ambiguous"), 1,
                            "a raw NUL byte in the task_id: no poll", checks=(ck_no_poll,)),
    "raw_nul_file_id": Spec(("protocol",), 0, "a raw NUL byte in the file_id: no upload, no task",
                            checks=(ck_no_upload_no_task,)),
    "nul_file_id": Spec(("protocol",), 0, 'file_id "FILE\\u0000EVIL": no upload, no task',
                        checks=(ck_no_upload_no_task,)),
    "nul_concern": Spec(("protocol",), 1, 'concern "wrinkle\\u0000pore" in a success'),
    "storm_503": Spec(("ok",), 1, "45 s of 503 on every poll, then success",
                      params={"storm": 45}, checks=(ck_polls_through(45),), long=True),
    "storm_429": Spec(("ok",), 1, "45 s of 429 on every poll, then success",
                      params={"storm": 45}, checks=(ck_polls_through(45),), long=True),
    "unknown_status": Spec(("ok",), 1, '"queued" x 10, then success',
                           checks=(lambda r: [] if r.counts.get("poll", 0) >= 11 else
                                   ["only %s polls" % r.counts.get("poll")],)),
    "polling_interval_lie": Spec(("ok",), 1, "polling_interval of a day x 3, then success",
                                 checks=(ck_polls_through(0), ck_at_once(30))),
    "trickle_poll": Spec(("ok",), 1, "40 s of poll answers at 1 byte/s, then success",
                         opts={"timeout": 3}, params={"trickle": 40},
                         checks=(ck_polls_through(40),), long=True),
    "huge_poll": Spec(("ok",), 1, "two 1 GiB poll answers (length, chunked), then success",
                      heavy=True, checks=(ck_huge_cut,)),
    "truncated_file_create": Spec(("ok",), 1, "truncated JSON on file create x 2, then good",
                                  checks=(ck_counts(file_create=3),)),
    "redirect_file_create": Spec(("protocol",), 0, "302 on file create: not followed"),
    "redirect_upload": Spec(("upload", "protocol"), 0, "307 on the upload: not followed"),
    "ftp_upload_url": Spec(("protocol",), 0, "ftp:// upload URL: refused at once",
                           checks=(ck_counts(file_create=1, upload=0), ck_at_once(5))),
    "upload_header_injection": Spec(("ok", "protocol"), None,
                                    "upload headers Host, Cookie, Transfer-Encoding",
                                    checks=(ck_upload_headers,)),
    "task_create_500": Spec(("ambiguous",), 1, "task made, then 500: not retried",
                            checks=(ck_counts(task_create_requests=1),)),
    "task_create_reset": Spec(("ambiguous",), 1, "task made, connection dropped: not retried",
                              checks=(ck_counts(task_create_requests=1),)),
    "task_create_429": Spec(("ok",), 1, "429 (no task) x 2 on task create, then one",
                            checks=(ck_counts(task_create_requests=3),)),
    "masks_10x60": Spec(("ok",), 1, "10 masks of 60 MiB into a folder, < 100 MB RSS",
                        masks=True, heavy=True,
                        checks=(ck_mask_files({"/big/%s_output.png" % n for n in (
                            "wrinkle", "pore", "texture", "acne", "oiliness", "radiance",
                            "eye_bag", "age_spot", "redness", "firmness")}, 60 * MiB),)),
    "masks_colliding": Spec(("ok",), 1, "/a/mask.png /b/mask.png /c/mask.png: 3 files",
                            masks=True,
                            checks=(ck_mask_files({"mask-a", "mask-b", "mask-c"}),)),
    "masks_traversal": Spec(("ok",), 1, "mask names ..%2F.., %2e%2e, %2F/tmp/..., .hidden",
                            masks=True,
                            checks=(ck_mask_files({"trav-0", "trav-1", "trav-2", "trav-3"}),)),
}


# ---------------------------------------------------------------------------
# Running one driver
# ---------------------------------------------------------------------------

def command(lang: str, url: str, opts: dict) -> list:
    args = [url] + ["%s=%s" % kv for kv in opts.items()]
    if lang == "python":
        return [sys.executable, os.path.join(HERE, "drive.py")] + args
    if lang == "c":
        return [os.path.join(build_dir(), "tests", "hostile", "hostile_drive")] + args
    return ["lua5.4", os.path.join(HERE, "drive.lua")] + args


def driver_env(key: str) -> dict:
    env = dict(os.environ)
    for k in ("SKINANALYSIS_BASE_URL", "LD_PRELOAD", "PYTHONPATH"):
        env.pop(k, None)
    env["YOUCAM_API_KEY"] = key
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["LUA_CPATH_5_4"] = os.path.join(build_dir(), "lua", "?.so") + ";;"
    env["LUA_PATH_5_4"] = os.path.join(ROOT, "lua", "?.lua") + ";;"
    return env


def launcher() -> str:
    return os.path.join(build_dir(), "tests", "hostile", "hostile_rss")


def rss_kb(pid: int) -> int:
    """Current RSS of pid and its children (the launcher and the driver)."""
    total = 0
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            kids = [int(x) for x in f.read().split()]
    except OSError:
        kids = []
    for p in [pid] + kids:
        try:
            with open("/proc/%d/status" % p) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def wait_child(proc: subprocess.Popen, run: Run, limit: float, report: str) -> None:
    """os.wait4 the launcher; the driver's peak RSS is the ru_maxrss the
    launcher got from its own wait4 (see rss_launch.c: a process exec'd
    straight from this interpreter would report the interpreter's RSS as
    its own peak).  A watchdog kills the process group past the wall limit
    or the RSS cap."""
    done = threading.Event()

    def watchdog() -> None:
        t_end = time.monotonic() + limit
        while not done.wait(0.2):
            if time.monotonic() > t_end:
                run.killed = "killed after %.0f s" % limit
            elif rss_kb(proc.pid) > RSS_KILL_MB * 1024:
                run.killed = "killed at RSS > %d MB" % RSS_KILL_MB
            else:
                continue
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return

    t = threading.Thread(target=watchdog, daemon=True)
    t.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        done.set()
    proc.returncode = os.waitstatus_to_exitcode(status)
    run.exit_status = proc.returncode
    try:
        with open(report) as f:
            run.maxrss_kb = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        run.maxrss_kb = usage.ru_maxrss   # killed: the launcher's own figure
        run.error = run.error or "no RSS report from the launcher (%s)" % (
            run.killed or "exit %s" % run.exit_status)
    try:  # whatever the driver left running in its group
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def scan_files(run: Run) -> None:
    if not run.masks_dir:
        return
    for name in sorted(os.listdir(run.masks_dir)):
        p = os.path.join(run.masks_dir, name)
        if not os.path.isfile(p):
            continue
        with open(p, "rb") as f:
            head = f.read(64)
        run.files[name] = (os.path.getsize(p), server.download_marker(head))
    for dirpath, dirnames, filenames in os.walk(run.tmp):
        for fn in filenames:
            p = os.path.join(dirpath, fn)
            if os.path.dirname(p) != run.masks_dir and fn not in ("stdout", "stderr", "rss"):
                run.outside.append(os.path.relpath(p, run.tmp))
    for p in set(run.record.get("escape_paths", [])):
        if os.path.lexists(p):
            run.outside.append(p)
            os.unlink(p)


def execute(case: str, lang: str, heavy_lock: threading.Lock) -> Run:
    spec = SPECS[case]
    key = "hk" + secrets.token_hex(16)
    run = Run(case, lang, key, tempfile.mkdtemp(prefix="hostile-%s-%s-" % (case, lang)))
    opts = dict(DEFAULT_OPTS, **spec.opts)
    if spec.masks:
        # a folder two levels down, so that an escape by ../ lands in tmp
        run.masks_dir = os.path.join(run.tmp, "out", "masks")
        os.makedirs(run.masks_dir)
        opts["masks"] = run.masks_dir
    lock = heavy_lock if spec.heavy else None
    if lock:
        lock.acquire()
    try:
        srv = server.HostileServer(case, key, **spec.params).start()
        try:
            with open(os.path.join(run.tmp, "stdout"), "wb+") as so, \
                    open(os.path.join(run.tmp, "stderr"), "wb+") as se:
                t0 = time.monotonic()
                report = os.path.join(run.tmp, "rss")
                cmd = [launcher(), report] + command(lang, srv.url, opts)
                for exe in cmd[:1] + cmd[2:3]:
                    if os.sep in exe and not os.access(exe, os.X_OK):
                        run.error = ("%s not found: build first (cmake --build %s; "
                                     "SA_BUILD_DIR picks the build directory)" % (exe, build_dir()))
                        return run
                try:
                    proc = subprocess.Popen(cmd, stdout=so, stderr=se, stdin=subprocess.DEVNULL,
                                            env=driver_env(key), cwd=run.tmp,
                                            start_new_session=True)
                except OSError as exc:
                    run.error = "cannot start the %s driver: %s" % (lang, exc)
                    return run
                wait_child(proc, run, DRIVER_WALL_S, report)
                run.wall = time.monotonic() - t0
                so.seek(0)
                se.seek(0)
                run.stdout, run.stderr = so.read(), se.read()
        finally:
            srv.stop()
            run.record = srv.record()
        for line in reversed(run.stdout.decode("utf-8", "replace").splitlines()):
            if line.startswith("{"):
                try:
                    run.out = json.loads(line)
                except ValueError as exc:
                    run.error = "driver printed bad JSON: %s" % exc
                break
        scan_files(run)
    finally:
        if lock:
            lock.release()
        shutil.rmtree(run.tmp, ignore_errors=True)  # the big masks: keep the disk clean
    return run


# ---------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------

def leaks(run: Run) -> list:
    key = run.key
    needles = [("Bearer <key>", "Bearer " + key), ("the key", key),
               ("half of the key", key[: len(key) // 2])]
    found = []
    for where, data in (("stdout", run.stdout), ("stderr/log", run.stderr),
                        ("file names", " ".join(run.files).encode())):
        text = data.decode("latin-1")
        for what, needle in needles:
            i = text.find(needle)
            if i >= 0:
                line_start = text.rfind("\n", 0, i) + 1
                line_end = text.find("\n", i)
                line = text[line_start: line_end if line_end >= 0 else len(text)]
                found.append("%s in %s: %s" % (what, where,
                                               line.replace(key, "<KEY>")[:300]))
                break
    return found


def problems(run: Run) -> list:
    spec = SPECS[run.case]
    if run.error:
        return [run.error]
    bad = []
    if run.killed:
        bad.append("driver " + run.killed)
    if run.out is None:
        tail = run.stderr.decode("utf-8", "replace").replace(run.key, "<KEY>")[-1500:]
        return bad + ["driver printed no JSON line (exit %s); stderr tail:\n%s"
                      % (run.exit_status, tail)]
    if run.outcome not in spec.expect:
        o = run.out
        msg = o.get("errmsg") or o.get("message") or o.get("str") or ""
        bad.append("outcome %r, expected %s (message: %s)" % (
            run.outcome, " or ".join(map(repr, spec.expect)),
            str(msg).replace(run.key, "<KEY>")[:300]))
    created = run.counts.get("tasks_created", 0)
    if created > 1:
        bad.append("%d tasks created for one analysis" % created)
    elif spec.tasks is not None and created != spec.tasks:
        bad.append("%d task(s) created, expected %d" % (created, spec.tasks))
    for item in run.record.get("key_to_storage", []):
        bad.append("the key went to the %s path %s (%s)" % (
            item["kind"], item["path"].replace(run.key, "<KEY>")[:120], ", ".join(item["where"])))
    for item in run.record.get("unoffered", []):
        bad.append("request to a path never offered: %s %s" % (item["method"], item["path"][:160]))
    for item in run.record.get("bad_auth", []):
        bad.append("API request without the right Authorization: %s %s" % (
            item["method"], item["path"][:120]))
    bad += leaks(run)
    rss_mb = run.maxrss_kb / 1024
    if rss_mb > spec.rss_mb:
        bad.append("peak RSS %.0f MB over the bound of %d MB" % (rss_mb, spec.rss_mb))
    for check in spec.checks:
        bad += check(run)
    return bad


# ---------------------------------------------------------------------------
# pytest
# ---------------------------------------------------------------------------

PAIRS = [(c, lang) for c in SPECS for lang in LANGS]
RESULTS: dict = {}   # (case, lang) -> (Run, problems); read by conftest's summary


@pytest.fixture(scope="session")
def hostile_runs(request):
    """Start every selected (case, language) run at once; each test waits
    for its own."""
    from .conftest import selected_pairs
    selected = selected_pairs(request.session) or PAIRS
    order = sorted(selected, key=lambda p: (not SPECS[p[0]].long, not SPECS[p[0]].heavy))
    heavy_lock = threading.Lock()
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=WORKERS,
                                                 thread_name_prefix="hostile")
    t0 = time.monotonic()
    futures = {p: pool.submit(execute, p[0], p[1], heavy_lock) for p in order}
    yield futures
    pool.shutdown(wait=True)
    request.config._hostile_wall = time.monotonic() - t0


@pytest.mark.parametrize("case,lang", PAIRS, ids=["%s-%s" % p for p in PAIRS])
def test_hostile(case, lang, hostile_runs, record_property):
    run = hostile_runs[(case, lang)].result()
    bad = problems(run)
    RESULTS[(case, lang)] = (run, bad)
    record_property("outcome", run.outcome)
    record_property("peak_rss_mb", round(run.maxrss_kb / 1024, 1))
    record_property("seconds", round(run.wall, 1))
    if bad:
        pytest.fail("%s / %s (%s): outcome %r, %s tasks, %.1f s, peak RSS %.0f MB\n  - %s" % (
            case, lang, SPECS[case].doc, run.outcome, run.counts.get("tasks_created"),
            run.wall, run.maxrss_kb / 1024, "\n  - ".join(bad)), pytrace=False)

"""bench/run's drivers, each run on a few analyses against the emulator.

Not a benchmark: no figure is judged here. These tests check that every
client bench/run measures builds, runs the whole flow against the emulator
and reports what bench/run reads (the C program in its three modes, the
four Python clients, the Lua frame loop), so that the benchmark cannot rot
unnoticed between runs of bench/run.
"""

import importlib.machinery
import importlib.util
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(ROOT, "bench")


def _load_bench_run():
    loader = importlib.machinery.SourceFileLoader("sa_bench_run", os.path.join(BENCH, "run"))
    spec = importlib.util.spec_from_loader("sa_bench_run", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


bench = _load_bench_run()


def _have_installed_library():
    return shutil.which("cc") and subprocess.run(
        ["pkg-config", "--exists", "skinanalysis", "libcurl", "libcjson"]).returncode == 0


@pytest.fixture(scope="module")
def emu():
    e = bench.Emulator("--task-seconds", "0", "--rate-limit", "off")
    yield e
    e.stop()


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    return bench.make_image(str(tmp_path_factory.mktemp("bench") / "face_500k.jpg"), 500 * 1024)


@pytest.fixture(scope="module")
def c_analyze(tmp_path_factory):
    if not _have_installed_library():
        pytest.skip("needs cc and the installed library (scripts/setup)")
    return bench.build_c(str(tmp_path_factory.mktemp("bench_c")), None)


def _cpu_us(r):
    return r["user_us"] + r["sys_us"]


@pytest.mark.parametrize("mode", ["-", "putonly", "rawflow"])
def test_c_analyze_modes(c_analyze, emu, image, mode):
    before = emu.counters()["requests"]
    r = bench.c_run(c_analyze, emu.url, image, 3, 2, 10, 0, mode)
    after = emu.counters()["requests"]
    assert r["n"] == 3 and r["ok"] == 3, r
    assert _cpu_us(r) > 0 and r["wall_s"] > 0
    assert r["rss_peak_kb"] >= r["rss_base_kb"] > 0
    created = after.get("file_create", 0) - before.get("file_create", 0)
    tasks = after.get("task_create", 0) - before.get("task_create", 0)
    if mode == "putonly":   # no API call at all: only the storage PUTs
        assert created == 0 and tasks == 0
    else:                   # a slot and a task per analysis, nothing more
        assert created == 3 and tasks == 3


def test_c_analyze_times_the_upload(c_analyze, emu, image):
    r = bench.c_run(c_analyze, emu.url, image, 1, 1, 10, 0, "upload")
    assert r["ok"] == 1 and r["upload_s"] > 0


@pytest.mark.parametrize("kind", ["client", "many", "requests", "httpx"])
def test_python_clients(emu, image, kind):
    pytest.importorskip("requests" if kind == "requests" else
                        "httpx" if kind == "httpx" else "skinanalysis")
    r = bench.run_json([sys.executable, os.path.join(BENCH, "py_clients.py"), kind,
                        emu.url, image, "3"])
    assert r["n"] == 3 and r["ok"] == 3, r
    assert _cpu_us(r) > 0


def test_lua_frame_loop(emu, image):
    if not shutil.which("lua5.4"):
        pytest.skip("needs lua5.4")
    probe = subprocess.run(["lua5.4", "-e", 'require "skinanalysis"'], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("the Lua module is not installed (scripts/setup)")
    r = bench.run_json(["lua5.4", os.path.join(BENCH, "frame_loop.lua"), emu.url, image,
                        "300", "4", "0.001", "0.01"])
    assert r["frames"] == 300 and r["failed"] == 0, r
    assert r["done"] >= 1
    assert 0 <= r["median_us"] <= r["p99_us"] <= r["max_us"]


@pytest.mark.parametrize("webhooks", [False, True])
def test_poll_bench_and_figures(webhooks):
    """Part 7's driver and what bench/run reads from the emulator after it."""
    pytest.importorskip("skinanalysis")
    extra = ("--webhook-secret", bench.POLL_SECRET) if webhooks else ()
    e = bench.Emulator("--task-seconds", "0.2:0.4", "--seed", "1", *extra)
    try:
        cmd = [sys.executable, os.path.join(BENCH, "poll_bench.py"), e.url,
               bench.FIXTURE_SD, "3", "2", "learned"]
        if webhooks:
            cmd += ["--webhooks", bench.POLL_SECRET]
        # the skinanalysis this process imports (the source tree's, when built there)
        from .sa_helpers import python_path_env
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                             env=python_path_env())
        assert out.returncode == 0, out.stderr
        r = __import__("json").loads(out.stdout.strip().splitlines()[-1])
        assert r["ok"] == 3 and r["failed"] == 0, r
        if webhooks:
            assert r["deliveries"] == 3
        f = bench.poll_figures([(bench.control_tasks(e), e.counters())])
    finally:
        e.stop()
    assert f["ok"] == 3 and f["rpa"] >= 3.0 and f["n429"] == 0 and f["expired"] == 0
    assert f["polls"] >= 1 and 0 <= f["median"] <= f["p95"] and f["gap"] > 0

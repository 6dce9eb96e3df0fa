"""No reference or memory leaks over many calls.

Release builds have no sys.gettotalrefcount, so the tests count what can be
counted: the refcounts of the objects passed in, the number of objects the
GC tracks, and Python memory via tracemalloc.  The emulator runs in a
subprocess here, so its own request log does not count against the client.
"""

import gc
import os
import subprocess
import sys
import tracemalloc

import pytest

import skinanalysis
from .sa_helpers import NOT_IMAGE, SD_IMAGE, python_path_env

N = 200


@pytest.fixture(scope="module")
def emulator_process():
    proc = subprocess.Popen(
        [sys.executable, "-m", "skinanalysis.emulator", "--port", "0", "--task-seconds",
         "0", "--rate-limit", "off", "--log-max", "100"],
        stdout=subprocess.PIPE, text=True, env=python_path_env())
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on "), line
        yield line[len("listening on "):]
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()


def measure(fn, n):
    """(GC-tracked object growth, traced memory growth in bytes) of n calls
    after a warm-up."""
    for _ in range(20):
        fn()
    gc.collect()
    objects = len(gc.get_objects())
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(n):
            fn()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return len(gc.get_objects()) - objects, after - before


def test_analyze_does_not_leak(emulator_process):
    with open(SD_IMAGE, "rb") as fh:
        data = fh.read()
    actions = ["wrinkle", "pore", "skin_type"]
    with skinanalysis.Client("emulator-key", base_url=emulator_process,
                             poll_interval=0.002, rate_limit=False) as c:
        refs = (sys.getrefcount(data), sys.getrefcount(actions))

        def one():
            res = c.analyze(data, actions)
            assert res.get("pore") is not None

        objects, memory = measure(one, N)
        assert (sys.getrefcount(data), sys.getrefcount(actions)) == refs
    assert objects < 50, objects
    assert memory < 64 * 1024, memory


def test_jobs_and_results_do_not_leak(emulator_process):
    with skinanalysis.Client("emulator-key", base_url=emulator_process,
                             poll_interval=0.002, rate_limit=False) as c:
        def one():
            job = c.submit(SD_IMAGE, ["pore"], format="zip")
            job.wait()
            job.result().to_dict()
            (job.task_id, job.status, job.polls, job.units, repr(job))

        objects, memory = measure(one, N)
    assert objects < 50, objects
    assert memory < 64 * 1024, memory


def test_failures_do_not_leak(emulator_process):
    with skinanalysis.Client("emulator-key", base_url=emulator_process) as c:
        path = NOT_IMAGE
        refs = sys.getrefcount(path)

        def one():
            try:
                c.submit(path, ["pore"])
            except skinanalysis.ValidationError as exc:
                str(exc)
            else:
                raise AssertionError("expected a ValidationError")

        objects, memory = measure(one, 5 * N)
        assert sys.getrefcount(path) == refs
    assert objects < 50, objects
    assert memory < 64 * 1024, memory


def test_clients_do_not_leak(emulator_process):
    def one():
        c = skinanalysis.Client("emulator-key", base_url=emulator_process)
        c.close()

    objects, memory = measure(one, N)
    assert objects < 50, objects
    assert memory < 64 * 1024, memory


def test_a_dropped_client_with_a_job_cycle_is_collected(emulator_process):
    import weakref

    class Holder:
        pass

    def make():
        h = Holder()
        h.client = skinanalysis.Client("emulator-key", base_url=emulator_process)
        h.job = h.client.submit(SD_IMAGE, ["pore"], callback=lambda j, s: h)
        return weakref.ref(h)

    ref = make()
    gc.collect()
    assert ref() is None
    assert os.getpid()  # still alive: the collection freed the core handles safely


def test_compare_and_composites_do_not_leak(tmp_path):
    """_core.compare and composite_write with concern names: no references
    kept to their arguments, no memory growth (tracemalloc sees the
    binding's PyMem use; the core's own buffers are checked by the ASan
    pass of the C tests)."""
    from skinanalysis import _core
    scores = [("wrinkle", "whole", 40.5, 60.0, None), ("skin_type", "t_zone", None, None, "Oily"),
              ("pore", "nose", 20.0, 50.0, None)]
    before = (scores, 65.0, 30.0)
    after = ([("hd_wrinkle", "whole", 41.0, 62.0, None)], None, 31.0)
    with open(SD_IMAGE, "rb") as fh:
        source = fh.read()
    concerns = ["wrinkle"]
    out = str(tmp_path / "c.png")
    refs = (sys.getrefcount(before), sys.getrefcount(after), sys.getrefcount(source),
            sys.getrefcount(concerns))

    def one():
        changes, overall, age = _core.compare(before, after)
        assert len(changes) == 3 and overall[2] == 65.0
        _core.composite_write(source, [source], out, concerns, 64)
        try:
            _core.compare(before, "bad")
        except TypeError:
            pass

    objects, memory = measure(one, N)
    assert (sys.getrefcount(before), sys.getrefcount(after), sys.getrefcount(source),
            sys.getrefcount(concerns)) == refs
    assert objects < 50, objects
    assert memory < 64 * 1024, memory

"""Ctrl-C (SIGINT) during blocking waits: raised within a fraction of a
second, and the job stays resumable. The interrupt fires once the emulator
has seen the client poll (the wait is under way), not after a sleep; the
emulator's clock is stopped so no task ends meanwhile."""

import _thread
import logging
import signal
import threading
import time

import pytest

import skinanalysis
from .sa_helpers import FAST, SD_IMAGE, polled, tasks_polled_to_end, then

BOUND = 0.5      # how soon after the interrupt KeyboardInterrupt must be raised


def sigint(how="pthread_kill"):
    main = threading.main_thread().ident

    def fire():
        if how == "pthread_kill":
            signal.pthread_kill(main, signal.SIGINT)
        else:
            _thread.interrupt_main()
    return fire


def interrupt_when(predicate, how="pthread_kill"):
    return then((predicate, sigint(how)))


def raised_within_bound(t):
    assert t.fired, "the interrupt never fired (%s)" % t.missed
    latency = time.monotonic() - t.fired[0]
    assert latency < BOUND, latency


@pytest.fixture
def long_task(make_emulator):
    emu = make_emulator(task_seconds=60, test_clock=True)
    client = skinanalysis.Client(emu.api_key, base_url=emu.base_url, **FAST)
    yield emu, client
    client.close(timeout=0.5)


@pytest.mark.parametrize("how", ["pthread_kill", "interrupt_main"])
def test_sigint_interrupts_a_wait_and_the_job_resumes(long_task, how):
    emu, client = long_task
    job = client.submit(SD_IMAGE, ["pore"])
    t = interrupt_when(polled(emu, 2), how)
    with pytest.raises(KeyboardInterrupt):
        job.wait()
    raised_within_bound(t)
    t.join()
    assert not job.done() and job.task_id
    emu.finish_task(job.task_id)
    res = job.wait(10)
    assert res.get("pore") is not None and job.status == "done"


def test_sigint_interrupts_run(long_task):
    emu, client = long_task
    job = client.submit(SD_IMAGE, ["pore"])
    t = interrupt_when(polled(emu, 2))
    with pytest.raises(KeyboardInterrupt):
        client.run()
    raised_within_bound(t)
    t.join()
    emu.finish_task(job.task_id)
    client.run(10)
    assert job.done() and job.result().get("pore")


def test_sigint_interrupts_analyze(long_task):
    emu, client = long_task
    t = interrupt_when(polled(emu, 2))
    with pytest.raises(KeyboardInterrupt):
        client.analyze(SD_IMAGE, ["pore"])
    raised_within_bound(t)
    t.join()
    # the task goes on being polled by the client until it ends
    task_ids = list(emu.state.tasks)
    assert len(task_ids) == 1
    emu.finish_task(task_ids[0])
    client.run(10)
    assert tasks_polled_to_end(emu)[1] == []


def test_batch_ctrl_c_waits_for_running_tasks(make_emulator, caplog):
    emu = make_emulator(task_seconds=0.8, test_clock=True)
    images = [SD_IMAGE] * 12
    with skinanalysis.Client(emu.api_key, base_url=emu.base_url, **FAST) as c:
        # Ctrl-C once four tasks run; the batch then waits for them (and
        # submits nothing more): let them end by moving the clock
        t = then((lambda: len(emu.state.tasks) >= 4, sigint()),
                 (lambda: "waiting for" in caplog.text, lambda: emu.advance_clock(0.8)))
        with caplog.at_level(logging.WARNING, logger="skinanalysis"):
            with pytest.raises(KeyboardInterrupt):
                c.analyze_many(images, ["pore"], concurrency=4, progress=False)
        t.join()
    assert "waiting for" in caplog.text
    created, unseen = tasks_polled_to_end(emu)
    assert 0 < len(created) <= 4  # no new submissions after Ctrl-C
    assert not unseen               # every created task was polled to its end


def test_batch_second_ctrl_c_abandons_with_task_ids(make_emulator, caplog):
    emu = make_emulator(task_seconds=60, test_clock=True)
    c = skinanalysis.Client(emu.api_key, base_url=emu.base_url, **FAST)
    try:
        # Ctrl-C once three tasks run, again once the batch says it waits
        t = then((lambda: len(emu.state.tasks) >= 3, sigint()),
                 (lambda: "waiting for" in caplog.text, sigint()))
        with caplog.at_level(logging.WARNING, logger="skinanalysis"):
            with pytest.raises(KeyboardInterrupt):
                c.analyze_many([SD_IMAGE] * 6, ["pore"], concurrency=3, progress=False)
        t.join()
        created = list(emu.state.tasks)
        assert created and "abandoned 3 running analyses" in caplog.text
        assert all(tid in caplog.text for tid in created)
    finally:
        c.close(timeout=0.1)

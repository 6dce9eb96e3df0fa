"""What a hostile or broken server cannot do (issue 12): a task that exists
is polled to its end whatever the polls meet, and a task can be resumed
from its id (Client.resume, AsyncClient.resume, ResumeTask in batches)."""

import asyncio
import logging
import signal
import threading
import time

import pytest

import skinanalysis
from .sa_helpers import FAST, HD_IMAGE, SD_IMAGE, api_requests, tasks_polled_to_end, then


def started_task(client, image=SD_IMAGE, **kwargs):
    """Submit and step the client until the task exists; the Job."""
    job = client.submit(image, ["pore", "wrinkle"], **kwargs)
    end = time.monotonic() + 10
    while not job.task_id and time.monotonic() < end:
        client.step(0.01)
    assert job.task_id
    return job


def endpoints(emu, since=0):
    return [r["endpoint"] for r in api_requests(emu)[since:]]


# -- a storm of failed polls -------------------------------------------------------

#: max_retries (6) retries of FAST's backoff (20 ms doubling, capped at 100 ms)
#: wait 440 ms at most: the old budget gave up within that.
OLD_BUDGET_S = (20 + 40 + 80 + 100 + 100 + 100) / 1000.0


@pytest.mark.parametrize("fault", ["http_503", "http_429", "http_502_html",
                                   "close_before_response", "truncated_json",
                                   "malformed_json"])
def test_a_poll_storm_longer_than_the_old_budget_ends_done(emu, fault):
    storm = 30
    emu.set_scenario([{"endpoint": "task_status", "times": storm, "fault": fault}])
    with skinanalysis.Client(emu.api_key, base_url=emu.base_url, rate_limit=False,
                             **FAST) as c:
        started = time.monotonic()
        job = c.submit(SD_IMAGE, ["pore"])
        result = job.wait(60)
        elapsed = time.monotonic() - started
    assert result.get("pore") is not None
    assert emu.counters["tasks_created"] == 1
    assert emu.counters["faults_applied"][fault] == storm
    assert emu.counters["requests"]["task_status"] >= storm + 1
    # (libcurl resends a GET once on a reused connection closed unanswered)
    assert job.polls >= storm // 2 + 1 > 7
    assert elapsed > 2 * OLD_BUDGET_S      # far longer than the old budget
    assert tasks_polled_to_end(emu)[1] == []


def test_a_storm_past_the_deadline_fails_the_job_but_polls_on(make_emulator, caplog):
    emu = make_emulator(task_seconds=0)
    emu.set_scenario([{"endpoint": "task_status", "times": 40, "fault": "http_503"}])
    caplog.set_level(logging.INFO, logger="skinanalysis")  # before the client
    with skinanalysis.Client(emu.api_key, base_url=emu.base_url, rate_limit=False,
                             **FAST) as c:
        job = c.submit(SD_IMAGE, ["pore"], deadline=0.8)
        with pytest.raises(skinanalysis.DeadlineError) as info:
            job.wait(30)
        assert info.value.task_id == job.task_id
        assert "503" in str(info.value)
        c.run(30)                           # the background poll ends it
    assert "succeeded in the background" in caplog.text
    assert emu.counters["tasks_created"] == 1
    assert tasks_polled_to_end(emu)[1] == []


# -- resume ----------------------------------------------------------------------

def test_resume_a_task_another_client_abandoned(make_emulator):
    emu = make_emulator(task_seconds=0.5)
    with skinanalysis.Client(emu.api_key, base_url=emu.base_url, **FAST) as first:
        job = started_task(first)
        task_id = job.task_id
        job.abandon()                       # the first process "dies"
    before = len(api_requests(emu))
    with skinanalysis.Client(emu.api_key, base_url=emu.base_url, **FAST) as second:
        result = second.resume(task_id, timeout=30)
    assert result.task_id == task_id
    assert result.get("pore") and result.get("wrinkle")
    assert emu.counters["tasks_created"] == 1
    # nothing but status polls of that task: no file, no upload, no create
    assert set(endpoints(emu, before)) == {"task_status"}
    assert all(r["task_id"] == task_id for r in api_requests(emu)[before:])
    assert emu.counters["requests"].get("upload", 0) == 1
    assert tasks_polled_to_end(emu)[1] == []


def test_resume_job_is_a_job(client, emu):
    done = client.analyze(SD_IMAGE, ["pore"])
    states = []
    job = client.resume_job(done.task_id, callback=lambda j, s: states.append(s))
    assert isinstance(job, skinanalysis.Job)
    assert job.task_id == done.task_id        # known at once
    assert job.units == 0 and job.file_id is None
    result = job.wait(30)
    assert result.task_id == done.task_id
    assert result.get("pore").ui_score == done.get("pore").ui_score
    assert job.status == "done" and job.polls >= 1 and states
    assert emu.counters["tasks_created"] == 1


def test_resume_on_the_v2_0_path(client, emu):
    done = client.analyze(SD_IMAGE, ["pore"])
    before = len(api_requests(emu))
    client.resume(done.task_id, version="2.0")
    assert all("/s2s/v2.0/task/skin-analysis/" in r["path"]
               for r in api_requests(emu)[before:])


def test_resume_a_zip_result(client, emu):
    done = client.analyze(HD_IMAGE, hd=True, format="zip")
    result = client.resume(done.task_id)
    assert result.format == "zip" and result.files
    assert result.get("hd_pore", "nose") is not None
    assert emu.counters["tasks_created"] == 1


def test_resume_an_unknown_task_is_task_expired(client, emu):
    with pytest.raises(skinanalysis.TaskExpiredError) as info:
        client.resume("no-such-task")
    assert info.value.task_id == "no-such-task"
    assert emu.counters["tasks_created"] == 0


# the one id rule of the core: 1..4096 of A-Z a-z 0-9 + / = - _ . ~, not
# only dots (the ids the API's answers hold)
@pytest.mark.parametrize("bad", ["", "a:b", "a!b", "a@b", "a b", "a?b", "a#b", "a%2F",
                                 "a\nb", "a\x00b", "..", "caf\u00e9", "x" * 4097])
def test_resume_refuses_bad_ids_before_sending(client, emu, bad):
    with pytest.raises(skinanalysis.ValidationError):
        client.resume(bad)
    assert emu.log == []


def test_resume_argument_types(client):
    with pytest.raises(TypeError):
        client.resume(12345)
    with pytest.raises(skinanalysis.ValidationError):
        client.resume("abc", version="3.0")


def test_resume_wait_timeout_keeps_the_job(make_emulator):
    emu = make_emulator(task_seconds=1.0, test_clock=True)
    with skinanalysis.Client(emu.api_key, base_url=emu.base_url, **FAST) as c:
        task_id = started_task(c).task_id
        with pytest.raises(skinanalysis.WaitTimeout) as info:
            c.resume(task_id, timeout=0.05)
        emu.advance_clock(1.0)
        assert info.value.job.wait(30).task_id == task_id


def test_async_resume(make_emulator):
    emu = make_emulator(task_seconds=0.3)

    async def main():
        async with skinanalysis.AsyncClient(emu.api_key, base_url=emu.base_url,
                                            **FAST) as c:
            job = await c.submit(SD_IMAGE, ["pore"])
            while not job.task_id:
                await asyncio.sleep(0.01)
            job.abandon()
            resumed = await c.resume_job(job.task_id)
            assert isinstance(resumed, skinanalysis.AsyncJob)
            first = await resumed
            again = await c.resume(job.task_id, timeout=30)
            with pytest.raises(skinanalysis.ValidationError):
                await c.resume("a:b")
            return job.task_id, first, again

    task_id, first, again = asyncio.run(main())
    assert first.task_id == again.task_id == task_id
    assert first.get("pore").ui_score == again.get("pore").ui_score
    assert emu.counters["tasks_created"] == 1


def test_analyze_many_resumes_resume_task_items(client, emu):
    done = client.analyze(SD_IMAGE, ["pore"])
    results = client.analyze_many([skinanalysis.ResumeTask(done.task_id), SD_IMAGE,
                                   skinanalysis.ResumeTask("no-such-task")],
                                  ["pore"], progress=False)
    assert results[0].task_id == done.task_id
    assert isinstance(results[1], skinanalysis.Result)
    assert results[1].task_id != done.task_id
    assert isinstance(results[2], skinanalysis.TaskExpiredError)
    assert emu.counters["tasks_created"] == 2  # only the new image


def test_async_analyze_many_resumes_resume_task_items(emu):
    async def main():
        async with skinanalysis.AsyncClient(emu.api_key, base_url=emu.base_url,
                                            **FAST) as c:
            done = await c.analyze(SD_IMAGE, ["pore"])
            return done, await c.analyze_many([skinanalysis.ResumeTask(done.task_id)],
                                              ["pore"], progress=False)

    done, results = asyncio.run(main())
    assert results[0].task_id == done.task_id
    assert emu.counters["tasks_created"] == 1


def test_batch_second_ctrl_c_reports_abandoned_tasks(make_emulator, caplog):
    """The tasks abandoned by a second Ctrl-C are reported (on_result) as
    CancelledError with their task id, so a later run can resume them."""
    emu = make_emulator(task_seconds=60, test_clock=True)
    seen = []
    c = skinanalysis.Client(emu.api_key, base_url=emu.base_url, **FAST)
    try:
        main = threading.main_thread().ident

        def fire():
            signal.pthread_kill(main, signal.SIGINT)

        # Ctrl-C once three tasks run, again once the batch says it waits
        t = then((lambda: len(emu.state.tasks) >= 3, fire),
                 (lambda: "waiting for" in caplog.text, fire))
        with caplog.at_level(logging.WARNING, logger="skinanalysis"):
            with pytest.raises(KeyboardInterrupt):
                c.analyze_many([SD_IMAGE] * 6, ["pore"], concurrency=3, progress=False,
                               on_result=lambda i, image, outcome: seen.append(outcome))
        t.join()
    finally:
        c.close(timeout=0.1)
    created = set(emu.state.tasks)
    assert len(seen) == 3 and created
    assert all(isinstance(o, skinanalysis.CancelledError) for o in seen)
    # (a job abandoned before its task create has no task id: nothing billed)
    assert {o.task_id for o in seen if o.task_id} == created

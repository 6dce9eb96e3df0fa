"""AsyncClient: asyncio on the core's socket and timer hooks."""

import asyncio
import threading
import time

import pytest

import skinanalysis
from .sa_helpers import FAST, HD_IMAGE, SD_IMAGE, polled, tasks_polled_to_end


def run(coro):
    return asyncio.run(coro)


async def until(predicate, timeout=30.0):
    """Await ``predicate()`` becoming true (polled; bounded)."""
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "condition not met in %g s" % timeout
        await asyncio.sleep(0.01)


def test_analyze(emu):
    async def main():
        async with skinanalysis.AsyncClient(emu.api_key, base_url=emu.base_url,
                                            **FAST) as c:
            res = await c.analyze(SD_IMAGE, ["wrinkle", "pore"])
            zipped = await c.analyze(HD_IMAGE, hd=True, format="zip")
            return res, zipped

    res, zipped = run(main())
    assert res.get("wrinkle").ui_score and res.get("pore")
    assert zipped.format == "zip" and zipped.get("hd_pore", "nose") is not None
    assert all(b.startswith(b"\x89PNG") for b in zipped.files.values()) and zipped.files


def test_concurrent_analyses_use_no_threads(make_emulator):
    emu = make_emulator(task_seconds=0.5, test_clock=True)

    async def all_running_then_end():
        # concurrent: all 8 tasks run at once (the clock stands until moved)
        await until(lambda: emu.counters["tasks_running"] == 8)
        emu.advance_clock(0.5)

    async def main():
        async with skinanalysis.AsyncClient(emu.api_key, base_url=emu.base_url,
                                            rate_limit=False, **FAST) as c:
            threads = threading.active_count()
            *results, _ = await asyncio.gather(*(c.analyze(SD_IMAGE, ["pore"])
                                                 for _ in range(8)), all_running_then_end())
            return results, threads, threading.active_count()

    results, before, after = run(main())
    assert len({r.task_id for r in results}) == 8
    assert after == before        # no thread per call, no executor


def test_the_loop_stays_responsive(make_emulator):
    # the task ends only when the ticker, 20 ticks into the analysis, moves
    # the emulator's clock: a blocked loop would never get there
    emu = make_emulator(task_seconds=0.6, test_clock=True)

    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1
                if ticks == 20:
                    emu.advance_clock(0.6)

        async with skinanalysis.AsyncClient(emu.api_key, base_url=emu.base_url,
                                            **FAST) as c:
            t = asyncio.ensure_future(ticker())
            res = await asyncio.wait_for(c.analyze(SD_IMAGE, ["pore"]), 60)
            t.cancel()
        return ticks, res

    ticks, res = run(main())
    assert ticks >= 20 and res.get("pore") is not None


def test_job_wait_timeout_then_again(make_emulator):
    emu = make_emulator(task_seconds=0.8, test_clock=True)

    async def main():
        async with skinanalysis.AsyncClient(emu.api_key, base_url=emu.base_url,
                                            **FAST) as c:
            job = await c.submit(SD_IMAGE, ["pore"])
            with pytest.raises(skinanalysis.WaitTimeout) as info:
                await job.wait(0.2)
            assert info.value.job is job and not job.done()
            assert info.value.task_id == job.task_id
            emu.advance_clock(0.8)
            res = await job
            assert job.done() and job.status == "done"
            return res

    assert run(main()).get("pore")


def test_cancelling_the_awaiter_keeps_the_job(make_emulator):
    emu = make_emulator(task_seconds=0.5, test_clock=True)

    async def main():
        async with skinanalysis.AsyncClient(emu.api_key, base_url=emu.base_url,
                                            **FAST) as c:
            job = await c.submit(SD_IMAGE, ["pore"])
            waiter = asyncio.ensure_future(job.wait())
            await until(polled(emu))   # the waiter waits (the task cannot end)
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
            emu.advance_clock(0.5)
            return await job

    assert run(main()).get("pore")
    assert tasks_polled_to_end(emu)[1] == []


def test_errors(emu):
    emu.queue_engine_error("error_no_face")

    async def main():
        async with skinanalysis.AsyncClient(emu.api_key, base_url=emu.base_url,
                                            **FAST) as c:
            with pytest.raises(skinanalysis.EngineError) as info:
                await c.analyze(SD_IMAGE, ["pore"])
            assert info.value.code == "error_no_face"
            with pytest.raises(skinanalysis.ValidationError):
                await c.submit(SD_IMAGE, ["nope"])
        async with skinanalysis.AsyncClient("wrong", base_url=emu.base_url, **FAST) as c:
            with pytest.raises(skinanalysis.AuthError):
                await c.analyze(SD_IMAGE, ["pore"])

    run(main())


def test_analyze_many(emu):
    got = []

    async def main():
        async with skinanalysis.AsyncClient(emu.api_key, base_url=emu.base_url,
                                            **FAST) as c:
            return await c.analyze_many([SD_IMAGE, "/missing.jpg", SD_IMAGE], ["pore"],
                                        concurrency=2, progress=False,
                                        on_result=lambda i, img, out: got.append(i))

    results = run(main())
    assert isinstance(results[0], skinanalysis.Result)
    assert isinstance(results[1], skinanalysis.ValidationError)
    assert isinstance(results[2], skinanalysis.Result)
    assert sorted(got) == [0, 1, 2]


def test_analyze_many_raise_on_error(emu):
    async def main():
        async with skinanalysis.AsyncClient(emu.api_key, base_url=emu.base_url,
                                            **FAST) as c:
            await c.analyze_many(["/missing.jpg"] + [SD_IMAGE] * 4, ["pore"],
                                 concurrency=1, progress=False, raise_on_error=True)

    with pytest.raises(skinanalysis.ValidationError):
        run(main())
    assert emu.counters["tasks_created"] == 0


def test_close_drains_and_loop_can_change(make_emulator):
    emu = make_emulator(task_seconds=0.4)
    c = skinanalysis.AsyncClient(emu.api_key, base_url=emu.base_url, **FAST)

    async def first():
        return await c.analyze(SD_IMAGE, ["pore"])

    async def second():
        job = await c.submit(SD_IMAGE, ["pore"])  # left running: close() drains it
        await c.close()
        assert job.done() and job.result().get("pore")

    assert run(first()).get("pore")
    run(second())  # a new event loop: allowed, nothing was running
    assert c.closed
    created, unseen = tasks_polled_to_end(emu)
    assert len(created) == 2 and not unseen


def test_bound_loop_with_running_jobs_refuses_another_loop(make_emulator):
    emu = make_emulator(task_seconds=5, test_clock=True)
    c = skinanalysis.AsyncClient(emu.api_key, base_url=emu.base_url, **FAST)
    holder = []

    def loop_thread():
        async def start():
            holder.append(await c.submit(SD_IMAGE, ["pore"]))
            await until(polled(emu))   # the job runs on this loop, then the loop ends
        asyncio.run(start())

    t = threading.Thread(target=loop_thread)
    t.start()
    t.join()

    async def other():
        with pytest.raises(skinanalysis.UsageError, match="another event loop"):
            await c.submit(SD_IMAGE, ["pore"])

    run(other())
    run(c.close())  # the first loop is gone: its running job is abandoned
    assert c.closed and holder[0].done() and holder[0].status == "cancelled"


def test_submit_outside_a_loop_is_an_error(emu):
    c = skinanalysis.AsyncClient(emu.api_key, base_url=emu.base_url)
    with pytest.raises(RuntimeError):
        c.submit(SD_IMAGE).send(None)
    run(c.close())

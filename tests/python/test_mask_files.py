"""Mask files (issue 12): names cleaned once in the core and unique, no
file replaced or followed, one bad URL failing alone with a download error,
the in-memory bound, timeouts and the low-speed cut-off on a trickling
host, and AsyncClient.fetch_masks without polling."""

import asyncio
import dataclasses
import threading
import time
from types import MappingProxyType

import pytest

import skinanalysis
from skinanalysis._native import _core
from .sa_helpers import FAST, SD_IMAGE

PNG = b"\x89PNG\r\n\x1a\n"

#: Seven URLs: three ending in mask.png, "x y.png" and "x_y.png", one that
#: is not http(s) and one that answers 404.
RESULTS = {"output": [
    {"type": "wrinkle", "ui_score": 50, "raw_score": 50.5,
     "mask_urls": ["{base}/_public/a/mask.png?sig=1", "{base}/_public/b/mask.png?sig=2"]},
    {"type": "pore", "ui_score": 60, "raw_score": 60.5,
     "mask_urls": ["{base}/_public/c/mask.png", "ftp://elsewhere/bad.png",
                   "{base}/_public/missing.png"]},
    {"type": "acne", "ui_score": 70, "raw_score": 70.5,
     "mask_urls": ["{base}/_public/x%20y.png", "{base}/_public/x_y.png"]}]}


def done_job(client, emu, results):
    """A DONE job of ``client`` whose data.results is ``results``."""
    job = client.submit(SD_IMAGE, ["wrinkle"])
    end = time.monotonic() + 10
    while not job.task_id and time.monotonic() < end:
        client.step(0.02)
    emu.set_task_results(job.task_id, results)
    emu.finish_task(job.task_id)
    client.notify(job.task_id)
    job.wait(20)
    return job


@pytest.fixture
def slow_emu(make_emulator):
    emu = make_emulator(task_seconds=60)
    for name, data in (("a/mask.png", b"A" * 3000), ("b/mask.png", b"B" * 3000),
                       ("c/mask.png", b"C" * 3000), ("x y.png", b"space"),
                       ("x_y.png", b"underscore")):
        emu.host_public(name, data)
    return emu


def test_names_are_cleaned_by_the_core():
    assert _core.clean_file_name("https://s3/a/x%20y.png?sig=1") == "x_y.png"
    assert _core.clean_file_name("../../etc/passwd") == "passwd"
    assert _core.clean_file_name("") == "file"
    with pytest.raises(TypeError):
        _core.clean_file_name(b"x.png")


def test_one_bad_url_fails_alone_and_names_are_unique(client, slow_emu, tmp_path):
    with skinanalysis.Client(slow_emu.api_key, base_url=slow_emu.base_url, **FAST) as c:
        job = done_job(c, slow_emu, RESULTS)
        res = job.result()
        with pytest.raises(skinanalysis.DownloadError) as info:
            res.save_masks(tmp_path / "out")
        exc = info.value
        # the caller did nothing wrong and the requests were sent
        assert not isinstance(exc, (skinanalysis.ValidationError, skinanalysis.UsageError))
        assert "2 of 7 files failed" in str(exc) and "bad.png" in str(exc)
        names = sorted(p.name for p in exc.paths)
        assert names == ["mask-2.png", "mask-3.png", "mask.png", "x_y-2.png", "x_y.png"]
        assert sorted(p.name for p in (tmp_path / "out").iterdir()) == names
        contents = {p.name: p.read_bytes() for p in exc.paths}
        assert contents["mask.png"] == b"A" * 3000 and contents["mask-2.png"] == b"B" * 3000
        assert contents["mask-3.png"] == b"C" * 3000
        assert contents["x_y.png"] == b"space" and contents["x_y-2.png"] == b"underscore"
        # fetch_masks: the same, with the files that arrived in exc.result
        with pytest.raises(skinanalysis.DownloadError) as info:
            c.fetch_masks(job)
        partial = info.value.result
        assert isinstance(partial, skinanalysis.Result)
        assert sorted(partial.files) == names and not partial.paths


def test_held_files_are_written_by_the_core(client, emu, tmp_path):
    zipped = client.analyze(SD_IMAGE, ["pore"], format="zip")
    clash = dataclasses.replace(zipped, files=MappingProxyType(
        {"x y.png": b"space", "x_y.png": b"underscore", "../up.png": b"up"}))
    (tmp_path / "up.png").write_bytes(b"the user's file")
    written = clash.save_masks(tmp_path)
    assert [p.name for p in written] == ["x_y.png", "x_y-2.png", "up-2.png"]
    assert [p.read_bytes() for p in written] == [b"space", b"underscore", b"up"]
    assert (tmp_path / "up.png").read_bytes() == b"the user's file"
    assert all(p.parent == tmp_path for p in written)
    # saving again gives the same files, not new copies
    assert [p.name for p in clash.save_masks(tmp_path)] == ["x_y.png", "x_y-2.png", "up-2.png"]
    assert len(list(tmp_path.iterdir())) == 4


def test_a_file_that_exists_is_not_replaced(client, emu, tmp_path):
    res = client.analyze(SD_IMAGE, ["pore"])
    mine = tmp_path / "pore_output.png"
    mine.write_bytes(b"mine")
    link_target = tmp_path.parent / ("outside-" + tmp_path.name)
    link_target.write_bytes(b"outside")
    (tmp_path / "resized_image").symlink_to(link_target)
    written = res.save_masks(tmp_path)
    assert mine.read_bytes() == b"mine" and link_target.read_bytes() == b"outside"
    names = sorted(p.name for p in written)
    assert names == ["pore_output-2.png", "resized_image-2"]
    assert (tmp_path / "pore_output-2.png").read_bytes().startswith(PNG)
    link_target.unlink()


def test_the_memory_bound(make_emulator, slow_emu):
    with skinanalysis.Client(slow_emu.api_key, base_url=slow_emu.base_url,
                             max_files_bytes=7000, **FAST) as c:
        job = done_job(c, slow_emu, {"output": [
            {"type": "wrinkle", "ui_score": 50, "raw_score": 50.5,
             "mask_urls": ["{base}/_public/a/mask.png", "{base}/_public/b/mask.png",
                           "{base}/_public/c/mask.png"]}]})
        with pytest.raises(skinanalysis.LimitError, match="max_files_bytes") as info:
            c.fetch_masks(job)
        assert len(info.value.result.files) == 2


def test_save_masks_takes_a_timeout(client, emu, tmp_path):
    res = client.analyze(SD_IMAGE, ["pore"])
    emu.set_scenario([{"endpoint": "result", "nth": [1], "fault": "trickle",
                       "size_bytes": 100000, "delay_ms": 1000}])
    started = time.monotonic()
    with pytest.raises(skinanalysis.WaitTimeout):
        res.save_masks(tmp_path, timeout=0.5)
    assert time.monotonic() - started < 3
    # the files that were in are kept, nothing partial is left
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("pore")]
    emu.set_scenario([{"endpoint": "result", "nth": [1], "fault": "trickle",
                       "size_bytes": 100000, "delay_ms": 1000}])
    with pytest.raises(skinanalysis.WaitTimeout):
        res.mask_files(timeout=0.3)


def test_a_trickling_host_is_cut_off(emu, tmp_path):
    emu.set_scenario([{"endpoint": "result", "nth": [1], "fault": "trickle",
                       "size_bytes": 100000, "delay_ms": 1000}])
    with skinanalysis.Client(emu.api_key, base_url=emu.base_url, max_retries=0,
                             low_speed_limit=100, low_speed_time_ms=1000,
                             upload_timeout=60, **FAST) as c:
        res = c.analyze(SD_IMAGE, ["pore", "wrinkle"])
        started = time.monotonic()
        with pytest.raises(skinanalysis.RequestTimeoutError) as info:
            res.save_masks(tmp_path)
        assert time.monotonic() - started < 10
        assert len(info.value.paths) == 2  # the other mask and the resized image


def test_async_fetch_masks_is_told_not_polled(emu, tmp_path, monkeypatch):
    sleeps = []
    real_sleep = asyncio.sleep

    async def spy(delay, *args, **kwargs):
        # only the client's loop counts: the in-process emulator's loop (its
        # sweeper sleeps 0.2 s) sees the patched module too
        if threading.current_thread() is threading.main_thread():
            sleeps.append(delay)
        return await real_sleep(delay, *args, **kwargs)

    async def main():
        async with skinanalysis.AsyncClient(emu.api_key, base_url=emu.base_url,
                                            **FAST) as c:
            res = await c.analyze(SD_IMAGE, ["pore"])
            monkeypatch.setattr(asyncio, "sleep", spy)
            fetched = await c.fetch_masks(res)
            monkeypatch.setattr(asyncio, "sleep", real_sleep)
            emu.set_scenario([{"endpoint": "result", "fault": "trickle",
                               "size_bytes": 1000, "delay_ms": 1000}])
            started = time.monotonic()
            with pytest.raises(skinanalysis.WaitTimeout):
                await c.fetch_masks(res, timeout=0.3)
            emu.clear_scenario()
            return fetched, time.monotonic() - started

    fetched, waited = asyncio.run(main())
    assert sleeps == []
    assert any(b.startswith(PNG) for b in fetched.files.values())
    assert waited < 2

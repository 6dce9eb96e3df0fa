"""Zip results, masks, composites: Result.files, save_masks, fetch_masks
(sync and async), expired URLs, corrupt zips, composite and the notebook
view, all against the in-process emulator."""

import asyncio
import os
import struct
import time

import pytest

import skinanalysis
from skinanalysis._native import _core
from .sa_helpers import FAST, FIXTURES, HD_IMAGE, SD_IMAGE

EXAMPLES = os.path.join(FIXTURES, "spec", "examples")
PNG = b"\x89PNG\r\n\x1a\n"


def png_size(data):
    """(width, height) from a PNG's IHDR."""
    assert data[:8] == PNG and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def result_requests(emu):
    return [r for r in emu.log if r["path"].startswith("/_results/")]


def shape(result):
    return sorted((s.concern, s.region, s.skin_type is not None) for s in result.scores)


def test_zip_result_has_the_scores_of_a_json_result(client, emu):
    actions = ["pore", "wrinkle", "skin_type", "acne"]
    as_json = client.analyze(SD_IMAGE, actions)
    as_zip = client.analyze(SD_IMAGE, actions, format="zip")
    assert as_zip.format == "zip"
    assert as_zip.zip_url and "/_results/" in as_zip.zip_url and as_json.zip_url is None
    assert shape(as_zip) == shape(as_json)
    assert as_zip.concerns and set(as_zip.concerns) == set(as_json.concerns)
    for s in as_json.scores:
        z = as_zip.get(s.concern, s.region)
        assert z is not None and z.ui_score == s.ui_score and z.skin_type == s.skin_type
    assert as_zip.overall is not None and as_zip.skin_age is not None
    # the masks are held in memory, named as score_info.json names them
    assert as_zip.files and not as_json.files
    names = {n.rsplit("/", 1)[-1] for n in as_zip.files}
    assert {s.mask_name for s in as_zip.scores if s.mask_name} <= names
    assert all(body.startswith(PNG) for body in as_zip.files.values())
    assert as_zip.to_dict()["files"] == sorted(as_zip.files)


def test_hd_zip_on_v20(client, emu):
    res = client.analyze(HD_IMAGE, hd=True, format="zip", version="2.0")
    assert emu.task(res.task_id)["version"] == "v2.0"
    assert res.get("hd_pore", "nose") is not None
    assert res.get("wrinkle", "forehead") is not None  # SD name finds hd_wrinkle
    assert len(res.files) >= 10


def test_save_masks_of_a_zip_result_writes_its_files(client, emu, tmp_path):
    res = client.analyze(SD_IMAGE, ["pore", "skin_type"], format="zip")
    downloads = len(result_requests(emu))
    written = res.save_masks(tmp_path / "zip")
    assert len(written) == len(res.files) >= 2
    assert all(p.parent == tmp_path / "zip" and p.read_bytes().startswith(PNG)
               for p in written)
    assert len(result_requests(emu)) == downloads  # nothing downloaded again


def test_save_masks_of_a_json_result_downloads_through_the_core(client, emu, tmp_path):
    res = client.analyze(SD_IMAGE, ["wrinkle", "skin_type"])
    written = res.save_masks(tmp_path / "json")
    masks = [p for p in written if p.read_bytes().startswith(PNG)]
    assert len(masks) == 1 + 3  # wrinkle, three skin-type regions
    assert len(written) == len(masks) + 1  # and the resized image
    assert all(p.is_file() and p.parent == tmp_path / "json" for p in written)
    downloads = result_requests(emu)
    assert len(downloads) >= len(written)
    assert not any(r["authorization"] for r in downloads)
    assert emu.counters["auth_on_results"] == 0


def test_fetch_masks_returns_the_files(client, emu, tmp_path):
    job = client.submit(SD_IMAGE, ["pore", "redness"])
    res = job.wait()
    fetched = client.fetch_masks(job)
    assert fetched.scores == res.scores and fetched.task_id == res.task_id
    masks = {n: b for n, b in fetched.files.items() if b.startswith(PNG)}
    assert len(masks) == 2
    # into a folder: on disk only, the same names and bytes
    again = client.fetch_masks(res, tmp_path / "out")
    assert not again.files and set(again.paths) == set(fetched.files)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(again.paths)
    assert all(again.paths[n].read_bytes() == fetched.files[n] for n in again.paths)
    with pytest.raises(TypeError):
        client.fetch_masks("not a result")


def test_masks_need_the_client_open(emu, tmp_path):
    with skinanalysis.Client(emu.api_key, base_url=emu.base_url, **FAST) as c:
        res = c.analyze(SD_IMAGE, ["pore"])
        zipped = c.analyze(SD_IMAGE, ["pore"], format="zip")
    with pytest.raises(skinanalysis.UsageError, match="closed"):
        res.save_masks(tmp_path)
    assert zipped.save_masks(tmp_path)  # held in memory: no client needed
    with open(os.path.join(EXAMPLES, "task-status-success-json-sd.json"), "rb") as fh:
        parsed = skinanalysis.Result.from_json(fh.read())
    assert any(s.mask_urls for s in parsed.scores)
    with pytest.raises(skinanalysis.UsageError, match="no client|not produced"):
        parsed.mask_files()


def test_expired_urls_are_refreshed(make_emulator, tmp_path):
    emu = make_emulator(task_seconds=0, url_ttl=1)
    with skinanalysis.Client(emu.api_key, base_url=emu.base_url, **FAST) as c:
        res = c.analyze(SD_IMAGE, ["wrinkle"])
        polls = sum(r["endpoint"] == "task_status" for r in emu.log)
        time.sleep(1.3)
        written = res.save_masks(tmp_path)
    assert any(p.read_bytes().startswith(PNG) for p in written)
    refused = [r for r in result_requests(emu) if r["status"] == 403]
    assert refused, "the first download was refused as expired"
    assert sum(r["endpoint"] == "task_status" for r in emu.log) > polls  # fresh URLs


@pytest.mark.parametrize("fault", ["malformed_json", "truncated_json"])
def test_a_corrupt_zip_once_is_retried_or_a_zip_error(client, emu, fault):
    emu.set_scenario({"faults": [{"endpoint": "result", "nth": [1], "fault": fault}]})
    try:
        res = client.analyze(SD_IMAGE, ["pore"], format="zip")
    except skinanalysis.ZipError as exc:
        assert exc.task_id is None or isinstance(exc.task_id, str)
    else:
        assert res.files and res.get("pore") is not None
        assert len(result_requests(emu)) >= 2


def test_a_zip_corrupt_every_time_is_a_zip_error(client, emu):
    emu.set_scenario({"faults": [{"endpoint": "result", "fault": "malformed_json"}]})
    with pytest.raises(skinanalysis.ZipError) as info:
        client.analyze(SD_IMAGE, ["pore"], format="zip")
    # the task itself succeeded (and is billed): the error names it
    assert info.value.task_id and "billed" in str(info.value)


def test_composite_has_the_source_size(client, emu, tmp_path):
    _fmt, width, height = _core.probe_image(SD_IMAGE)
    zipped = client.analyze(SD_IMAGE, ["pore", "wrinkle"], format="zip")
    out = zipped.composite(SD_IMAGE, tmp_path / "zip.png")
    assert out == tmp_path / "zip.png"
    assert png_size(out.read_bytes()) == (width, height)
    res = client.analyze(SD_IMAGE, ["pore", "wrinkle"])
    with open(SD_IMAGE, "rb") as fh:
        out = res.composite(fh.read(), tmp_path / "json.png")
    assert png_size(out.read_bytes()) == (width, height)
    # None: the analysed image (the path this result was submitted with)
    assert png_size(zipped.composite(None, tmp_path / "auto.png").read_bytes()) == (
        width, height)
    with pytest.raises(skinanalysis.ImageDecodeError):
        zipped.composite(b"\xff\xd8\xff not a jpeg", tmp_path / "bad.png")


def test_repr_html_shows_the_composite_when_masks_are_in_memory(client, emu):
    zipped = client.analyze(SD_IMAGE, ["pore"], format="zip")
    page = zipped._repr_html_()
    assert '<img class="sa-composite skinanalysis-composite" src="data:image/png;base64,' in page
    res = client.analyze(SD_IMAGE, ["pore"])
    downloads = len(result_requests(emu))
    page = res._repr_html_()
    assert "data:image/png" not in page and "<img src=\"http://" in page
    assert len(result_requests(emu)) == downloads  # a repr never downloads


def test_async_fetch_masks(emu, tmp_path):
    async def main():
        async with skinanalysis.AsyncClient(emu.api_key, base_url=emu.base_url,
                                            **FAST) as c:
            res = await c.analyze(SD_IMAGE, ["pore"])
            fetched = await c.fetch_masks(res, tmp_path)
            with pytest.raises(skinanalysis.UsageError, match="await"):
                res.save_masks(tmp_path / "sync")
            zipped = await c.analyze(SD_IMAGE, ["pore"], format="zip")
            return fetched, zipped

    fetched, zipped = asyncio.run(main())
    assert not fetched.files
    assert any(p.read_bytes().startswith(PNG) for p in fetched.paths.values())
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(fetched.paths)
    assert zipped.files


def test_notify_polls_a_waiting_job_now(make_emulator):
    emu = make_emulator(task_seconds=30)
    with skinanalysis.Client(emu.api_key, base_url=emu.base_url,
                             poll_interval=20, max_poll_interval=20,
                             close_timeout=10) as c:
        job = c.submit(SD_IMAGE, ["pore"])
        end = time.monotonic() + 10
        while job.status != "poll_wait" and time.monotonic() < end:
            c.step(0.05)
        assert job.status == "poll_wait" and job.task_id
        assert c.notify("no-such-task") == 0
        polls = job.polls
        emu.finish_task(job.task_id)
        assert c.notify(job.task_id) == 1
        started = time.monotonic()
        res = job.wait(10)
        assert time.monotonic() - started < 5  # not the 20 s poll interval
        assert job.polls == polls + 1 and res.get("pore") is not None
    with pytest.raises(skinanalysis.UsageError):
        c.notify(job.task_id)

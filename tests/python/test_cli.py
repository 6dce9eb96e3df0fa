"""The skinanalysis command line, run as ``python -m skinanalysis``."""

import csv
import json
import shutil
import subprocess
import sys

import pytest

from .sa_helpers import (NOT_IMAGE, PNG_IMAGE, SD_IMAGE, SMALL_IMAGE,
                        python_path_env)


@pytest.fixture
def cli(emu):
    env = python_path_env()
    env["YOUCAM_API_KEY"] = emu.api_key
    env["SKINANALYSIS_BASE_URL"] = emu.base_url

    def run(*args, timeout=60):
        return subprocess.run([sys.executable, "-m", "skinanalysis", "--poll-interval",
                               "0.05", *args], env=env,
                              capture_output=True, text=True, timeout=timeout)
    return run


@pytest.fixture
def photo_dir(tmp_path):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(SD_IMAGE, folder / "a.jpg")
    shutil.copy(PNG_IMAGE, folder / "b.PNG")
    shutil.copy(SD_IMAGE, folder / "sub" / "c.jpeg")
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_analyze_prints_a_table(cli):
    r = cli("analyze", SD_IMAGE, "--actions", "wrinkle,skin_type")
    assert r.returncode == 0, r.stderr
    assert "overall" in r.stdout and "skin age" in r.stdout
    lines = r.stdout.splitlines()
    assert any(line.split()[:2] == ["wrinkle", "whole"] for line in lines)
    assert any(line.split()[:2] == ["skin_type", "t_zone"] for line in lines)


def test_analyze_json(cli):
    r = cli("analyze", SD_IMAGE, PNG_IMAGE, "--actions", "pore", "--json")
    assert r.returncode == 0, r.stderr
    records = [json.loads(line) for line in r.stdout.splitlines()]
    assert [rec["image"] for rec in records] == [SD_IMAGE, PNG_IMAGE]
    assert all(rec["ok"] and rec["result"]["scores"][0]["concern"] == "pore"
               for rec in records)


def test_analyze_zip_and_save_masks(cli, tmp_path):
    r = cli("analyze", SD_IMAGE, "--actions", "pore", "--format", "zip",
            "--save-masks", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    assert "pore" in r.stdout
    masks = list((tmp_path / "out" / "portrait_sd").glob("*.png"))
    assert masks and all(p.read_bytes().startswith(b"\x89PNG") for p in masks)


def test_analyze_json_and_save_masks(cli, tmp_path):
    r = cli("analyze", SD_IMAGE, "--actions", "pore,redness", "--save-masks",
            str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    masks = [p for p in (tmp_path / "out" / "portrait_sd").iterdir()
             if p.read_bytes().startswith(b"\x89PNG")]
    assert len(masks) == 2


def test_analyze_exit_codes(cli, emu):
    r = cli("analyze", NOT_IMAGE)
    assert r.returncode == 2 and "ValidationError" in r.stderr
    r = cli("analyze", SD_IMAGE, "--actions", "wrinkles")
    assert r.returncode == 2 and "did you mean" in r.stderr
    emu.queue_engine_error("error_no_face")
    r = cli("analyze", SD_IMAGE, "--actions", "pore")
    assert r.returncode == 1 and "EngineError" in r.stderr
    r = cli("analyze")
    assert r.returncode == 2
    r = cli("frobnicate")
    assert r.returncode == 2


def test_analyze_without_a_key(cli, monkeypatch):
    r = subprocess.run([sys.executable, "-m", "skinanalysis", "analyze", SD_IMAGE],
                       env=dict(python_path_env(), YOUCAM_API_KEY=""),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "YOUCAM_API_KEY" in r.stderr


def test_cost(cli):
    r = cli("cost", "wrinkle", "pore")
    assert (r.returncode, r.stdout.strip()) == (0, "9 units (SD, 2 actions)")
    assert cli("cost", "hd").stdout.startswith("22 units (HD, 16 actions)")
    assert cli("cost", "wrinkle,hd_pore").returncode == 2


def test_batch_jsonl_and_resume(cli, photo_dir, emu):
    out = photo_dir.parent / "results.jsonl"
    r = cli("batch", str(photo_dir), "--out", str(out), "--actions", "pore",
            "--no-progress")
    assert r.returncode == 0, r.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(rec["image"] for rec in records) == ["a.jpg", "b.PNG"]
    assert all(rec["ok"] for rec in records)
    created = emu.counters["tasks_created"]

    # a half-written last line (an interrupted run) is dropped, then resumed
    with out.open("a") as fh:
        fh.write('{"image": "sub/c.jpe')
    r = cli("batch", str(photo_dir), "--out", str(out), "--actions", "pore",
            "--recursive", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "1 analysed" in r.stderr and "2 skipped" in r.stderr
    assert emu.counters["tasks_created"] == created + 1
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(rec["image"] for rec in records) == ["a.jpg", "b.PNG", "sub/c.jpeg"]

    r = cli("batch", str(photo_dir), "--out", str(out), "--recursive")
    assert r.returncode == 0 and "nothing to do" in r.stderr


def test_batch_csv_with_a_failure(cli, photo_dir, emu):
    shutil.copy(SMALL_IMAGE, photo_dir / "tiny.jpg")
    out = photo_dir.parent / "results.csv"
    r = cli("batch", str(photo_dir), "--out", str(out), "--actions", "pore,skin_type",
            "--no-progress")
    assert r.returncode == 2, r.stderr  # the only failure is a validation error
    rows = list(csv.DictReader(out.open(newline="")))
    by_image = {}
    for row in rows:
        by_image.setdefault(row["image"], []).append(row)
    assert set(by_image) == {"a.jpg", "b.PNG", "tiny.jpg"}
    assert len(by_image["a.jpg"]) == 4  # pore + three skin-type regions
    assert by_image["tiny.jpg"][0]["ok"] == "false"
    assert by_image["tiny.jpg"][0]["error_type"] == "ValidationError"
    r = cli("batch", str(photo_dir), "--out", str(out), "--actions", "pore",
            "--retry-failed", "--no-progress")
    assert "1 failed" in r.stderr and "2 skipped" in r.stderr


def test_batch_dry_run_sends_nothing(cli, photo_dir, emu):
    shutil.copy(NOT_IMAGE, photo_dir / "broken.jpg")
    r = cli("batch", str(photo_dir), "--dry-run", "--out", str(photo_dir / "x.jsonl"))
    assert r.returncode == 2
    assert "broken.jpg" in r.stdout and "2 to analyse" in r.stdout
    assert "16 units each, 32 units in all" in r.stdout
    # only the balance is read (issue 14: the cost against the balance)
    assert [e["endpoint"] for e in emu.log] == ["credit"]
    assert "balance: 100000 units available; enough" in r.stdout
    r = cli("batch", str(photo_dir / "a.jpg"))
    assert r.returncode == 2


def test_emulator_subcommand():
    proc = subprocess.Popen([sys.executable, "-m", "skinanalysis", "emulator", "--port",
                             "0", "--task-seconds", "0"], env=python_path_env(),
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:")
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
        proc.stdout.close()


def test_console_script_entry_point():
    from skinanalysis import cli
    assert cli.main(["cost", "pore"]) == 0

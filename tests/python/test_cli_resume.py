"""``skinanalysis batch --retry-failed`` resumes the tasks that exist by
their id instead of creating (and paying for) new ones (issue 12)."""

import csv
import json
import time

import skinanalysis
from .sa_helpers import FAST
from .test_cli import cli, photo_dir  # noqa: F401  (fixtures)


def abandoned_task(emu, image):
    """A task created for image and left unpolled (a run that died)."""
    with skinanalysis.Client(emu.api_key, base_url=emu.base_url, **FAST) as c:
        job = c.submit(str(image), ["pore"])
        end = time.monotonic() + 10
        while not job.task_id and time.monotonic() < end:
            c.step(0.01)
        assert job.task_id
        job.abandon()
        return job.task_id


def last_records(path):
    records = {}
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        records[rec["image"]] = rec
    return records


def new_requests(emu, since):
    return [r for r in emu.log[since:] if r["path"].startswith("/s2s/")
            or r["endpoint"] == "upload"]


def test_retry_failed_resumes_records_whose_task_exists(cli, photo_dir, emu):  # noqa: F811
    out = photo_dir.parent / "results.jsonl"
    task_a = abandoned_task(emu, photo_dir / "a.jpg")
    task_c = abandoned_task(emu, photo_dir / "sub" / "c.jpeg")
    with out.open("w") as fh:
        # polling gave up (an old client, a 503 storm): the task exists
        fh.write(json.dumps({"image": "a.jpg", "ok": False, "error": {
            "type": "ServerError", "message": "status poll: HTTP 503 (gave up after "
            "7 attempts)", "status": 503, "task_id": task_a,
            "status_name": "server"}}) + "\n")
        # the task's own final outcome: a new task is needed
        fh.write(json.dumps({"image": "b.PNG", "ok": False, "error": {
            "type": "EngineError", "message": "error_no_face", "code": "error_no_face",
            "task_id": "an-old-task", "status_name": "engine"}}) + "\n")
        # the client went away (a second Ctrl-C): the task exists
        fh.write(json.dumps({"image": "sub/c.jpeg", "ok": False, "error": {
            "type": "CancelledError", "message": "abandoned", "task_id": task_c,
            "status_name": "cancelled"}}) + "\n")
    created = emu.counters["tasks_created"]
    since = len(emu.log)

    r = cli("batch", str(photo_dir), "--out", str(out), "--actions", "pore",
            "--recursive", "--retry-failed", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "3 analysed, 0 failed" in r.stderr and "2 task(s) resumed by id" in r.stderr
    records = last_records(out)
    assert records["a.jpg"]["ok"] and records["a.jpg"]["task_id"] == task_a
    assert records["sub/c.jpeg"]["ok"] and records["sub/c.jpeg"]["task_id"] == task_c
    assert records["b.PNG"]["ok"] and records["b.PNG"]["task_id"] not in (task_a, task_c,
                                                                         "an-old-task")
    # the emulator saw one new task (b.PNG) and polls of the resumed ones
    assert emu.counters["tasks_created"] == created + 1
    seen = new_requests(emu, since)
    assert [r["endpoint"] for r in seen].count("task_create") == 1
    assert [r["endpoint"] for r in seen].count("file_create") == 1
    assert [r["endpoint"] for r in seen].count("upload") == 1
    polled = {r["task_id"] for r in seen if r["endpoint"] == "task_status"}
    assert {task_a, task_c} <= polled

    # a run again: nothing left to do
    r = cli("batch", str(photo_dir), "--out", str(out), "--recursive", "--retry-failed")
    assert r.returncode == 0 and "nothing to do" in r.stderr


def test_retry_failed_with_csv_and_records_without_a_task(cli, photo_dir, emu):  # noqa: F811
    out = photo_dir.parent / "results.csv"
    task_a = abandoned_task(emu, photo_dir / "a.jpg")
    with out.open("w", newline="") as fh:
        w = csv.DictWriter(fh, ["image", "ok", "task_id", "error_type", "error"])
        w.writeheader()
        # a trickled answer timed out every poll: resumed
        w.writerow({"image": "a.jpg", "ok": "false", "task_id": task_a,
                    "error_type": "RequestTimeoutError", "error": "status poll: timed out"})
        # an ambiguous create without an id: nothing to resume, a new task
        w.writerow({"image": "b.PNG", "ok": "false", "task_id": "",
                    "error_type": "AmbiguousTaskError", "error": "task create: reset"})
    created = emu.counters["tasks_created"]

    r = cli("batch", str(photo_dir), "--out", str(out), "--actions", "pore",
            "--retry-failed", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "1 task(s) resumed by id" in r.stderr
    rows = {}
    for row in csv.DictReader(out.open(newline="")):
        rows[row["image"]] = row
    assert rows["a.jpg"]["ok"] == "true" and rows["a.jpg"]["task_id"] == task_a
    assert rows["b.PNG"]["ok"] == "true" and rows["b.PNG"]["task_id"] != task_a
    assert emu.counters["tasks_created"] == created + 1


def test_a_resumed_task_that_is_gone_is_recorded_and_retried_anew(cli, photo_dir,  # noqa: F811
                                                                  emu):
    out = photo_dir.parent / "results.jsonl"
    out.write_text(json.dumps({"image": "a.jpg", "ok": False, "error": {
        "type": "TransportError", "message": "gave up", "task_id": "unknown-task"}}) + "\n")
    r = cli("batch", str(photo_dir), "--out", str(out), "--actions", "pore",
            "--retry-failed", "--no-progress")
    assert r.returncode == 1
    records = last_records(out)
    assert records["a.jpg"]["error"]["type"] == "TaskExpiredError"
    assert records["b.PNG"]["ok"]
    assert emu.counters["tasks_created"] == 1  # b.PNG only
    # expired is final: the next --retry-failed creates a new task for it
    r = cli("batch", str(photo_dir), "--out", str(out), "--actions", "pore",
            "--retry-failed", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "resumed by id" not in r.stderr
    assert last_records(out)["a.jpg"]["ok"]
    assert emu.counters["tasks_created"] == 2


def test_without_retry_failed_nothing_is_resumed(cli, photo_dir, emu):  # noqa: F811
    out = photo_dir.parent / "results.jsonl"
    task_a = abandoned_task(emu, photo_dir / "a.jpg")
    out.write_text(json.dumps({"image": "a.jpg", "ok": False, "error": {
        "type": "ServerError", "message": "gave up", "task_id": task_a}}) + "\n")
    since = len(emu.log)
    r = cli("batch", str(photo_dir), "--out", str(out), "--actions", "pore",
            "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "1 skipped" in r.stderr and "resumed by id" not in r.stderr
    assert task_a not in {r["task_id"] for r in new_requests(emu, since)}

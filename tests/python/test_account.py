"""Balance, price list, delete and delete_after (issue 14 part 1), against
the in-process emulator."""

import asyncio
import json
import subprocess
import sys

import pytest

import skinanalysis
from skinanalysis import AuthError, BadRequestError, TaskExpiredError, ValidationError

from .sa_helpers import FAST, SD_IMAGE, SECRET_KEY, python_path_env

SD4 = ["wrinkle", "pore", "texture", "acne"]


def test_credit_sums_api_grants(emu, client):
    emu.set_grants(emu.api_key, [("ApiSubscription", 20), ("ApiPayAsYouGo", 50),
                                 ("WebSubscription", 30), ("ApiSubscription", 5)])
    credit = client.credit()
    assert isinstance(credit, skinanalysis.Credit)
    assert credit.available == 75
    assert credit.by_type == {"ApiSubscription": 25, "ApiPayAsYouGo": 50,
                              "WebSubscription": 30}
    assert [g.type for g in credit.grants][:2] == ["ApiSubscription", "ApiPayAsYouGo"]
    assert "expired_date" in credit.grants[0].raw       # undocumented fields kept
    assert credit.covers(75) and not credit.covers(76)
    client.analyze(SD_IMAGE, SD4)                       # 9 units
    assert client.credit().available == 66
    assert json.dumps(credit.to_dict())


def test_price_list_all_pages(emu, client):
    skus = client.price_list()
    assert len(skus) == 22                              # two pages of 20
    assert all(isinstance(s, skinanalysis.Sku) for s in skus)
    sa = [s for s in skus if s.feature == "skin-analysis"
          and s.run_task_url.startswith("/s2s/v2.0/")]
    assert sorted(s.amount for s in sa) == sorted([9, 12, 14, 16, 12, 16, 20, 22])
    assert skus[0].proc_unit == "image" and skus[0].raw["unit"] == "unit"
    assert emu.counters["requests"]["feature_cost"] == 2


def test_delete_and_errors(emu, client):
    result = client.analyze(SD_IMAGE, SD4)
    client.delete(result.task_id)
    assert emu.counters["tasks_deleted"] == 1
    with pytest.raises(TaskExpiredError):
        client.resume(result.task_id)
    with pytest.raises(TaskExpiredError) as info:
        client.delete(result.task_id)
    assert info.value.code == "InvalidTaskId"
    with pytest.raises(ValidationError):
        client.delete("not an id!")
    with pytest.raises(TypeError):
        client.delete(5)
    assert emu.counters["requests"].get("task_delete") == 2   # nothing sent for bad ids


def test_delete_running_task_is_operation_invalid(make_emulator):
    emu = make_emulator(task_seconds=30)
    with skinanalysis.Client(emu.api_key, base_url=emu.base_url, **FAST) as client:
        job = client.submit(SD_IMAGE, SD4)
        while not job.task_id:
            client.step(0.05)
        with pytest.raises(BadRequestError) as info:
            client.delete(job.task_id)
        assert info.value.code == "OperationInvalid"
        job.abandon()


def test_bad_key_is_auth_error_without_the_key(emu):
    with skinanalysis.Client("sk-wrong-" + SECRET_KEY, base_url=emu.base_url, **FAST) as c:
        with pytest.raises(AuthError) as info:
            c.credit()
    assert SECRET_KEY not in str(info.value)


def test_delete_after(emu, client):
    result = client.analyze(SD_IMAGE, SD4, delete_after=True)
    assert result.deleted and result.delete_error is None
    assert emu.counters["tasks_deleted"] == 1
    assert result.to_dict()["deleted"] is True
    plain = client.analyze(SD_IMAGE, SD4)
    assert not plain.deleted and "deleted" not in plain.to_dict()


def test_delete_after_zip_keeps_masks(emu, client):
    result = client.analyze(SD_IMAGE, SD4, format="zip", delete_after=True)
    assert result.deleted and result.files                 # masks in hand first
    assert emu.counters["tasks_deleted"] == 1


def test_delete_after_failure_is_reported_not_raised(emu, client):
    emu.set_scenario([{"endpoint": "task_delete", "fault": "respond", "status": 400,
                       "body": {"status": 400, "error": "not supported",
                                "error_code": "OperationNotSupport"}}])
    result = client.analyze(SD_IMAGE, SD4, delete_after=True)
    assert result.scores                                   # the analysis succeeded
    assert not result.deleted
    assert isinstance(result.delete_error, BadRequestError)
    assert result.delete_error.code == "OperationNotSupport"
    assert result.to_dict()["delete_error"]


def test_fetch_masks_delete_after(emu, client):
    result = client.analyze(SD_IMAGE, SD4)
    fetched = client.fetch_masks(result, delete_after=True)
    assert fetched.files and fetched.deleted
    assert emu.counters["tasks_deleted"] == 1


def test_delete_after_is_sent_by_the_core(emu, client):
    job = client.submit(SD_IMAGE, SD4, delete_after=True)
    client.run(10)
    # the job ended after its delete: done before anyone read the result
    assert job.done() and emu.counters["tasks_deleted"] == 1
    assert [e["endpoint"] for e in emu.log][-1] == "task_delete"
    assert job.result().deleted


def test_analyze_many_delete_after(emu, client):
    out = client.analyze_many([SD_IMAGE] * 3, SD4, progress=False, delete_after=True)
    assert all(r.deleted for r in out)
    assert emu.counters["tasks_deleted"] == 3


def test_async_account_and_delete_after(emu):
    async def main():
        async with skinanalysis.AsyncClient(emu.api_key, base_url=emu.base_url,
                                            **FAST) as c:
            credit = await c.credit()
            skus = await c.price_list()
            result = await c.analyze(SD_IMAGE, SD4, delete_after=True)
            with pytest.raises(TaskExpiredError):
                await c.delete(result.task_id)
            return credit, skus, result

    credit, skus, result = asyncio.run(main())
    assert credit.available == 100000 and len(skus) == 22
    assert result.deleted and emu.counters["tasks_deleted"] == 1


def _cli(emu, *args):
    env = python_path_env()
    env["YOUCAM_API_KEY"] = emu.api_key
    return subprocess.run([sys.executable, "-m", "skinanalysis", "--base-url", emu.base_url,
                           *args], capture_output=True, text=True, env=env, timeout=120)


def test_cli_credit(emu):
    emu.set_grants(emu.api_key, [("ApiSubscription", 40), ("Web", 3)])
    out = _cli(emu, "credit")
    assert out.returncode == 0, out.stderr
    assert "40 units available" in out.stdout and "Web" in out.stdout
    out = _cli(emu, "credit", "--json")
    assert json.loads(out.stdout)["available"] == 40


def _folder(tmp_path, n):
    import shutil
    for i in range(n):
        shutil.copy(SD_IMAGE, tmp_path / ("face%d.jpg" % i))
    return tmp_path


def test_cli_batch_dry_run_shows_cost_against_balance(emu, tmp_path):
    (tmp_path / "in").mkdir()
    folder = _folder(tmp_path / "in", 3)
    emu.set_units(emu.api_key, 20)
    out = _cli(emu, "batch", str(folder), "--actions", ",".join(SD4), "--dry-run",
               "--out", str(tmp_path / "r.jsonl"))
    assert "27 units in all" in out.stdout
    assert "balance: 20 units" in out.stdout and "short by 7" in out.stdout


def test_cli_batch_refuses_without_balance_unless_partial(emu, tmp_path):
    (tmp_path / "in").mkdir()
    folder = _folder(tmp_path / "in", 3)
    emu.set_units(emu.api_key, 20)
    res = tmp_path / "r.jsonl"
    out = _cli(emu, "batch", str(folder), "--actions", ",".join(SD4), "--out", str(res),
               "--no-progress")
    assert out.returncode == 2 and "--partial" in out.stderr
    assert emu.counters["tasks_created"] == 0 and not res.exists()
    out = _cli(emu, "batch", str(folder), "--actions", ",".join(SD4), "--out", str(res),
               "--no-progress", "--partial", "--delete-after")
    assert out.returncode == 0, out.stderr
    lines = [json.loads(x) for x in res.read_text().splitlines()]
    assert len(lines) == 2 and all(x["ok"] for x in lines)   # 2 x 9 <= 20
    assert emu.counters["tasks_created"] == 2 and emu.counters["tasks_deleted"] == 2
    assert "1 left for lack of units" in out.stderr


def test_cli_analyze_delete_after(emu):
    out = _cli(emu, "analyze", SD_IMAGE, "--actions", ",".join(SD4), "--json",
               "--delete-after")
    assert out.returncode == 0, out.stderr
    rec = json.loads(out.stdout)
    assert rec["ok"] and rec["result"]["deleted"] is True
    assert emu.counters["tasks_deleted"] == 1


def test_cli_analyze_delete_after_html_and_out(emu, tmp_path):
    """--html and --save-masks download a json result's masks: the task is
    deleted only after them, and the --out record says it was."""
    page, rec = tmp_path / "v.html", tmp_path / "r.jsonl"
    out = _cli(emu, "analyze", SD_IMAGE, "--actions", ",".join(SD4), "--delete-after",
               "--html", str(page), "--out", str(rec), "--save-masks", str(tmp_path / "m"))
    assert out.returncode == 0, out.stderr
    assert "data:image/png;base64," in page.read_text()
    assert len(list((tmp_path / "m" / "portrait_sd").glob("*.png"))) >= 3
    assert json.loads(rec.read_text())["result"]["deleted"] is True
    assert emu.counters["tasks_deleted"] == 1


def test_cli_batch_save_masks_then_delete(emu, tmp_path):
    (tmp_path / "in").mkdir()
    folder = _folder(tmp_path / "in", 2)
    res = tmp_path / "r.jsonl"
    out = _cli(emu, "batch", str(folder), "--actions", ",".join(SD4), "--out", str(res),
               "--no-progress", "--save-masks", str(tmp_path / "m"), "--delete-after")
    assert out.returncode == 0, out.stderr
    assert "(delete)" not in out.stderr and "Error" not in out.stderr
    for i in range(2):
        assert len(list((tmp_path / "m" / ("face%d" % i)).glob("*.png"))) >= 3
    lines = [json.loads(x) for x in res.read_text().splitlines()]
    assert [x["result"]["deleted"] for x in lines] == [True, True]
    assert emu.counters["tasks_deleted"] == 2


def test_cli_batch_csv_says_how_each_delete_went(emu, tmp_path):
    """The CSV output carries deleted / delete_error as the JSON Lines does;
    appended to a CSV of the older columns, it keeps that file's header."""
    import csv
    (tmp_path / "in").mkdir()
    folder = _folder(tmp_path / "in", 2)
    res = tmp_path / "r.csv"
    emu.set_scenario([{"endpoint": "task_delete", "fault": "respond", "status": 400,
                       "times": 1,
                       "body": {"status": 400, "error": "not supported",
                                "error_code": "OperationNotSupport"}}])
    out = _cli(emu, "batch", str(folder), "--actions", ",".join(SD4), "--out", str(res),
               "--no-progress", "--delete-after")
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(res.open(newline="")))
    per_image = {r["image"]: (r["deleted"], r["delete_error"]) for r in rows}
    assert sorted(v[0] for v in per_image.values()) == ["false", "true"], per_image
    failed = [v[1] for v in per_image.values() if v[0] == "false"][0]
    assert "not supported" in failed
    assert all(v[1] == "" for v in per_image.values() if v[0] == "true")
    assert emu.counters["tasks_deleted"] == 1

    old = tmp_path / "old.csv"
    old.write_text("image,ok,task_id,concern,region,ui_score,raw_score,skin_type,overall,"
                   "skin_age,error_type,error\n", encoding="utf-8")
    out = _cli(emu, "batch", str(folder), "--actions", ",".join(SD4), "--out", str(old),
               "--no-progress")
    assert out.returncode == 0, out.stderr
    with old.open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert all(len(r) == 12 for r in rows) and len(rows) > 2


def test_cli_batch_balance_unreadable(emu, tmp_path):
    (tmp_path / "in").mkdir()
    folder = _folder(tmp_path / "in", 1)
    res = tmp_path / "r.jsonl"
    emu.set_scenario([{"endpoint": "credit", "fault": "http_503"}])
    out = _cli(emu, "batch", str(folder), "--actions", ",".join(SD4), "--out", str(res),
               "--no-progress")
    assert out.returncode == 0, out.stderr
    assert "going on without checking it" in out.stderr
    assert emu.counters["tasks_created"] == 1
    env_out = subprocess.run(
        [sys.executable, "-m", "skinanalysis", "--base-url", emu.base_url, "--api-key",
         "sk-bad-key", "batch", str(folder), "--out", str(tmp_path / "s.jsonl")],
        capture_output=True, text=True, env=python_path_env(), timeout=120)
    assert env_out.returncode == 1 and "AuthError" in env_out.stderr

"""Account endpoints of the emulator (shared API.md section 17.1): balance as
typed grants drawn down by the unit table, the paged price list, and task
delete with its documented errors."""

import requests

from conftest import KEY, Api, fixture_bytes

SD = ["wrinkle", "pore", "texture", "acne"]


def _get(emu, path, key=KEY):
    resp = requests.get(emu.base_url + path, headers={"Authorization": "Bearer " + key})
    return resp.status_code, resp.json()


def _delete(emu, body, key=KEY, raw=None):
    resp = requests.post(emu.base_url + "/s2s/v2.0/task/delete",
                         headers={"Authorization": "Bearer " + key},
                         json=body if raw is None else None, data=raw)
    return resp.status_code, resp.json()


def _control(emu, method, path, body=None):
    resp = requests.request(method, emu.base_url + "/_control/" + path, json=body)
    return resp.status_code, resp.json()


def test_credit_grants_and_drawdown(make_emu, spec, sd_jpeg):
    emu = make_emu(units=20, grants="ApiPayAsYouGo:50,WebSubscription:30")
    status, body = _get(emu, "/s2s/v1.0/client/credit")
    assert status == 200
    entries = body["results"]
    assert [(e["type"], e["amount"]) for e in entries] == [
        ("ApiSubscription", 20), ("ApiPayAsYouGo", 50), ("WebSubscription", 30)]
    assert all(isinstance(e["expired_date"], str) for e in entries)
    assert emu.units() == 70  # only Api* types are spent by the API
    api = Api(emu, spec)
    api.run(sd_jpeg, SD)   # 9 units, from the grant closest to expiry
    api.run(sd_jpeg, SD)
    api.run(sd_jpeg, SD)   # 2 from the subscription, 7 from pay-as-you-go
    amounts = {e["type"]: e["amount"] for e in _get(emu, "/s2s/v1.0/client/credit")[1]["results"]}
    assert amounts == {"ApiSubscription": 0, "ApiPayAsYouGo": 43, "WebSubscription": 30}
    assert emu.units() == 43


def test_credit_insufficiency_counts_only_api_grants(make_emu, spec, sd_jpeg):
    emu = make_emu(units=0, grants="WebSubscription:1000")
    api = Api(emu, spec)
    file_id = api.upload(sd_jpeg)
    status, out = api.create_task({"src_file_id": file_id, "dst_actions": SD})
    assert status == 400 and out["error_code"] == "CreditInsufficiency"
    assert emu.counters["tasks_created"] == 0


def test_credit_bad_key(emu):
    status, body = _get(emu, "/s2s/v1.0/client/credit", key="wrong")
    assert status == 401


def test_control_credit_sets_grants(emu):
    status, _ = _control(emu, "POST", "credit", {"key": KEY, "grants": [
        {"type": "ApiPayAsYouGo", "amount": 7, "days": 1}, {"type": "Console", "amount": 3}]})
    assert status == 200
    assert emu.units() == 7
    entries = _get(emu, "/s2s/v1.0/client/credit")[1]["results"]
    assert [(e["type"], e["amount"]) for e in entries] == [("ApiPayAsYouGo", 7), ("Console", 3)]
    assert _control(emu, "POST", "credit", {"key": KEY, "grants": [{"type": 1}]})[0] == 400
    assert _control(emu, "POST", "credit", {"key": "nokey", "grants": []})[0] == 400
    # /_control/units keeps non-Api grants and replaces the Api ones
    assert _control(emu, "POST", "units", {"key": KEY, "units": 5})[0] == 200
    entries = _get(emu, "/s2s/v1.0/client/credit")[1]["results"]
    assert [(e["type"], e["amount"]) for e in entries] == [("ApiSubscription", 5), ("Console", 3)]
    emu.set_grants(KEY, [("ApiSubscription", 1), ("ApiPayAsYouGo", 2)])
    assert emu.units() == 3 and len(emu.grants()) == 2


def test_feature_cost_pages(emu):
    from emulator import catalog
    skus, token, pages = [], None, 0
    while True:
        path = "/s2s/v2.0/credit/feature-cost?page_size=4"
        if token:
            path += "&starting_token=" + token
        status, body = _get(emu, path)
        assert status == 200, body
        page = body["result"]
        assert len(page["skus"]) <= 4
        skus += page["skus"]
        pages += 1
        token = page["next_token"]
        if token is None:
            break
    assert skus == catalog.SKUS and pages == (len(catalog.SKUS) + 3) // 4
    for sku in skus:
        assert set(sku) == {"description", "amount", "unit", "proc_unit", "run_task_url"}
    v20 = [s for s in skus if s["run_task_url"] == "/s2s/v2.0/task/skin-analysis"]
    sd = [s["amount"] for s in v20 if " SD," in s["description"]]
    hd = [s["amount"] for s in v20 if " HD," in s["description"]]
    assert sd == [9, 12, 14, 16] and hd == [12, 16, 20, 22]
    first = _get(emu, "/s2s/v2.0/credit/feature-cost")[1]["result"]  # page_size 20
    assert len(first["skus"]) == 20 and first["next_token"]


def test_feature_cost_bad_page_size_and_token(emu):
    for bad in ("0", "21", "x", "-1", ""):
        status, body = _get(emu, "/s2s/v2.0/credit/feature-cost?page_size=" + bad)
        assert status == 400 and body["error_code"] == "InvalidParameters", bad
    status, body = _get(emu, "/s2s/v2.0/credit/feature-cost?page_size=2&starting_token=2.abc")
    assert status == 400 and body["error_code"] == "InvalidParameters"


def test_delete_finished_task(emu, spec, sd_jpeg):
    api = Api(emu, spec)
    task_id, final = api.run(sd_jpeg, SD)
    mask_url = final["data"]["results"]["output"][0]["mask_urls"][0] if isinstance(
        final["data"]["results"], dict) and "output" in final["data"]["results"] else None
    status, body = _delete(emu, {"task_id": task_id})
    assert status == 200 and body["status"] == 200
    status, body = api.status(task_id)
    assert status == 400 and body["error"] == "Invalid task ID"
    if mask_url:
        assert requests.get(mask_url).status_code == 404
    status, body = _delete(emu, {"task_id": task_id})
    assert status == 400 and body["error_code"] == "InvalidTaskId"
    assert emu.counters["tasks_deleted"] == 1


def test_delete_masks_404(emu, spec, sd_jpeg):
    api = Api(emu, spec)
    task_id, final = api.run(sd_jpeg, SD, fmt="zip")
    url = final["data"]["results"]["url"]
    assert requests.get(url).status_code == 200
    assert _delete(emu, {"task_id": task_id})[0] == 200
    assert requests.get(url).status_code == 404


def test_delete_errors(make_emu, spec, sd_jpeg):
    emu = make_emu(task_seconds=30)
    api = Api(emu, spec)
    file_id = api.upload(sd_jpeg)
    status, created = api.create_task({"src_file_id": file_id, "dst_actions": SD})
    task_id = created["data"]["task_id"]
    status, body = _delete(emu, {"task_id": task_id})
    assert status == 400 and body["error_code"] == "OperationInvalid"
    assert _delete(emu, {"task_id": "nope"})[1]["error_code"] == "InvalidTaskId"
    assert _delete(emu, {"task_id": task_id}, key="other")[0] == 401
    for bad in ({}, {"task_id": ""}, {"task_id": 5}, {"task_id": task_id, "x": 1}, [task_id]):
        status, body = _delete(emu, bad)
        assert status == 400 and body["error_code"] == "InvalidParameters", bad
    status, body = _delete(emu, None, raw=b"not json")
    assert status == 400 and body["error_code"] == "InvalidParameters"
    emu.finish_task(task_id)
    assert _delete(emu, {"task_id": task_id})[0] == 200


def test_account_endpoints_are_rate_limited(make_emu):
    emu = make_emu(rate_limit=True, rate_qps=2)
    codes = [_get(emu, "/s2s/v1.0/client/credit")[0] for _ in range(4)]
    assert codes.count(429) >= 1 and codes[0] == 200


def test_cli_grants_flag():
    from emulator.config import config_from_args
    cfg = config_from_args(["--units", "5", "--grants", "ApiPayAsYouGo:3:10,Web:2"])
    assert cfg.grant_specs == [("ApiPayAsYouGo", 3, 10.0), ("Web", 2, None)]
    import pytest
    with pytest.raises(ValueError):
        config_from_args(["--grants", "Api"])

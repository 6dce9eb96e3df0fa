"""Task creation (validation, units) and the status life cycle."""


import pytest

from conftest import KEY, Api, example, fixture_bytes

SD = ["wrinkle", "pore", "texture", "acne"]
HD = ["hd_wrinkle", "hd_pore", "hd_texture", "hd_acne"]


@pytest.mark.parametrize("version", ["v2.0", "v2.1"])
def test_create_and_poll_both_versions(api, sd_jpeg, version):
    api.version = version
    file_id = api.upload(sd_jpeg)
    status, body = api.create_task({"src_file_id": file_id, "dst_actions": SD, "format": "json"})
    assert status == 200
    assert set(body) == set(example("task-create-response.json"))
    task_id = body["data"]["task_id"]
    assert len(task_id) == 64 and "+" not in task_id and "/" not in task_id
    final = api.wait(task_id)
    assert final["data"]["task_status"] == "success"


def test_running_then_success(make_emu, spec, sd_jpeg):
    emu = make_emu(task_seconds=0.3, test_clock=True)
    api = Api(emu, spec)
    file_id = api.upload(sd_jpeg)
    _, body = api.create_task({"src_file_id": file_id, "dst_actions": SD})
    task_id = body["data"]["task_id"]
    status, running = api.status(task_id)
    assert status == 200 and running == example("task-status-running.json")
    emu.advance_clock(0.29)    # clock margins cost nothing: no exact float boundaries
    assert api.status(task_id)[1] == running
    emu.advance_clock(0.02)
    status, done = api.status(task_id)
    assert done["data"]["task_status"] == "success"
    assert done["data"]["error"] is None


def test_task_ids_shared_across_versions(api, sd_jpeg):
    api.version = "v2.0"
    file_id = api.upload(sd_jpeg)
    _, body = api.create_task({"src_file_id": file_id, "dst_actions": SD}, version="v2.1")
    assert api.status(body["data"]["task_id"], version="v2.0")[0] == 200


# --- validation -----------------------------------------------------------------------

@pytest.fixture
def file_id(api, sd_jpeg):
    return api.upload(sd_jpeg)


def test_mix_hd_sd(api, file_id):
    status, body = api.create_task({"src_file_id": file_id, "dst_actions": ["wrinkle", "hd_pore"]})
    assert status == 400 and body == example("error-400-mix-hd-sd.json")


def test_unknown_action(api, file_id):
    status, body = api.create_task({"src_file_id": file_id, "dst_actions": ["wrinkle", "abc123"]})
    assert status == 400 and body == example("error-400-unknown-action.json")


@pytest.mark.parametrize("actions", [None, [], "wrinkle", [1], ["wrinkle", None]])
def test_dst_actions_required(api, file_id, actions):
    body = {"src_file_id": file_id}
    if actions is not None:
        body["dst_actions"] = actions
    status, out = api.create_task(body)
    assert status == 400
    assert out == {"status": 400, "error": "Invalid parameter value",
                   "error_code": "InvalidParameters"}


def test_no_source(api):
    status, out = api.create_task({"dst_actions": SD})
    assert status == 400 and out["error_code"] == "InvalidParameters"


@pytest.mark.parametrize("fmt", ["xml", "", 1, None])
def test_bad_format(api, file_id, fmt):
    status, out = api.create_task({"src_file_id": file_id, "dst_actions": SD, "format": fmt})
    assert status == 400 and out["error_code"] == "InvalidParameters"


def test_pf_camera_kit_v20_rejected(api, file_id):
    status, out = api.create_task({"src_file_id": file_id, "dst_actions": SD,
                                   "pf_camera_kit": False}, version="v2.0")
    assert status == 400 and out["error_code"] == "BadRequest"
    assert "pf_camera_kit" in out["error"]


def test_pf_camera_kit_v21_accepted(api, file_id):
    status, _ = api.create_task({"src_file_id": file_id, "dst_actions": SD,
                                 "pf_camera_kit": True}, version="v2.1")
    assert status == 200
    status, out = api.create_task({"src_file_id": file_id, "dst_actions": SD,
                                   "pf_camera_kit": "yes"}, version="v2.1")
    assert status == 400 and out["error_code"] == "InvalidParameters"


def test_unknown_top_level_field(api, file_id):
    status, out = api.create_task({"src_file_id": file_id, "dst_actions": SD, "colour": "red"})
    assert status == 400 and out["error_code"] == "BadRequest" and "colour" in out["error"]


def test_miniserver_args(api, file_id):
    ok = {"enable_mask_overlay": False, "enable_dark_background_hd_pore": True,
          "color_dark_background_hd_pore": "3D3D3D", "opacity_dark_background_hd_pore": 0.4,
          "opacity_dark_background_hd_firmness": 1}
    assert api.create_task({"src_file_id": file_id, "dst_actions": HD,
                            "miniserver_args": ok})[0] == 200
    status, out = api.create_task({"src_file_id": file_id, "dst_actions": HD,
                                   "miniserver_args": {"sharpen": True}})
    assert status == 400 and out["error_code"] == "BadRequest"
    for bad in ({"enable_mask_overlay": "no"}, {"color_dark_background_hd_pore": "#3D3D3D"},
                {"opacity_dark_background_hd_pore": 1.5}, []):
        status, out = api.create_task({"src_file_id": file_id, "dst_actions": HD,
                                       "miniserver_args": bad})
        assert status == 400 and out["error_code"] == "InvalidParameters", bad


def test_documented_requests_accepted(api, file_id, emu):
    body = example("request-task-v21-sd-json.json")
    body["src_file_id"] = file_id
    assert api.create_task(body, version="v2.1")[0] == 200
    body = example("request-task-v20-hd-zip.json")
    assert api.create_task(body, version="v2.0")[0] == 200


def test_unknown_file_id_404(api):
    status, out = api.create_task({"src_file_id": "bm90LWEtZmlsZQ==", "dst_actions": SD})
    assert status == 404
    assert out == {"status": 404, "error": "File not found", "error_code": "InvalidFileId"}


def test_file_of_other_key_404(make_emu, spec, sd_jpeg):
    emu = make_emu(keys="k1,k2")
    a, b = Api(emu, spec, key="k1"), Api(emu, spec, key="k2")
    file_id = a.upload(sd_jpeg)
    assert b.create_task({"src_file_id": file_id, "dst_actions": SD})[0] == 404


def test_never_uploaded_file_fails_later(api):
    status, body = api.file_create(size=1234)
    file_id = body["data"]["files"][0]["file_id"]
    status, created = api.create_task({"src_file_id": file_id, "dst_actions": SD})
    assert status == 200
    final = api.wait(created["data"]["task_id"])
    assert final["data"]["task_status"] == "error"
    assert final["data"]["error"] == "unknown_internal_error"
    assert final["data"]["results"] is None


# --- engine outcomes --------------------------------------------------------------------

def _final(api, data, actions, content_type="image/jpeg"):
    return api.run(data, actions, content_type=content_type)[1]["data"]


def test_png_input(api):
    assert _final(api, fixture_bytes("portrait.png"), SD, "image/png")["task_status"] == "success"


def test_decode_error(api):
    data = _final(api, fixture_bytes("not_an_image.jpg"), SD)
    assert data["task_status"] == "error" and data["error"] == "error_decode_image"
    assert isinstance(data["error_message"], str) and data["error_message"]


def test_below_min_size_sd(api):
    data = _final(api, fixture_bytes("small.jpg"), SD)
    assert data["error"] == "error_below_min_image_size"


def test_below_min_size_hd(api, sd_jpeg, hd_jpeg):
    assert _final(api, sd_jpeg, HD)["error"] == "error_below_min_image_size"
    assert _final(api, hd_jpeg, HD)["task_status"] == "success"


def test_engine_error_flag(make_emu, spec, sd_jpeg):
    api = Api(make_emu(engine_error="error_no_face"), spec)
    _, final = api.run(sd_jpeg, SD)
    assert final == example("task-status-error-no-face.json")


def test_engine_error_per_task(make_emu, spec, sd_jpeg):
    emu = make_emu(task_seconds=5)
    api = Api(emu, spec)
    file_id = api.upload(sd_jpeg)
    task_id = api.create_task({"src_file_id": file_id, "dst_actions": SD})[1]["data"]["task_id"]
    emu.set_engine_error(task_id, "error_lighting_dark", "too dark")
    emu.finish_task(task_id)
    data = api.status(task_id)[1]["data"]
    assert (data["task_status"], data["error"], data["error_message"]) == (
        "error", "error_lighting_dark", "too dark")


def test_engine_error_queue(api, emu, sd_jpeg):
    emu.queue_engine_error("error_pose")
    assert _final(api, sd_jpeg, SD)["error"] == "error_pose"
    assert _final(api, sd_jpeg, SD)["task_status"] == "success"


def test_src_file_url_public(api, emu, sd_jpeg):
    url = emu.host_public("me.jpg", sd_jpeg, "image/jpeg")
    _, body = api.create_task({"src_file_url": url, "dst_actions": SD, "format": "json"})
    assert api.wait(body["data"]["task_id"])["data"]["task_status"] == "success"


def test_src_file_url_storage(api, sd_jpeg):
    slot = api.upload_slot(sd_jpeg)
    import requests
    req = slot["requests"][0]
    assert requests.put(req["url"], data=sd_jpeg, headers=req["headers"]).status_code == 200
    _, body = api.create_task({"src_file_url": req["url"], "dst_actions": SD})
    assert api.wait(body["data"]["task_id"])["data"]["task_status"] == "success"


@pytest.mark.parametrize("url", ["https://example.com/selfie.jpg", "http://127.0.0.1:1/x.jpg",
                                 "ftp://x/y", "/_public/missing.jpg"])
def test_src_file_url_unreachable(api, emu, url):
    if url.startswith("/"):
        url = emu.base_url + url
    _, body = api.create_task({"src_file_url": url, "dst_actions": SD})
    data = api.wait(body["data"]["task_id"])["data"]
    assert data["task_status"] == "error" and data["error"] == "error_download_image"


# --- unknown task, expiry, timeout, retention ------------------------------------------------

def test_invalid_task_id(api):
    status, body = api.status("nope")
    assert status == 400 and body == example("error-400-invalid-task-id.json")


def test_task_of_other_key_invalid(make_emu, spec, sd_jpeg):
    emu = make_emu(keys="k1,k2")
    a, b = Api(emu, spec, key="k1"), Api(emu, spec, key="k2")
    task_id, _ = a.run(sd_jpeg, SD)
    assert b.status(task_id)[0] == 400


def test_unpolled_task_expires_and_is_charged(make_emu, spec, sd_jpeg):
    emu = make_emu(task_seconds=2, poll_window=0.3, test_clock=True)
    api = Api(emu, spec)
    file_id = api.upload(sd_jpeg)
    task_id = api.create_task({"src_file_id": file_id, "dst_actions": SD})[1]["data"]["task_id"]
    assert api.status(task_id)[1]["data"]["task_status"] == "running"
    emu.advance_clock(0.5)
    status, body = api.status(task_id)
    assert status == 400 and body == example("error-400-invalid-task-id.json")
    c = emu.counters
    assert c["tasks_expired"] == 1 and c["tasks_succeeded"] == 0
    assert c["units_charged"] == {KEY: 9} and c["units_charged_on_expiry"] == {KEY: 9}
    assert c["balances"][KEY] == 100000 - 9
    assert c["max_unpolled_gap"][task_id] == 0.5


def test_polled_task_does_not_expire(make_emu, spec, sd_jpeg):
    emu = make_emu(task_seconds=0.6, poll_window=0.3, test_clock=True)
    api = Api(emu, spec)
    file_id = api.upload(sd_jpeg)
    task_id = api.create_task({"src_file_id": file_id, "dst_actions": SD})[1]["data"]["task_id"]
    for _ in range(5):              # polled every 0.125 s until 0.625 s
        assert api.status(task_id)[1]["data"]["task_status"] == "running"
        emu.advance_clock(0.125)
    assert api.status(task_id)[1]["data"]["task_status"] == "success"
    c = emu.counters
    assert c["tasks_expired"] == 0 and c["tasks_succeeded"] == 1
    assert c["max_unpolled_gap"][task_id] == 0.125


def test_expiry_without_any_poll_is_swept(make_emu, spec, sd_jpeg):
    emu = make_emu(task_seconds=5, poll_window=0.2, test_clock=True)
    api = Api(emu, spec)
    api.create_task({"src_file_id": api.upload(sd_jpeg), "dst_actions": SD})
    emu.advance_clock(0.19)
    assert emu.counters["tasks_expired"] == 0
    emu.advance_clock(0.02)
    assert emu.counters["tasks_expired"] == 1


def test_task_timeout_500(make_emu, spec, sd_jpeg):
    emu = make_emu(task_seconds=5, task_timeout_after=0.2, test_clock=True)
    api = Api(emu, spec)
    task_id = api.create_task({"src_file_id": api.upload(sd_jpeg),
                               "dst_actions": SD})[1]["data"]["task_id"]
    assert api.status(task_id)[1]["data"]["task_status"] == "running"
    emu.advance_clock(0.21)
    status, body = api.status(task_id)
    assert status == 500 and body == example("error-500-task-timeout.json")
    c = emu.counters
    assert c["tasks_timed_out"] == 1 and c["units_charged"] == {}


def test_retention(make_emu, spec, sd_jpeg):
    emu = make_emu(retention=0.2, test_clock=True)
    api = Api(emu, spec)
    task_id, _ = api.run(sd_jpeg, SD)
    emu.advance_clock(0.19)
    assert api.status(task_id)[0] == 200
    emu.advance_clock(0.02)
    assert api.status(task_id)[0] == 400


def test_store_bound_purges_the_oldest_finished_tasks(make_emu, spec, sd_jpeg):
    # a bound of about two uploads: the third purges the first finished task and its file
    emu = make_emu(store_max_mb=2.5 * len(sd_jpeg) / 1e6)
    api = Api(emu, spec)
    first, _ = api.run(sd_jpeg, SD)
    second, _ = api.run(sd_jpeg, SD)
    assert emu.counters["tasks_purged"] == 0
    third, final = api.run(sd_jpeg, SD)
    assert final["data"]["task_status"] == "success"
    assert api.status(first)[0] == 400          # as if its retention had passed
    assert api.status(second)[0] == 200
    assert api.status(third)[0] == 200
    c = emu.counters
    assert c["tasks_purged"] == 1 and c["files_purged"] == 1


def test_store_bound_off(make_emu, spec, sd_jpeg):
    emu = make_emu(store_max_mb=0)
    api = Api(emu, spec)
    ids = [api.run(sd_jpeg, SD)[0] for _ in range(3)]
    assert all(api.status(t)[0] == 200 for t in ids)
    assert emu.counters["tasks_purged"] == 0


# --- units ------------------------------------------------------------------------------------

@pytest.mark.parametrize("count,tier,cost", [(1, "sd", 9), (4, "sd", 9), (5, "sd", 12),
                                             (8, "sd", 12), (9, "sd", 14), (13, "sd", 16),
                                             (16, "sd", 16), (1, "hd", 12), (6, "hd", 16),
                                             (12, "hd", 20), (16, "hd", 22)])
def test_unit_table(api, emu, sd_jpeg, hd_jpeg, count, tier, cost):
    from emulator import catalog
    actions = list(catalog.HD_ACTIONS if tier == "hd" else catalog.SD_ACTIONS)[:count]
    _, final = api.run(hd_jpeg if tier == "hd" else sd_jpeg, actions)
    assert final["data"]["task_status"] == "success"
    assert emu.counters["units_charged"] == {KEY: cost}
    assert emu.units() == 100000 - cost


def test_units_not_charged_on_error(api, emu):
    api.run(fixture_bytes("small.jpg"), SD)
    api.run(fixture_bytes("not_an_image.jpg"), SD)
    c = emu.counters
    assert c["tasks_failed"] == 2 and c["units_charged"] == {} and c["balances"][KEY] == 100000


def test_units_charged_once(api, emu, sd_jpeg):
    task_id, _ = api.run(sd_jpeg, SD)
    for _ in range(3):
        api.status(task_id)
    assert emu.counters["units_charged"] == {KEY: 9}


def test_credit_insufficiency(make_emu, spec, sd_jpeg):
    emu = make_emu(units=10)
    api = Api(emu, spec)
    file_id = api.upload(sd_jpeg)
    assert api.create_task({"src_file_id": file_id, "dst_actions": SD})[0] == 200
    api.wait(emu.log[-1]["task_id"])
    assert emu.units() == 1
    status, out = api.create_task({"src_file_id": file_id, "dst_actions": SD})
    assert status == 400 and out["error_code"] == "CreditInsufficiency"
    assert emu.counters["tasks_created"] == 1

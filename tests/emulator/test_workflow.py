"""A user of the raw API following the vendor's documented workflow (API.md
§2) with plain ``requests``: file create, PUT, task create, poll until done,
download the results."""

import io
import zipfile

import requests


def test_documented_workflow(make_emu, spec, sd_jpeg):
    # default limits: 5/s, 250/300 s; the emulator's clock moves only when the
    # test says so, so "wait 0.5 s between polls" is exact however busy the machine
    emu = make_emu(task_seconds=0.3, rate_limit=True, test_clock=True)
    base = emu.base_url
    headers = {"Authorization": "Bearer emulator-key", "Content-Type": "application/json"}

    # Step 2: ask for an upload slot.
    resp = requests.post(base + "/s2s/v2.1/file/skin-analysis", headers=headers, json={
        "files": [{"content_type": "image/jpg", "file_name": "my-selfie.jpg",
                   "file_size": len(sd_jpeg)}]})
    assert resp.status_code == 200
    spec.validate("/s2s/v2.1/file/skin-analysis", "POST", 200, resp.json())
    info = resp.json()["data"]["files"][0]
    file_id = info["file_id"]
    upload = info["requests"][0]

    # Step 3: PUT the bytes with exactly the returned headers, no Authorization.
    put = requests.request(upload["method"], upload["url"], data=sd_jpeg,
                           headers=upload["headers"])
    assert put.status_code == 200

    # Step 4: start the analysis.
    resp = requests.post(base + "/s2s/v2.1/task/skin-analysis", headers=headers, json={
        "src_file_id": file_id,
        "dst_actions": ["wrinkle", "pore", "texture", "acne", "skin_type"],
        "miniserver_args": {"enable_mask_overlay": False},
        "format": "json", "pf_camera_kit": False})
    assert resp.status_code == 200
    spec.validate("/s2s/v2.1/task/skin-analysis", "POST", 200, resp.json())
    task_id = resp.json()["data"]["task_id"]

    # Step 5: poll at a fixed interval until a terminal state.
    for polls in range(1, 100):
        resp = requests.get(base + "/s2s/v2.1/task/skin-analysis/" + task_id, headers=headers)
        assert resp.status_code == 200
        spec.validate("/s2s/v2.1/task/skin-analysis/{task_id}", "GET", 200, resp.json())
        data = resp.json()["data"]
        if data["task_status"] != "running":
            break
        emu.advance_clock(0.5)
    assert data["task_status"] == "success" and polls == 2

    # Step 6: read the results and fetch the masks within their validity.
    output = data["results"]["output"]
    scored = [e for e in output if "ui_score" in e]
    assert {e["type"] for e in scored} == {"wrinkle", "pore", "texture", "acne"}
    for entry in output:
        for url in entry.get("mask_urls", []):
            assert requests.get(url).status_code == 200

    # The same flow with format=zip on v2.0.
    resp = requests.post(base + "/s2s/v2.0/task/skin-analysis", headers=headers, json={
        "src_file_id": file_id, "dst_actions": ["wrinkle", "pore"], "format": "zip"})
    task_id = resp.json()["data"]["task_id"]
    for polls in range(1, 100):
        emu.advance_clock(0.5)
        data = requests.get(base + "/s2s/v2.0/task/skin-analysis/" + task_id,
                            headers=headers).json()["data"]
        if data["task_status"] != "running":
            break
    assert polls == 1
    archive = zipfile.ZipFile(io.BytesIO(requests.get(data["results"]["url"]).content))
    assert "skinanalysisResult/score_info.json" in archive.namelist()

    counters = emu.counters
    assert counters["tasks_succeeded"] == 2 and counters["responses_429"] == 0
    assert counters["units_charged"] == {"emulator-key": 12 + 9}
    assert counters["auth_on_storage"] == 0 and counters["auth_on_results"] == 0

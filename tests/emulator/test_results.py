"""Result payloads: json output, zip with score_info.json and PNG masks,
result URLs (expiry, content type), determinism and the result quirks."""

import io
import json
import zipfile

import pytest
import requests

from conftest import Api, example, fixture_bytes
from emulator import catalog

PNG = b"\x89PNG\r\n\x1a\n"
JPEG = b"\xff\xd8\xff"
HD_ALL = list(catalog.HD_ACTIONS)
SD_ALL = list(catalog.SD_ACTIONS)


def _entries(final):
    return final["data"]["results"]["output"]


def test_json_hd_layout(api, hd_jpeg):
    _, final = api.run(hd_jpeg, HD_ALL, "json")
    out = _entries(final)
    by_type = {}
    for e in out:
        by_type.setdefault(e["type"], []).append(e)
    for action in HD_ALL:
        entries = by_type[action]
        if action in catalog.HD_REGIONS:
            assert sorted(e["region"] for e in entries) == sorted(catalog.HD_REGIONS[action])
        elif action == "hd_skin_type":
            assert [e["region"] for e in entries] == ["whole", "t_zone", "u_zone"]
        else:
            assert [e["region"] for e in entries] == ["whole"]
        for e in entries:
            assert len(e["mask_urls"]) == 1
            if action == "hd_skin_type":
                assert e["skin_type"] in catalog.SKIN_TYPE_VALUES
                assert "raw_score" not in e and "ui_score" not in e
            else:
                assert isinstance(e["raw_score"], float) and 1 <= e["raw_score"] <= 100
                assert isinstance(e["ui_score"], int) and 1 <= e["ui_score"] <= 100
    assert [e["type"] for e in out[-3:]] == ["skin_age", "all", "resize_image"]
    assert isinstance(out[-3]["score"], int)
    assert isinstance(out[-2]["score"], float) and 1 <= out[-2]["score"] <= 100
    assert len(out[-1]["mask_urls"]) == 1


def test_json_sd_entries_have_no_region(api, sd_jpeg):
    _, final = api.run(sd_jpeg, SD_ALL, "json")
    for e in _entries(final):
        if e["type"] == "skin_type":
            assert e["region"] in ("whole", "t_zone", "u_zone")
        else:
            assert "region" not in e
    # same keys per entry kind as the composed SD example
    ex = {e["type"]: set(e) for e in _entries(example("task-status-success-json-sd.json"))}
    got = {e["type"]: set(e) for e in _entries(final)}
    for kind in ("texture", "pore", "skin_type", "skin_age", "all", "resize_image"):
        assert got[kind] == ex[kind]


def test_masks_are_png_and_served_as_octet_stream(api, sd_jpeg):
    _, final = api.run(sd_jpeg, ["wrinkle", "skin_type", "tear_trough"], "json")
    for e in _entries(final):
        for url in e.get("mask_urls", []):
            resp = requests.get(url)
            assert resp.status_code == 200
            assert resp.headers["Content-Type"] == "binary/octet-stream"
            if e["type"] == "resize_image":
                assert resp.content == sd_jpeg
            else:
                assert resp.content.startswith(PNG)
                from emulator import images
                fmt, w, h = images.sniff(resp.content)
                assert (w, h) == (192, 256)  # 600x800 scaled to 256 on the long side
    assert api.emu.counters["result_downloads"] >= 6


def test_overlay_masks_are_jpeg(api, sd_jpeg):
    _, final = api.run(sd_jpeg, ["wrinkle"], "json",
                       extra={"miniserver_args": {"enable_mask_overlay": True}})
    url = _entries(final)[0]["mask_urls"][0]
    assert ".jpg?" in url
    assert requests.get(url).content.startswith(JPEG)


def _zip(api, data, actions, **kw):
    _, final = api.run(data, actions, "zip", **kw)
    results = final["data"]["results"]
    assert set(results) == {"url"}
    resp = requests.get(results["url"])
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "binary/octet-stream"
    return zipfile.ZipFile(io.BytesIO(resp.content))


def _layout(info):
    """Structure of a score_info dict: keys and nested keys, without values."""
    return {k: (sorted(v) if isinstance(v, dict) and "raw_score" not in v else
                sorted(v) if isinstance(v, dict) else type(v).__name__)
            for k, v in info.items()}


@pytest.mark.parametrize("tier", ["hd", "sd"])
def test_zip_layout_matches_docs(api, sd_jpeg, hd_jpeg, tier, spec):
    sample = example("score-info-%s.json" % tier)
    actions = [k for k in sample if k not in ("all", "skin_age")]
    zf = _zip(api, hd_jpeg if tier == "hd" else sd_jpeg, actions)
    info = json.loads(zf.read("skinanalysisResult/score_info.json"))
    assert list(info) == list(sample)  # same keys, same order
    for key, value in sample.items():
        if key == "skin_age":
            assert isinstance(info[key], int)
        elif key == "all":
            assert set(info[key]) == {"score"}
        elif "raw_score" in value:
            assert set(info[key]) == set(value)
            assert info[key]["output_mask_name"] == value["output_mask_name"]
        else:
            assert list(info[key]) == list(value)
            for region, entry in value.items():
                assert info[key][region]["output_mask_name"] == entry["output_mask_name"]
    spec.validate_schema("ScoreInfoJson", info)
    names = set(zf.namelist())
    for value in info.values():
        if isinstance(value, dict):
            entries = [value] if "output_mask_name" in value else list(value.values())
            for entry in entries:
                if isinstance(entry, dict) and "output_mask_name" in entry:
                    name = "skinanalysisResult/" + entry["output_mask_name"]
                    assert name in names
                    assert zf.read(name).startswith(PNG)


@pytest.mark.parametrize("tier", ["hd", "sd"])
def test_zip_file_names_as_documented(api, sd_jpeg, hd_jpeg, tier):
    actions = HD_ALL if tier == "hd" else SD_ALL
    zf = _zip(api, hd_jpeg if tier == "hd" else sd_jpeg, actions)
    names = {n.split("/", 1)[1] for n in zf.namelist()}
    hd = ("hd_acne_output.png, hd_age_spot_output.png, hd_dark_circle_output.png, "
          "hd_droopy_lower_eyelid_output.png, hd_droopy_upper_eyelid_output.png, "
          "hd_eye_bag_output.png, hd_firmness_output.png, hd_moisture_output.png, "
          "hd_oiliness_output.png, hd_radiance_output.png, hd_redness_output.png, "
          "hd_texture_output.png, hd_pore_output_all.png, hd_pore_output_cheek.png, "
          "hd_pore_output_forehead.png, hd_pore_output_nose.png, hd_wrinkle_output_all.png, "
          "hd_wrinkle_output_crowfeet.png, hd_wrinkle_output_forehead.png, "
          "hd_wrinkle_output_glabellar.png, hd_wrinkle_output_marionette.png, "
          "hd_wrinkle_output_nasolabial.png, hd_wrinkle_output_periocular.png, "
          "hd_tear_trough.png, hd_skin_type.png")
    sd = ("acne_output.png, age_spot_output.png, dark_circle_v2_output.png, "
          "droopy_lower_eyelid_output.png, droopy_upper_eyelid_output.png, eye_bag_output.png, "
          "firmness_output.png, moisture_output.png, oiliness_output.png, pore_output.png, "
          "radiance_output.png, redness_output.png, texture_output.png, wrinkle_output.png, "
          "tear_trough.png, skin_type.png")
    assert names == set((hd if tier == "hd" else sd).split(", ")) | {"score_info.json"}
    assert all(n.startswith("skinanalysisResult/") for n in zf.namelist())


def test_zip_default_format(api, sd_jpeg):
    file_id = api.upload(sd_jpeg)
    task_id = api.create_task({"src_file_id": file_id,
                               "dst_actions": ["wrinkle"]})[1]["data"]["task_id"]
    assert set(api.wait(task_id)["data"]["results"]) == {"url"}


def test_results_deterministic(make_emu, spec, sd_jpeg):
    a = Api(make_emu(), spec)
    b = Api(make_emu(), spec)

    def scores(api, actions):
        _, final = api.run(sd_jpeg, actions, "json")
        return {(e["type"], e.get("region")): {k: v for k, v in e.items() if k != "mask_urls"}
                for e in _entries(final)}

    assert scores(a, ["wrinkle", "pore"]) == scores(b, ["pore", "wrinkle"])
    za = _zip(a, sd_jpeg, ["wrinkle", "pore"])
    zb = _zip(b, sd_jpeg, ["wrinkle", "pore"])
    for name in za.namelist():
        assert za.read(name) == zb.read(name)
    other = fixture_bytes("portrait.png")
    _, final = a.run(other, ["wrinkle", "pore"], "json", content_type="image/png")
    assert [e.get("raw_score") for e in _entries(final)] != \
        [e.get("raw_score") for e in scores(a, ["wrinkle", "pore"]).values()]


def test_result_url_expiry(make_emu, spec, sd_jpeg):
    emu = make_emu(url_ttl=0.2, test_clock=True)
    api = Api(emu, spec)
    task_id, final = api.run(sd_jpeg, ["wrinkle"], "zip")
    url = final["data"]["results"]["url"]
    emu.advance_clock(0.19)
    assert requests.get(url).status_code == 200
    emu.advance_clock(0.02)
    resp = requests.get(url)
    assert resp.status_code == 403
    assert "<Code>AccessDenied</Code>" in resp.text and "Request has expired" in resp.text
    # re-GET the task for a fresh link
    fresh = api.status(task_id)[1]["data"]["results"]["url"]
    assert requests.get(fresh).status_code == 200


def test_result_url_tampered_and_authorization(api, sd_jpeg):
    _, final = api.run(sd_jpeg, ["wrinkle"], "zip")
    url = final["data"]["results"]["url"]
    resp = requests.get(url.replace("skinanalysis_result.zip", "other.zip"))
    assert resp.status_code == 403 and "SignatureDoesNotMatch" in resp.text
    resp = requests.get(url, headers={"Authorization": "Bearer emulator-key"})
    assert resp.status_code == 400 and "InvalidArgument" in resp.text
    assert api.emu.counters["auth_on_results"] == 1


def test_zip_bare_string_quirk(make_emu, spec, sd_jpeg):
    api = Api(make_emu(quirks="zip_bare_string"), spec)
    _, final = api.run(sd_jpeg, ["wrinkle"], "zip")
    url = final["data"]["results"]
    assert isinstance(url, str) and requests.get(url).content.startswith(b"PK")


def test_extra_fields_quirk(make_emu, spec, sd_jpeg):
    api = Api(make_emu(quirks=["extra_fields"]), spec)
    _, final = api.run(sd_jpeg, ["wrinkle", "skin_type"], "json")
    assert "debug_info" in final
    assert all(e["url"] is None for e in _entries(final))


def test_polling_interval_quirk(make_emu, spec, sd_jpeg):
    api = Api(make_emu(task_seconds=5, quirks="polling_interval", polling_interval_ms=1500), spec)
    task_id = api.create_task({"src_file_id": api.upload(sd_jpeg),
                               "dst_actions": ["wrinkle"]})[1]["data"]["task_id"]
    assert api.status(task_id)[1]["data"]["polling_interval"] == 1500


def test_all_quirks_still_validate(make_emu, spec, sd_jpeg, hd_jpeg):
    api = Api(make_emu(quirks=sorted(catalog.QUIRKS)), spec)
    for fmt in ("json", "zip"):
        api.run(sd_jpeg, SD_ALL, fmt)
        api.run(hd_jpeg, HD_ALL, fmt)


def test_public_examples_validate(spec):
    for name, path in (("task-status-success-json-hd.json", "/s2s/v2.0/task/skin-analysis/x"),
                       ("task-status-running.json", "/s2s/v2.1/task/skin-analysis/x")):
        spec.validate(path, "GET", 200, example(name))

"""The views without a browser: Result.compare (through the core),
Result.from_dict, rounding as people read numbers, concern colours shared
with the composite, and the CLI's analyze --html/--out, compare and
report (tests/python/test_views_browser.py renders them)."""

import json
import subprocess
import sys

import pytest

import skinanalysis
from skinanalysis import _core
from skinanalysis.results import Result, Score
from skinanalysis.view import raw_text, result_html, ui_text

from .sa_helpers import PNG_IMAGE, SD_IMAGE, python_path_env


def test_numbers_as_people_read_them():
    assert ui_text(68.6667) == "69" and ui_text(68.5) == "69" and ui_text(68.4) == "68"
    assert ui_text(None) == "" and ui_text(float("nan")) == ""
    assert raw_text(36.09360456466675) == "36.1" and raw_text(None) == ""
    res = Result("t", (Score("wrinkle", "whole", 36.0936, 60, None),
                       Score("skin_type", "t_zone", None, None, "Oily")),
                 68.6667, 31.0, None, None, "json")
    html = result_html(res)
    assert 'class="sa-overall">69<' in html and "68.6667" not in html
    assert "<b>60</b>" in html and ">36.1<" in html
    assert "T-zone <b>Oily</b>" in html
    assert "Wrinkle" in html and 'style="width:60.0%' in html


def test_concern_colours_are_the_cores():
    assert _core.concern_color("wrinkle") == _core.concern_color("hd_wrinkle")
    assert _core.concern_color("dark_circle_v2") == _core.concern_color("hd_dark_circle")
    colours = {_core.concern_color(a) for a in skinanalysis.SD_ACTIONS}
    assert len(colours) == 16
    with pytest.raises(TypeError):
        _core.concern_color(3)
    with pytest.raises(TypeError):
        _core.compare(([("a", "whole", None, None, None)], None, None), "x")
    with pytest.raises(TypeError):
        _core.compare(([["a", "whole", None, None, None]], None, None), ([], None, None))


def test_compare_through_the_core(client):
    before = client.analyze(SD_IMAGE, ["wrinkle", "pore", "skin_type"])
    after = client.analyze(PNG_IMAGE, ["wrinkle", "pore", "acne", "skin_type"])
    cmp = before.compare(after)
    for name in ("wrinkle", "pore"):
        ch = cmp.get(name)
        b, a = before.get(name), after.get(name)
        assert (ch.before, ch.after) == (b.ui_score, a.ui_score)
        assert ch.ui_change == a.ui_score - b.ui_score
        assert ch.raw_change == pytest.approx(a.raw_score - b.raw_score)
    acne = cmp.get("acne")
    assert acne.in_after and not acne.in_before and acne.ui_change is None
    st = cmp.get("skin_type", "u_zone")
    assert st.skin_type_before == before.get("skin_type", "u_zone").skin_type
    assert cmp.overall.ui_change == pytest.approx(after.overall - before.overall)
    assert cmp.skin_age.ui_change == after.skin_age - before.skin_age
    text = str(cmp)
    assert "wrinkle" in text and "overall:" in text
    assert all(c.ui_change in (0, None) for c in before.compare(before))
    with pytest.raises(TypeError):
        before.compare({"scores": []})
    # a saved result compares the same
    again = Result.from_dict(json.loads(json.dumps(before.to_dict())))
    assert [c.to_dict() for c in again.compare(after)] == [c.to_dict() for c in cmp]


def test_composite_tints_by_concern(client, tmp_path):
    """The mask of a concern is tinted with its colour whatever the other
    masks are (by name, not by position)."""
    res = client.analyze(SD_IMAGE, ["pore", "wrinkle"], format="zip")
    names = sorted(res.mask_files())
    assert [res.mask_concern(n) for n in names] == ["pore", "wrinkle"]
    assert res.mask_concern("hd_dark_circle_output_all.png") == "hd_dark_circle"
    assert res.mask_concern("nothing.png") is None


@pytest.fixture
def cli(emu):
    env = python_path_env()
    env["YOUCAM_API_KEY"] = emu.api_key
    env["SKINANALYSIS_BASE_URL"] = emu.base_url

    def run(*args):
        return subprocess.run([sys.executable, "-m", "skinanalysis", "--poll-interval",
                               "0.05", *args], env=env, capture_output=True, text=True,
                              timeout=120)
    return run


def test_cli_analyze_html_out_and_compare(cli, tmp_path):
    page = tmp_path / "view.html"
    out = tmp_path / "res.jsonl"
    proc = cli("analyze", SD_IMAGE, PNG_IMAGE, "--actions", "wrinkle,pore",
               "--html", str(page), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and html.count("sa-composite") >= 2
    assert "http://" not in html  # masks downloaded and inlined
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["image"] for r in recs] == [SD_IMAGE, PNG_IMAGE]
    proc = cli("compare", "%s#%s" % (out, SD_IMAGE), "%s#%s" % (out, PNG_IMAGE),
               "--html", str(tmp_path / "cmp.html"))
    assert proc.returncode == 0, proc.stderr
    before = Result.from_dict(recs[0])
    after = Result.from_dict(recs[1])
    d = after.get("wrinkle").ui_score - before.get("wrinkle").ui_score
    line = next(x for x in proc.stdout.splitlines() if x.startswith("wrinkle"))
    assert line.split()[4] == ("%+d" % d if d else "+0")
    assert "sa-after" in (tmp_path / "cmp.html").read_text()
    # a missing file, a failed record
    proc = cli("compare", str(out), str(tmp_path / "nope.jsonl"))
    assert proc.returncode == 2 and "nope.jsonl" in proc.stderr
    failed = tmp_path / "failed.json"
    failed.write_text(json.dumps({"image": "x.jpg", "ok": False, "error": {"type": "E"}}))
    proc = cli("compare", str(out), str(failed))
    assert proc.returncode == 2 and "not a successful result" in proc.stderr
    # a saved result zip compares with a record (the last successful one)
    zpath = tmp_path / "r.zip"
    zpath.write_bytes(_zip_of(cli, tmp_path))
    proc = cli("compare", str(zpath), str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("overall:")


def _zip_of(_cli, tmp_path):
    """A minimal saved result zip: the API's layout, score_info.json only."""
    import zipfile
    buf = tmp_path / "built.zip"
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("skinanalysisResult/score_info.json", json.dumps(
            {"wrinkle": {"raw_score": 40.0, "ui_score": 60}, "all": {"score": 61},
             "skin_age": 30}))
    return buf.read_bytes()

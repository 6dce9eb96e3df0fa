"""The three views (a result, a before/after comparison, a batch report)
rendered by a real headless browser: Debian's ``chromium``, started by the
tests on a file:// URL (no network, no extra Python package).

Each view is screenshot (PNG) and checked: not blank, in a light and a dark
colour scheme; the legend's colours are the ones the composite was tinted
with (every mask's pixels are the source blended toward exactly its
concern's swatch colour); the bars' widths, measured by the browser's own
layout, follow the scores.  The screenshots are kept for a person to look
at, in $SA_ARTIFACTS_DIR or tests/artifacts/screenshots (gitignored); the
path is printed.

Without chromium the tests skip with the reason, except under CI=true,
where they fail: there chromium is part of the setup (scripts/setup).
"""

import base64
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

import pytest

import skinanalysis
from skinanalysis import _core
from skinanalysis.view import page

from .sa_helpers import FAST, PNG_IMAGE, REPO, SD_IMAGE, python_path_env

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    if os.environ.get("CI") == "true":
        raise RuntimeError("CI=true but chromium is not installed: the browser tests of "
                           "the views must run (apt-get install chromium; scripts/setup "
                           "installs it)")
    pytest.skip("chromium is not installed (apt-get install chromium): the views are "
                "not rendered in a browser", allow_module_level=True)

ARTIFACTS = os.environ.get("SA_ARTIFACTS_DIR") or os.path.join(REPO, "tests", "artifacts",
                                                                "screenshots")


# -- PNG reading (8-bit RGB/RGBA, not interlaced: chromium's and the core's) --------

def read_png(data):
    """(width, height, rows of (r, g, b) tuples)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and ctype in (2, 6) and interlace == 0, (depth, ctype)
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = w * bpp
    rows, prev = [], bytearray(stride)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append([tuple(line[x * bpp:x * bpp + 3]) for x in range(w)])
        prev = line
    return w, h, rows


# -- the browser -------------------------------------------------------------------

def _chromium(args, timeout=90):
    with tempfile.TemporaryDirectory(prefix="sa-chromium-") as profile:
        cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
               "--no-first-run", "--hide-scrollbars", "--user-data-dir=" + profile] + args
        # the browser is not the code under test: under tests/python/run_asan.sh
        # the sanitizer runtime is preloaded for the extension, and chromium
        # with it preloaded does not start (it hung until the timeout)
        env = {k: v for k, v in os.environ.items()
               if k not in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS")}
        return subprocess.run(cmd, capture_output=True, timeout=timeout, env=env)


def screenshot(html_path, name, size=(1000, 1100), dark=False):
    """A PNG of the page, kept in ARTIFACTS; returns (path, decoded)."""
    os.makedirs(ARTIFACTS, exist_ok=True)
    out = os.path.join(ARTIFACTS, name)
    if os.path.exists(out):
        os.remove(out)
    flags = ["--window-size=%d,%d" % size, "--screenshot=" + out]
    if dark:
        flags.append("--force-dark-mode")
    proc = _chromium(flags + ["file://" + html_path])
    assert os.path.exists(out), proc.stderr.decode(errors="replace")[-2000:]
    print("screenshot: %s" % out)
    with open(out, "rb") as fh:
        return out, read_png(fh.read())


_MEASURE = """<script>
document.body.setAttribute('data-bars', JSON.stringify(
  Array.from(document.querySelectorAll('.sa-bar')).map(function(b){
    var t=b.parentElement.getBoundingClientRect();
    return [b.className, b.dataset.score, b.getBoundingClientRect().width, t.width,
            getComputedStyle(b).backgroundColor];})));
</script>"""


def measured_bars(html_path, extra_script=""):
    """The bars as the browser laid them out: (class, score text, width,
    track width, colour), via --dump-dom of a copy with a measuring
    script; and the DOM."""
    with open(html_path, encoding="utf-8") as fh:
        text = fh.read()
    probe = html_path + ".probe.html"
    with open(probe, "w", encoding="utf-8") as fh:
        fh.write(text.replace("</body>", _MEASURE + extra_script + "</body>"))
    proc = _chromium(["--window-size=1000,1100", "--dump-dom", "file://" + probe])
    dom = proc.stdout.decode("utf-8", errors="replace")
    m = re.search(r'data-bars="([^"]*)"', dom)
    assert m, proc.stderr.decode(errors="replace")[-2000:]
    return json.loads(m.group(1).replace("&quot;", '"')), dom


def not_blank(img):
    w, h, rows = img
    colours = set()
    for y in range(0, h, 4):
        colours.update(rows[y][::4])
    assert len(colours) > 50, "the screenshot is (nearly) blank: %d colours" % len(colours)
    return colours


def swatches(html):
    """concern -> (r, g, b) of the legend's swatches."""
    found = {}
    for colour, concern in re.findall(r'class="sa-sw" style="background:#([0-9a-f]{6})" '
                                      r'data-concern="([^"]+)"', html):
        found[concern] = tuple(int(colour[i:i + 2], 16) for i in (0, 2, 4))
    return found


def changed_pixels(base, comp):
    return [(s, p) for brow, crow in zip(base[2], comp[2]) for s, p in zip(brow, crow)
            if s != p]


def tinted_toward(changed, colour):
    """Pixels of the composite that are the source blended toward exactly
    `colour` (alpha 10%..100%, within rounding)."""
    n = 0
    for s, p in changed:
        d = [colour[k] - s[k] for k in range(3)]
        dd = sum(v * v for v in d)
        if dd < 900:
            continue
        a = sum((p[k] - s[k]) * d[k] for k in range(3)) / dd
        if 0.1 <= a <= 1.01 and all(abs(p[k] - s[k] - a * d[k]) <= 2.5 for k in range(3)):
            n += 1
    return n


@pytest.fixture
def client(emu):
    with skinanalysis.Client(emu.api_key, base_url=emu.base_url, **FAST) as c:
        yield c


def _write(tmp_path, name, html):
    path = str(tmp_path / name)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(html)
    return path


def _check_bars(bars, scores, cls=""):
    """Widths in proportion to the scores (the track is 100), so in their order."""
    bars = [b for b in bars if not cls or cls in b[0].split()]
    assert len(bars) == len(scores)
    for (_, text, width, track, _), score in zip(bars, scores):
        assert text == str(score)
        assert abs(width - track * score / 100.0) <= 1.0, (width, track, score)
    order_w = sorted(range(len(bars)), key=lambda i: (bars[i][2], i))
    order_s = sorted(range(len(scores)), key=lambda i: (scores[i], i))
    assert [scores[i] for i in order_w] == [scores[i] for i in order_s]


def test_result_view_in_a_browser(client, tmp_path):
    result = client.analyze(SD_IMAGE, format="zip")  # masks held: the composite shows
    html = page("Skin analysis", result._repr_html_())
    path = _write(tmp_path, "result.html", html)
    assert "http://" not in html and "https://" not in html  # self-contained
    assert "<script" not in html  # nothing needs JavaScript

    _, shot = screenshot(path, "result-light.png")
    not_blank(shot)
    # the legend: one swatch per scored concern, in the core's colours
    legend = swatches(html)
    scored = [s for s in result.scores if s.ui_score is not None]
    assert set(legend) == {s.concern for s in scored}
    for concern, colour in legend.items():
        assert tuple(_core.concern_color(concern)) == colour
    # the swatches are drawn in exactly those colours
    shot_colours = {p for row in shot[2] for p in row}
    assert set(legend.values()) <= shot_colours
    # ...and they are the colours the composite was tinted with
    m = re.search(r'class="sa-composite skinanalysis-composite" src="data:image/png;base64,'
                  r'([^"]+)"', html)
    assert m, "no composite in the view"
    comp = read_png(base64.b64decode(m.group(1)))
    base_path = str(tmp_path / "base.png")
    _core.composite_write(open(SD_IMAGE, "rb").read(), [], base_path)
    base = read_png(open(base_path, "rb").read())
    assert comp[:2] == base[:2]
    masked = {result.mask_concern(n) for n in result.mask_files()} & set(legend)
    changed = changed_pixels(base, comp)
    found = {c for c in masked if tinted_toward(changed, legend[c]) >= 20}
    # masks overlap (the emulator draws the eye concerns in one box and
    # many others over the whole face; later ones cover earlier ones), so
    # not every concern keeps pixels of its own: at least half do (the
    # exact tint of every mask is tests/c/test_composite.c's concern_colours)
    assert len(found) >= len(masked) // 2, (sorted(found), sorted(masked))
    print("legend colours found in the composite: %d of %d concerns" % (len(found),
                                                                         len(masked)))
    # a control: palette colours no concern of the legend has are not there
    spare = [_core.palette_color(i) for i in range(16, 20)]
    assert all(tinted_toward(changed, c) < 20 for c in spare if c not in legend.values())
    # the bars: as wide as the scores say, in the browser's layout
    bars, _ = measured_bars(path)
    _check_bars(bars, [s.ui_score for s in scored])
    # bar colours are the legend's too
    for (_, _, _, _, css), s in zip(bars, scored):
        assert css == "rgb(%d, %d, %d)" % legend[s.concern]
    # numbers as people read them
    assert re.search(r'class="sa-overall">%d<' % int(result.overall + 0.5), html)
    assert "Skin type: whole face <b>" in html and "T-zone <b>" in html

    # dark theme: dark page, light text, the swatches still there
    _, dark = screenshot(path, "result-dark.png", dark=True)
    w, h, rows = dark
    bg = rows[h - 2][w - 2]
    assert sum(bg) < 3 * 80, "no dark background: %r" % (bg,)
    title = [p for row in rows[10:35] for p in row[10:120]]
    assert max(sum(p) for p in title) > 3 * 200, "no light text on the dark page"
    assert set(legend.values()) <= {p for row in rows for p in row}


def test_comparison_view_in_a_browser(client, tmp_path):
    before = client.analyze(SD_IMAGE)
    after = client.analyze(PNG_IMAGE)
    cmp = before.compare(after)
    html = page("Before / after", cmp._repr_html_())
    path = _write(tmp_path, "compare.html", html)
    _, shot = screenshot(path, "compare-light.png", size=(1000, 900))
    not_blank(shot)
    screenshot(path, "compare-dark.png", size=(1000, 900), dark=True)
    scored = [c for c in cmp.changes if c.skin_type_before is None and c.skin_type_after is None]
    bars, dom = measured_bars(path)
    _check_bars(bars, [int(c.before) for c in scored], "sa-before")
    _check_bars(bars, [int(c.after) for c in scored], "sa-after")
    # the change is marked with its sign (up green, down red)
    for c in scored:
        cell = re.search(r'<tr data-concern="%s" data-region="%s">.*?sa-change">([^<]*)<'
                         % (c.concern, c.region), html).group(1)
        want = "\u25b2" if c.ui_change > 0 else "\u25bc" if c.ui_change < 0 else ""
        assert cell.startswith(want + ("+" if c.ui_change > 0 else "\u2212" if c.ui_change < 0
                                       else "\u00b1")), cell
    assert any(c.ui_change for c in scored)


_SORT = """<script>
var th=Array.from(document.querySelectorAll('table.sa-report th'))
  .filter(function(t){return t.dataset.concern==='wrinkle';})[0];
th.click();
document.body.setAttribute('data-order-asc', Array.from(
  document.querySelectorAll('table.sa-report tbody tr')).map(function(r){return r.dataset.image;}).join(','));
th.click();
document.body.setAttribute('data-order-desc', Array.from(
  document.querySelectorAll('table.sa-report tbody tr')).map(function(r){return r.dataset.image;}).join(','));
</script>"""


def test_batch_report_in_a_browser(emu, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, src in enumerate([SD_IMAGE, PNG_IMAGE, SD_IMAGE]):
        data = open(src, "rb").read()
        if i == 2:
            data += b"\0" * 16  # a different image (other scores), still a JPEG
        (photos / ("p%d%s" % (i, os.path.splitext(src)[1]))).write_bytes(data)
    (photos / "broken.jpg").write_bytes(b"not an image")
    env = python_path_env()
    env["YOUCAM_API_KEY"] = emu.api_key
    env["SKINANALYSIS_BASE_URL"] = emu.base_url
    out = tmp_path / "results.jsonl"
    run = [sys.executable, "-m", "skinanalysis", "--poll-interval", "0.05"]
    proc = subprocess.run(run + ["batch", str(photos), "--out", str(out), "--no-progress",
                                 "--save-masks", str(tmp_path / "masks")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert out.exists(), proc.stderr
    report = tmp_path / "report.html"
    proc = subprocess.run(run + ["report", str(out), "-o", str(report), "--images",
                                 str(photos), "--masks", str(tmp_path / "masks")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    html = report.read_text(encoding="utf-8")
    assert "http://" not in html and "https://" not in html
    units = 3 * skinanalysis.cost(list(skinanalysis.SD_ACTIONS))
    assert re.search(r"<b>4</b> images .*<b>3</b> analysed .*<b>1</b> failed "
                     r".*<b>%d</b> units spent" % units, html), html[-3000:]
    assert html.count('<img class="sa-thumb" src="data:image/png;base64,') == 3
    thumb = re.search(r'sa-thumb" src="data:image/png;base64,([^"]+)"', html).group(1)
    w, h = struct.unpack(">II", base64.b64decode(thumb)[16:24])
    assert max(w, h) == 192  # scaled down by the core, not a full photo per row
    assert html.count('<svg class="sa-hist"') == 15  # one per scored SD concern
    _, shot = screenshot(str(report), "report-light.png", size=(1400, 1200))
    not_blank(shot)
    screenshot(str(report), "report-dark.png", size=(1400, 1200), dark=True)
    # the table sorts by a concern in the browser, without a server
    _, dom = measured_bars(str(report), _SORT)
    asc = re.search(r'data-order-asc="([^"]*)"', dom).group(1).split(",")
    desc = re.search(r'data-order-desc="([^"]*)"', dom).group(1).split(",")
    scores = {}
    for line in out.read_text().splitlines():
        rec = json.loads(line)
        if rec["ok"]:
            scores[rec["image"]] = next(s["ui_score"] for s in rec["result"]["scores"]
                                        if s["concern"] == "wrinkle")
    assert [scores[i] for i in asc] == sorted(scores.values())
    assert [scores[i] for i in desc] == sorted(scores.values(), reverse=True)

"""What a person sees: the HTML of a result, of a before/after comparison
and of a batch report.

Everything here is self-contained HTML: images inline as ``data:`` URIs,
bars as CSS boxes, charts as inline SVG drawn by this module (no plotting
library, no network, no JavaScript; the batch report carries a few lines
of inline JavaScript only to sort its table).  Colours of concerns come
from the core's palette (``_core.concern_color``, the colours composites
are tinted with), so a swatch beside a row is the colour of that concern
in the image.  Text takes the notebook's colours (JupyterLab's CSS
variables when present, else the page's own), tracks and borders are
translucent grey: the views read on light and dark themes alike.
"""

from __future__ import annotations

import html
import math
from typing import Any, Iterable, Optional, Sequence

from ._native import _core

esc = html.escape

#: Width of a full (100) bar, in CSS pixels.
BAR_PX = 200

CSS = """
.sa-view{font-family:var(--jp-ui-font-family,system-ui,sans-serif);
 color:var(--jp-content-font-color1,inherit);font-size:13px;line-height:1.35}
.sa-view table{border-collapse:collapse;margin:6px 0}
.sa-view th,.sa-view td{padding:2px 8px;text-align:left;vertical-align:middle;
 border-bottom:1px solid rgba(128,128,128,.25)}
.sa-view th{font-weight:600}
.sa-view .sa-num{text-align:right;font-variant-numeric:tabular-nums}
.sa-view .sa-sw{display:inline-block;width:14px;height:14px;border-radius:3px;
 vertical-align:middle;border:1px solid rgba(128,128,128,.6)}
.sa-view .sa-track{display:inline-block;width:%(bar)dpx;height:12px;
 background:rgba(128,128,128,.22);border-radius:2px;vertical-align:middle;
 position:relative}
.sa-view .sa-bar{display:block;height:12px;border-radius:2px}
.sa-view .sa-pair .sa-track{height:6px;display:block;margin:2px 0}
.sa-view .sa-bar.sa-before{opacity:.45;height:6px}
.sa-view .sa-bar.sa-after{height:6px}
.sa-view .sa-up{color:#2e9d4f}
.sa-view .sa-down{color:#d9453a}
.sa-view .sa-muted{opacity:.7}
.sa-view img.sa-composite{max-width:480px;display:block;margin:6px 0}
.sa-view img.sa-thumb{max-width:96px;max-height:96px;display:block}
.sa-view svg text{fill:currentColor}
.sa-view .sa-dist{display:flex;flex-wrap:wrap;gap:8px 18px}
.sa-view .sa-card{margin:0;padding:4px 6px;border:1px solid rgba(128,128,128,.3);
 border-radius:4px}
.sa-view .sa-card figcaption{margin-bottom:2px;white-space:nowrap}
@media (prefers-color-scheme: dark){
 .sa-view .sa-up{color:#5cd67e}.sa-view .sa-down{color:#ff7b6e}}
""" % {"bar": BAR_PX}

_REGION_WORDS = {"whole": "whole face", "t_zone": "T-zone", "u_zone": "U-zone"}


def hex_colour(concern: str) -> str:
    """The concern's colour as #rrggbb (the core's palette)."""
    return "#%02x%02x%02x" % tuple(_core.concern_color(concern))


def concern_words(concern: str) -> str:
    """"hd_dark_circle" -> "Dark circle", "dark_circle_v2" -> "Dark circle"."""
    name = concern[3:] if concern.startswith("hd_") else concern
    if name.endswith("_v2"):
        name = name[:-3]
    name = name.replace("_", " ")
    return name[:1].upper() + name[1:]


def region_words(region: str) -> str:
    return _REGION_WORDS.get(region, region.replace("_", " "))


def ui_text(value: Optional[float]) -> str:
    """A ui score as people read it: a whole number (68.7 -> "69")."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return "%d" % int(math.floor(value + 0.5))


def raw_text(value: Optional[float]) -> str:
    """A raw score with one decimal (36.0936 -> "36.1")."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return "%.1f" % value


def signed(value: Optional[float], digits: int = 0) -> str:
    if value is None:
        return ""
    text = ("%+.*f" % (digits, value))
    if text.lstrip("+-").strip("0.") == "":
        return "±0"
    return text.replace("-", "\u2212")


def bar(value: Optional[float], colour: str, cls: str = "") -> str:
    """A horizontal 0-100 bar (CSS), its width the score."""
    width = 0.0 if value is None else max(0.0, min(100.0, float(value)))
    return ("<span class=\"sa-track\"><span class=\"sa-bar %s\" data-score=\"%s\" "
            "style=\"width:%.1f%%;background:%s\"></span></span>"
            % (cls, ui_text(value), width, colour))


def swatch(concern: str) -> str:
    return ("<span class=\"sa-sw\" style=\"background:%s\" data-concern=\"%s\" "
            "title=\"%s\"></span>" % (hex_colour(concern), esc(concern), esc(concern)))


def page(title: str, body: str) -> str:
    """A whole HTML document (for --html, compare and report files)."""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"color-scheme\" content=\"light dark\">"
            "<title>%s</title><style>body{margin:16px}</style></head>"
            "<body>%s</body></html>\n" % (esc(title), body))


# -- one result -------------------------------------------------------------------

def result_html(result: Any, composite: Optional[str] = None,
                title: str = "Skin analysis", mask_urls: bool = False) -> str:
    """The view of one Result: the composite (a data: URL, or none), the
    overall score and skin age, a row per concern and region with its
    colour, its ui score as a bar and its raw score, and the skin type
    per region in words.  ``mask_urls``: without a composite, show each
    row's masks from their (pre-signed, network) URLs, as the notebook
    view of a json result whose masks are not downloaded does."""
    from .results import _is_http
    urls = mask_urls and composite is None
    head = ["<b>%s</b>" % esc(title)]
    if result.overall is not None:
        head.append("overall <b class=\"sa-overall\">%s</b>" % ui_text(result.overall))
    if result.skin_age is not None:
        head.append("skin age <b>%s</b>" % ui_text(result.skin_age))
    if result.task_id:
        head.append("<span class=\"sa-muted\">task <code>%s</code></span>"
                    % esc(result.task_id))
    out = ["<div class=\"sa-view skinanalysis-result\"><style>%s</style>" % CSS,
           "<p>%s</p>" % " &middot; ".join(head)]
    if composite is not None:
        out.append("<img class=\"sa-composite skinanalysis-composite\" src=\"%s\" "
                   "alt=\"every concern's mask over the image, in the colours of "
                   "the table\">" % composite)
    skin = [s for s in result.scores if s.skin_type is not None]
    scored = [s for s in result.scores if s.skin_type is None]
    def mask_imgs(s: Any) -> str:
        return "".join(
            "<img src=\"%s\" alt=\"%s\" loading=\"lazy\" style=\"max-height:48px\">"
            % (esc(u), esc("%s %s mask" % (s.concern, s.region)))
            for u in s.mask_urls if _is_http(u)) if urls else ""

    if skin:
        out.append("<p class=\"sa-skin-type\">Skin type: %s</p>" % ", ".join(
            "%s <b>%s</b>%s" % (esc(region_words(s.region)), esc(s.skin_type), mask_imgs(s))
            for s in skin))
    out.append("<table class=\"sa-scores skinanalysis-scores\"><thead><tr><th></th>"
               "<th>concern</th><th>region</th><th>score (0-100)</th>"
               "<th class=\"sa-num\">ui</th><th class=\"sa-num\">raw</th>%s"
               "</tr></thead><tbody>" % ("<th>mask</th>" if urls else ""))
    for s in scored:
        colour = hex_colour(s.concern)
        masks = "<td>%s</td>" % mask_imgs(s) if urls else ""
        out.append("<tr data-concern=\"%s\" data-region=\"%s\"><td>%s</td>"
                   "<td title=\"%s\">%s</td><td>%s</td><td>%s</td>"
                   "<td class=\"sa-num\"><b>%s</b></td><td class=\"sa-num sa-muted\">%s</td>"
                   "%s</tr>"
                   % (esc(s.concern), esc(s.region), swatch(s.concern), esc(s.concern),
                      esc(concern_words(s.concern)), esc(region_words(s.region)),
                      bar(s.ui_score, colour), ui_text(s.ui_score), raw_text(s.raw_score),
                      masks))
    out.append("</tbody></table></div>")
    return "".join(out)


# -- before / after ---------------------------------------------------------------

def _change_cell(value: Optional[float], digits: int = 0) -> str:
    if value is None:
        return "<td class=\"sa-num\"></td>"
    cls = "sa-up" if value > 0 else "sa-down" if value < 0 else "sa-muted"
    arrow = "\u25b2" if value > 0 else "\u25bc" if value < 0 else ""
    return "<td class=\"sa-num %s sa-change\">%s%s</td>" % (cls, arrow, signed(value, digits))


def comparison_html(cmp: Any, title: str = "Before / after") -> str:
    """Paired bars per concern and region (before faded above, after
    below) with the change in ui and raw score marked (green up, red
    down: scores are higher when healthier)."""
    head = ["<b>%s</b>" % esc(title)]
    for label, ch, digits in (("overall", cmp.overall, 0), ("skin age", cmp.skin_age, 0)):
        if ch.before is None and ch.after is None:
            continue
        head.append("%s %s &rarr; <b>%s</b> (%s)"
                    % (label, ui_text(ch.before), ui_text(ch.after),
                       signed(ch.ui_change, digits) if ch.ui_change is not None else "n/a"))
    out = ["<div class=\"sa-view skinanalysis-compare\"><style>%s</style>" % CSS,
           "<p>%s</p>" % " &middot; ".join(head),
           "<table class=\"sa-compare\"><thead><tr><th></th><th>concern</th><th>region</th>"
           "<th>before / after</th><th class=\"sa-num\">before</th>"
           "<th class=\"sa-num\">after</th><th class=\"sa-num\">change</th>"
           "<th class=\"sa-num\">raw change</th></tr></thead><tbody>"]
    for ch in cmp.changes:
        if ch.skin_type_before is not None or ch.skin_type_after is not None:
            out.append("<tr class=\"sa-skin-type\"><td></td><td>Skin type</td><td>%s</td>"
                       "<td>%s &rarr; <b>%s</b></td><td></td><td></td><td></td><td></td></tr>"
                       % (esc(region_words(ch.region)), esc(ch.skin_type_before or "-"),
                          esc(ch.skin_type_after or "-")))
            continue
        colour = hex_colour(ch.concern)
        out.append("<tr data-concern=\"%s\" data-region=\"%s\"><td>%s</td><td>%s</td>"
                   "<td>%s</td><td class=\"sa-pair\">%s%s</td><td class=\"sa-num\">%s</td>"
                   "<td class=\"sa-num\"><b>%s</b></td>%s%s</tr>"
                   % (esc(ch.concern), esc(ch.region), swatch(ch.concern),
                      esc(concern_words(ch.concern)), esc(region_words(ch.region)),
                      bar(ch.before, colour, "sa-before"), bar(ch.after, colour, "sa-after"),
                      ui_text(ch.before), ui_text(ch.after),
                      _change_cell(ch.ui_change), _change_cell(ch.raw_change, 1)))
    out.append("</tbody></table></div>")
    return "".join(out)


def comparison_text(cmp: Any) -> str:
    """The comparison as a plain table (skinanalysis compare)."""
    lines = []
    for label, ch in (("overall", cmp.overall), ("skin age", cmp.skin_age)):
        if ch.before is not None or ch.after is not None:
            lines.append("%s: %s -> %s (%s)" % (label, ui_text(ch.before) or "-",
                                               ui_text(ch.after) or "-",
                                               signed(ch.ui_change) or "n/a"))
    width = max([len(c.concern) for c in cmp.changes] + [7])
    lines.append("%-*s  %-11s %6s %6s %7s %8s" % (width, "concern", "region", "before",
                                                  "after", "change", "raw chg"))
    for ch in cmp.changes:
        if ch.skin_type_before is not None or ch.skin_type_after is not None:
            lines.append("%-*s  %-11s %s -> %s" % (width, ch.concern, ch.region,
                                                  ch.skin_type_before or "-",
                                                  ch.skin_type_after or "-"))
            continue
        lines.append("%-*s  %-11s %6s %6s %7s %8s"
                     % (width, ch.concern, ch.region, ui_text(ch.before) or "-",
                        ui_text(ch.after) or "-", signed(ch.ui_change) or "n/a",
                        signed(ch.raw_change, 1) or "n/a"))
    return "\n".join(lines).replace("\u2212", "-").replace("\u00b1", "+") + "\n"


# -- batch report -----------------------------------------------------------------

def histogram_svg(values: Sequence[float], colour: str, width: int = 160,
                  height: int = 48, bins: int = 10) -> str:
    """The distribution of ui scores (0-100) in ``bins`` bins as a small
    inline SVG bar chart, with the median marked."""
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, max(0, int(v * bins / 100.0)))] += 1
    top = max(counts) or 1
    bw = width / bins
    parts = ["<svg class=\"sa-hist\" width=\"%d\" "
             "height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\">" % (width, height + 12,
                                                                    width, height + 12),
             "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"rgba(128,128,128,.15)\"/>"
             % (width, height)]
    for i, n in enumerate(counts):
        if n:
            h = height * n / top
            parts.append("<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                         "fill=\"%s\"><title>%d-%d: %d</title></rect>"
                         % (i * bw + 0.5, height - h, bw - 1, h, colour, i * 100 // bins,
                            (i + 1) * 100 // bins, n))
    if values:
        ordered = sorted(values)
        median = ordered[len(ordered) // 2]
        x = width * median / 100.0
        parts.append("<line x1=\"%.1f\" x2=\"%.1f\" y1=\"0\" y2=\"%d\" stroke=\"currentColor\" "
                     "stroke-width=\"1.5\" stroke-dasharray=\"3 2\"/>" % (x, x, height))
    parts.append("<text x=\"0\" y=\"%d\" font-size=\"9\">0</text>"
                 "<text x=\"%d\" y=\"%d\" font-size=\"9\" text-anchor=\"end\">100</text></svg>"
                 % (height + 10, width, height + 10))
    return "".join(parts)


_SORTER = """<script>
document.querySelectorAll('table.sa-report th[data-sort]').forEach(function(th){
 th.style.cursor='pointer';th.title='sort';th.addEventListener('click',function(){
  var t=th.closest('table'),b=t.tBodies[0],i=th.cellIndex,d=th.dataset.dir==='asc'?-1:1;
  th.dataset.dir=d>0?'asc':'desc';
  Array.from(b.rows).sort(function(x,y){var a=x.cells[i].dataset.v,c=y.cells[i].dataset.v;
   if(a===undefined||a==='')return 1;if(c===undefined||c==='')return -1;
   var p=parseFloat(a),q=parseFloat(c);
   return (isNaN(p)||isNaN(q)?a.localeCompare(c):p-q)*d;}).forEach(function(r){b.appendChild(r);});
 });});
</script>"""


def report_html(entries: Iterable[dict], units: int, failures: Sequence[tuple[str, str]],
                title: str = "Skin analysis batch report") -> str:
    """One page for a batch: ``entries`` are {"image", "result",
    "thumbnail" (a data: URL or None)} for the images that succeeded,
    ``failures`` (image, error) for the others.  Summary, a histogram per
    concern, and a row per image (sortable by any column: a few lines of
    inline JavaScript: a first click sorts lowest first, the worst scores
    on top; without JavaScript the rows stay in file order)."""
    entries = list(entries)
    concerns: list[str] = []
    for e in entries:
        for s in e["result"].scores:
            if s.skin_type is None and s.region == "whole" and s.concern not in concerns:
                concerns.append(s.concern)
    out = ["<div class=\"sa-view skinanalysis-report\"><style>%s</style>" % CSS,
           "<h2>%s</h2>" % esc(title),
           "<p class=\"sa-summary\"><b>%d</b> image%s &middot; <b>%d</b> analysed &middot; "
           "<b>%d</b> failed &middot; <b>%d</b> units spent</p>"
           % (len(entries) + len(failures), "" if len(entries) + len(failures) == 1 else "s",
              len(entries), len(failures), units)]
    out.append("<h3>Scores across the batch</h3><p class=\"sa-muted\">ui scores (0-100) "
               "in tens, the median dashed</p><div class=\"sa-dist\">")
    for c in concerns:
        vals = [s.ui_score for e in entries for s in e["result"].scores
                if s.concern == c and s.region == "whole" and s.ui_score is not None]
        median = sorted(vals)[len(vals) // 2] if vals else None
        out.append("<figure class=\"sa-card\" data-concern=\"%s\"><figcaption>%s %s "
                   "<span class=\"sa-muted\">median <b>%s</b>, n=%d</span></figcaption>%s"
                   "</figure>" % (esc(c), swatch(c), esc(concern_words(c)), ui_text(median),
                                  len(vals), histogram_svg(vals, hex_colour(c), height=32)))
    out.append("</div>")
    out.append("<h3>Images</h3><table class=\"sa-report\"><thead><tr><th>overview</th>"
               "<th data-sort>image</th><th data-sort class=\"sa-num\">overall</th>"
               "<th data-sort class=\"sa-num\">skin age</th>")
    out.extend("<th data-sort class=\"sa-num\" data-concern=\"%s\">%s %s</th>"
               % (esc(c), swatch(c), esc(concern_words(c))) for c in concerns)
    out.append("</tr></thead><tbody>")
    for e in entries:
        r = e["result"]
        thumb = ("<img class=\"sa-thumb\" src=\"%s\" alt=\"overview of %s\">"
                 % (e["thumbnail"], esc(e["image"])) if e.get("thumbnail") else "")
        cells = ["<td>%s</td>" % thumb,
                 "<td data-v=\"%s\">%s</td>" % (esc(e["image"]), esc(e["image"])),
                 "<td class=\"sa-num\" data-v=\"%s\">%s</td>" % (
                     "" if r.overall is None else r.overall, ui_text(r.overall)),
                 "<td class=\"sa-num\" data-v=\"%s\">%s</td>" % (
                     "" if r.skin_age is None else r.skin_age, ui_text(r.skin_age))]
        for c in concerns:
            s = r.get(c)
            v = None if s is None else s.ui_score
            cells.append("<td class=\"sa-num\" data-v=\"%s\">%s</td>"
                         % ("" if v is None else v, ui_text(v)))
        out.append("<tr data-image=\"%s\">%s</tr>" % (esc(e["image"]), "".join(cells)))
    out.append("</tbody></table>")
    if failures:
        out.append("<h3>Failures</h3><table class=\"sa-failures\"><tbody>")
        out.extend("<tr><td>%s</td><td>%s</td></tr>" % (esc(img), esc(err))
                   for img, err in failures)
        out.append("</tbody></table>")
    out.append("</div>")
    out.append(_SORTER)
    return "".join(out)


__all__ = ["result_html", "comparison_html", "comparison_text", "report_html",
           "histogram_svg", "hex_colour", "concern_words", "region_words", "ui_text",
           "raw_text", "page", "CSS"]

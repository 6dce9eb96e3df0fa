"""examples/notebook.ipynb, executed by nbclient against the emulator."""

import os
import re

import pytest

from .sa_helpers import REPO, python_path_env

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = os.path.join(REPO, "examples", "notebook.ipynb")


def outputs(nb, mime):
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if mime in data:
                yield data[mime]


def test_notebook_runs_and_shows_the_three_views(emu, monkeypatch):
    for name, value in python_path_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("YOUCAM_API_KEY", emu.api_key)
    monkeypatch.setenv("SKINANALYSIS_BASE_URL", emu.base_url)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": os.path.dirname(NOTEBOOK)}})
    client.execute()
    html = "\n".join(outputs(nb, "text/html"))
    assert html.count('<table class="sa-scores skinanalysis-scores">') == 3
    # the zip results' display is the overview image, inline
    assert 'class="sa-composite skinanalysis-composite" src="data:image/png;base64,' in html
    # the json result before its masks are downloaded shows them by URL
    assert "Wrinkle</td>" in html and "<img src=\"http" in html
    # the legend: each concern's swatch in the core's colour, ui scores as bars
    from skinanalysis import _core
    for concern in ("wrinkle", "pore", "acne", "redness"):
        colour = "#%02x%02x%02x" % tuple(_core.concern_color(concern))
        assert ('class="sa-sw" style="background:%s" data-concern="%s"'
                % (colour, concern)) in html
    assert re.search(r'class="sa-bar " data-score="\d+" style="width:\d+\.\d%', html)
    assert "Skin type: whole face <b>" in html
    # before/after: paired bars and the change marked
    cmp_html = html[html.index("skinanalysis-compare"):]
    assert 'class="sa-bar sa-before"' in cmp_html and 'class="sa-bar sa-after"' in cmp_html
    assert re.search(r'sa-change">(\u25b2\+|\u25bc\u2212|\u00b1)\d', cmp_html)
    # the batch report: summary, one chart per concern, thumbnails, the failure
    rep = html[html.index("skinanalysis-report"):]
    assert re.search(r"<b>3</b> images .*<b>2</b> analysed .*<b>1</b> failed", rep)
    assert rep.count('<svg class="sa-hist"') == 4
    assert rep.count('<img class="sa-thumb" src="data:image/png;base64,') == 2
    assert "missing.jpg" in rep
    texts = "\n".join(outputs(nb, "text/plain"))
    assert "ValidationError" in texts and "api_key='***'" in texts
    assert emu.api_key not in html + texts
    # the notebook's analyses reached this test's emulator: 1 + 1 + 1 + 1 + 2 tasks
    assert emu.counters["tasks_created"] == 6

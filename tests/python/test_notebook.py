"""examples/notebook.ipynb, executed by nbclient against the emulator."""

import os

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


def test_notebook_runs_and_shows_the_score_table(emu, monkeypatch):
    for name, value in python_path_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("YOUCAM_API_KEY", emu.api_key)
    monkeypatch.setenv("SKINANALYSIS_BASE_URL", emu.base_url)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": os.path.dirname(NOTEBOOK)}})
    client.execute()
    html = "\n".join(outputs(nb, "text/html"))
    assert html.count('<table class="skinanalysis-scores">') == 3
    # the zip result's display is the overview image, inline
    assert 'class="skinanalysis-composite" src="data:image/png;base64,' in html
    assert "<td>wrinkle</td>" in html and "<img src=" in html
    texts = "\n".join(outputs(nb, "text/plain"))
    assert "ValidationError" in texts and "api_key='***'" in texts
    assert emu.api_key not in html + texts
    # the notebook's analyses reached this test's emulator: 1 + 1 + 1 + 2 tasks
    assert emu.counters["tasks_created"] == 5

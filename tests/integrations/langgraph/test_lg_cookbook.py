"""The LangGraph store cookbook notebook runs, offline, on the running interpreter (so it cannot rot)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

REPO = Path(__file__).resolve().parents[3]
NOTEBOOK = REPO / "cookbook" / "langgraph_store.ipynb"


def outputs(cell) -> str:
    return "".join(o.get("text", "") or "".join(o.get("data", {}).get("text/plain", "")) for o in cell.outputs)


def test_cookbook_notebook_executes(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    monkeypatch.setenv("MEMLORA_CACHE_DIR", str(tmp_path / "cache"))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(notebook, kernel_name="python3", timeout=240,
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert not [o for c in code for o in c.outputs if o.get("output_type") == "error"]
    printed = "\n".join(outputs(c) for c in code)
    assert "{'text': 'Alice is vegetarian', 'kind': 'food', 'confidence': 0.9}" in printed
    assert "ADD {'text': 'I started learning the violin.'}" in printed
    assert "refused: namespace ('notes', 'alice') fits none" in printed
    assert "tool: - Alice is allergic to peanuts" in printed

"""The LlamaIndex cookbook notebook runs, offline, on the running interpreter (so it cannot rot)."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[3] / "cookbook" / "llamaindex_chat_engine_and_agent.ipynb"


def outputs(cell) -> str:
    return "".join(o.get("text", "") or "".join(o.get("data", {}).get("text/plain", "")) for o in cell.outputs)


def test_cookbook_notebook_executes(tmp_path) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # jupyter_client runs a kernelspec whose argv[0] is "python" on sys.executable; check it did
    notebook.cells.append(nbformat.v4.new_code_cell("import sys; print(sys.executable)"))
    NotebookClient(notebook, kernel_name="python3", timeout=240, resources={"metadata": {"path": str(tmp_path)}}).execute()
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert Path(outputs(code[-1]).strip()).resolve() == Path(sys.executable).resolve()
    printed = "\n".join(outputs(c) for c in code)
    assert "I live in Oslo and I drink green tea every morning." in printed
    assert "My cat is called Miso" in printed
    assert "It is sunny in Oslo" in printed
    assert "I am allergic to peanuts" in printed

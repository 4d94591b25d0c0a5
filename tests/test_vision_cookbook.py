"""The image-memory cookbook notebook runs, offline, on the running interpreter (so it cannot rot)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
for module in ("ipykernel", "torch", "peft", "skimage", "langchain_core"):
    pytest.importorskip(module)

NOTEBOOK = Path(__file__).resolve().parents[1] / "cookbook" / "vision_image_memory.ipynb"


def outputs(cell) -> str:
    return "".join(o.get("text", "") or "".join(o.get("data", {}).get("text/plain", "")) for o in cell.outputs)


def test_vision_cookbook_notebook_executes(tmp_path) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code")  # committed cleared
    # jupyter_client runs a kernelspec whose argv[0] is "python" on sys.executable; check it did
    notebook.cells.append(nbformat.v4.new_code_cell("import sys; print(sys.executable)"))
    nbclient.NotebookClient(
        notebook, kernel_name="python3", timeout=240, resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert Path(outputs(code[-1]).strip()).resolve() == Path(sys.executable).resolve()
    printed = "\n".join(outputs(c) for c in code)
    # the photo became an image memory, stored once per user under the sha256 of its bytes
    assert 'ADD | Alice shared a photo (with the message "My morning coffee, made with the new grinder")' in printed
    assert 'ADD | Alice shared a photo (with the message "And this is my cat Chelsea")' in printed
    assert printed.count("name is the sha256 of the bytes: True") == 2
    assert "'memory_type': 'image'" in printed
    # a question about the photo went to the vqa expert, with that photo
    assert "operation: vqa\nlooked at the coffee photo: True" in printed
    assert "'vqa': 1" in printed and "images: {'stored': 2}" in printed
    # another user sees nothing; forgetting removes the files
    assert "bob's answer used: generation | bob's memories: [] | images: []" in printed
    assert "bob's search for the photo: []" in printed and "bob can open alice's photo: False" in printed
    assert "image files left: []" in printed
    # a text-only model gets the caption in the turn: the caption baseline
    assert ("extraction saw: Alice: My morning coffee, made with the new grinder "
            "[shares a photo: a cup of coffee on a saucer]") in printed
    assert "images sent to the model: 0\noperation: generation" in printed
    assert "- Alice shared a photo of a cup of coffee on a saucer" in printed
    # the miniature benchmark, training and evaluation
    assert "3 train records, 1 validation record" in printed
    assert "exit code: 0" in printed and "vqa adapter loaded: True" in printed
    assert "'config': 'memlora-v', 'count': 4" in printed and "'operations': {'vqa': 4}" in printed

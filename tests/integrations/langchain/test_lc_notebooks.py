"""The LangChain cookbook notebooks run top to bottom (with fakes, offline), so they cannot rot."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

REPO = Path(__file__).resolve().parents[3]
NOTEBOOKS = sorted((REPO / "cookbook").glob("langchain_*.ipynb"))


def test_the_cookbook_has_the_langchain_notebooks():
    assert [p.name for p in NOTEBOOKS] == [
        "langchain_conversation_chain.ipynb",
        "langchain_history_and_agent.ipynb",
        "langchain_retriever_rag.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, tmp_path, monkeypatch):
    # jupyter_client starts the "python3" kernel with this interpreter (it swaps a bare
    # `python` in the kernelspec for sys.executable), so the kernel sees this venv.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    monkeypatch.setenv("MEMLORA_CACHE_DIR", str(tmp_path / "cache"))
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    errors = [o for cell in notebook.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors


def test_the_python3_kernel_is_this_interpreter():
    from jupyter_client.manager import KernelManager

    command = KernelManager(kernel_name="python3").format_kernel_cmd()
    assert Path(command[0]).resolve() == Path(sys.executable).resolve()


def test_docs_quick_start_runs(tmp_path, monkeypatch, capsys):
    import re

    monkeypatch.chdir(tmp_path)
    source = (REPO / "docs" / "langchain.md").read_text(encoding="utf-8")
    quick_start = re.findall(r"```python\n(.*?)```", source, re.S)[0]
    exec(compile(quick_start, "docs/langchain.md", "exec"), {})  # noqa: S102 - our own documentation
    assert "I have a dog called Rex" in capsys.readouterr().out

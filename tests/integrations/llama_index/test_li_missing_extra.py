"""Without its optional packages, the LlamaIndex integration says which extra to install."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from memlora_engine import MissingDependencyError
from memlora_integrations.llama_index import MemLoRALLM


def test_without_llama_index_core_the_import_names_the_extra() -> None:
    # A None entry in sys.modules makes `import llama_index.core` raise ImportError, as if not installed;
    # a child process, so the real import of the package runs from the start.
    code = textwrap.dedent("""
        import sys
        sys.modules["llama_index.core"] = None
        from memlora_engine import MissingDependencyError
        try:
            import memlora_integrations.llama_index
        except MissingDependencyError as exc:
            print("ERROR:", exc.package, exc.extra, exc)
    """)
    repo = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ERROR: llama-index-core llamaindex ")
    assert 'pip install "memlora[llamaindex]"' in done.stdout


def test_from_backbone_without_the_backbone_names_the_hf_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "memlora_engine.backbone", None)
    with pytest.raises(MissingDependencyError, match=r'pip install "memlora\[hf\]"') as caught:
        MemLoRALLM.from_backbone()
    assert caught.value.extra == "hf"
    assert isinstance(caught.value.__cause__, ImportError)

"""The public surface of memlora_integrations.langchain, and its optional dependencies."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import memlora_integrations.langchain as lc

EXPECTED = ["ChatMemLoRA", "MemLoRAChatMessageHistory", "MemLoRAMemory", "MemLoRAMiddleware", "MemLoRARetriever"]


def test_all_is_sorted_and_complete():
    assert lc.__all__ == sorted(lc.__all__) == EXPECTED
    for name in lc.__all__:
        assert getattr(lc, name).__name__ == name


def test_unknown_attribute_raises_attribute_error():
    try:
        lc.NotAThing  # noqa: B018
    except AttributeError as exc:
        assert "NotAThing" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("expected AttributeError")


def _run_without(blocked: list[str], code: str) -> subprocess.CompletedProcess:
    # A None entry in sys.modules makes `import name` raise ImportError, as if not installed.
    prelude = "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in blocked)
    repo = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=120, env=env, check=False)


def test_imports_without_langchain_classic_and_names_the_extra_on_use():
    done = _run_without(["langchain_classic", "langchain_classic.base_memory"], """
        import memlora_integrations.langchain as lc
        from memlora_integrations.langchain import MemLoRARetriever, MemLoRAChatMessageHistory
        try:
            lc.MemLoRAMemory
        except ImportError as exc:
            print("ERROR:", exc)
    """)
    assert done.returncode == 0, done.stderr
    assert 'langchain-classic is required for this feature: pip install "memlora[langchain]"' in done.stdout


def test_imports_without_langchain_agents_and_names_the_extra_on_use():
    done = _run_without(["langchain", "langchain.agents", "langchain.agents.middleware"], """
        import memlora_integrations.langchain as lc
        try:
            from memlora_integrations.langchain import MemLoRAMiddleware
        except ImportError as exc:
            print("ERROR:", exc)
    """)
    assert done.returncode == 0, done.stderr
    assert 'langchain is required for this feature: pip install "memlora[langchain]"' in done.stdout

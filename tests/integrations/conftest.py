"""Shared by the integration test packages: the LangChain tests' scripted model (``lc_fakes``).

Loaded once, by path, under the module name ``lc_fakes`` (so the tests do not depend on
pytest's import mode); the LangChain and LangGraph conftests take it from ``sys.modules``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

FAKES_PATH = Path(__file__).parent / "langchain" / "lc_fakes.py"

if "lc_fakes" not in sys.modules:
    _spec = importlib.util.spec_from_file_location("lc_fakes", FAKES_PATH)
    assert _spec is not None and _spec.loader is not None
    _module = importlib.util.module_from_spec(_spec)
    sys.modules["lc_fakes"] = _module
    _spec.loader.exec_module(_module)

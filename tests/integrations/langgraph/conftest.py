"""Fixtures for the LangGraph store tests: a real engine (Chroma, history) with a scripted model."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

# The LangChain tests' scripted model, loaded by path under the same module name as there.
FAKES_PATH = Path(__file__).parents[1] / "langchain" / "lc_fakes.py"


def _load_fakes():
    if "lc_fakes" in sys.modules:
        return sys.modules["lc_fakes"]
    spec = importlib.util.spec_from_file_location("lc_fakes", FAKES_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["lc_fakes"] = module
    spec.loader.exec_module(module)
    return module


fakes = _load_fakes()


@pytest.fixture
def lg_fakes():
    return fakes


@pytest.fixture
def lg_memory():
    """A real in-memory engine (Chroma in memory) whose model extracts each user line as a fact."""
    return fakes.build_memory()

"""Fixtures for the LangChain integration tests: a real engine with a scripted model."""

from __future__ import annotations

import importlib.util
import sys
import warnings
from pathlib import Path

import pytest

FAKES_PATH = Path(__file__).with_name("lc_fakes.py")


def _load_fakes():
    # Loaded by path so the tests do not depend on pytest's import mode.
    if "lc_fakes" in sys.modules:
        return sys.modules["lc_fakes"]
    spec = importlib.util.spec_from_file_location("lc_fakes", FAKES_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["lc_fakes"] = module
    spec.loader.exec_module(module)
    return module


fakes = _load_fakes()


@pytest.fixture(autouse=True)
def _quiet_legacy_deprecations():
    # ConversationChain and BaseMemory are deprecated upstream; the legacy API is what we test.
    with warnings.catch_warnings():
        try:
            from langchain_core._api import LangChainDeprecationWarning
        except ImportError:  # pragma: no cover
            pass
        else:
            warnings.simplefilter("ignore", LangChainDeprecationWarning)
        yield


@pytest.fixture
def lc_memory():
    """A real in-memory engine whose model extracts each user line as a fact."""
    return fakes.build_memory()


@pytest.fixture
def lc_fakes():
    return fakes

"""Fixtures for the LangGraph store tests: a real engine (Chroma, history) with a scripted model."""

from __future__ import annotations

import sys

import pytest

# The LangChain tests' scripted model (loaded by tests/integrations/conftest.py).
fakes = sys.modules["lc_fakes"]


@pytest.fixture
def lg_fakes():
    return fakes


@pytest.fixture
def lg_memory():
    """A real in-memory engine (Chroma in memory) whose model extracts each user line as a fact."""
    return fakes.build_memory()

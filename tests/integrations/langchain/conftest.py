"""Fixtures for the LangChain integration tests: a real engine with a scripted model."""

from __future__ import annotations

import sys
import warnings

import pytest

fakes = sys.modules["lc_fakes"]  # loaded by tests/integrations/conftest.py


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

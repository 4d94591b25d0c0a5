"""Fixtures for the LlamaIndex integration tests: a real engine over real Chroma, fake model only."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from li_fakes import scripted_model

from memlora_engine import Memory, MemoryConfig
from memlora_engine.testing import DeterministicEmbedder, ScriptedGenerator


@pytest.fixture
def generator() -> ScriptedGenerator:
    return scripted_model()


@pytest.fixture
def make_engine(tmp_path, generator) -> Callable[..., Memory]:
    """A real engine: in-memory Chroma by default, on disk under tmp_path with persistent=True."""

    def build(*, persistent: bool = False) -> Memory:
        config = MemoryConfig(store="persistent" if persistent else "memory", data_dir=tmp_path / "data")
        return Memory(config, generator=generator, embedder=DeterministicEmbedder())

    return build


@pytest.fixture
def engine(make_engine) -> Memory:
    return make_engine()

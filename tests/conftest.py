"""Test-wide guards: no model hub, no network beyond loopback, no stray files."""

from __future__ import annotations

import os

# Set before anything imports huggingface_hub: hub access must never be needed.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["ANONYMIZED_TELEMETRY"] = "False"

import pytest  # noqa: E402
from pytest_socket import socket_allow_hosts  # noqa: E402

from memlora_engine import Memory, MemoryConfig  # noqa: E402
from memlora_engine.testing import DeterministicEmbedder, ScriptedGenerator  # noqa: E402


@pytest.fixture(autouse=True)
def _loopback_only() -> None:
    """Any connection to a non-loopback address fails the test that makes it."""
    socket_allow_hosts(["127.0.0.1", "localhost", "::1"], allow_unix_socket=True)


@pytest.fixture
def embedder() -> DeterministicEmbedder:
    return DeterministicEmbedder()


@pytest.fixture
def make_memory(tmp_path, embedder):
    """Build a Memory over real Chroma: in-memory by default, on disk with persistent=True."""

    def build(script=None, *, persistent: bool = False, data_dir=None, **config) -> Memory:
        generator = script if isinstance(script, ScriptedGenerator) else ScriptedGenerator(script or {})
        store = "persistent" if persistent or data_dir else "memory"
        cfg = MemoryConfig(store=store, data_dir=data_dir or tmp_path / "data", **config)
        return Memory(cfg, generator=generator, embedder=embedder)

    return build

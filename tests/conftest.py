"""Test-wide guards: no model hub, no network beyond loopback, no stray files."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

# Set before anything imports huggingface_hub: hub access must never be needed.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["ANONYMIZED_TELEMETRY"] = "False"

import pytest  # noqa: E402
from pytest_socket import socket_allow_hosts  # noqa: E402

from memlora_engine import Memory, MemoryConfig  # noqa: E402
from memlora_engine.commands._loopback import ChromaServer, PostgresServer, postgres_binaries  # noqa: E402
from memlora_engine.testing import DeterministicEmbedder, ScriptedGenerator  # noqa: E402


@pytest.fixture(autouse=True)
def _loopback_only() -> None:
    """Any connection to a non-loopback address fails the test that makes it."""
    socket_allow_hosts(["127.0.0.1", "localhost", "::1"], allow_unix_socket=True)


@pytest.fixture
def embedder() -> DeterministicEmbedder:
    return DeterministicEmbedder()


@pytest.fixture(scope="session")
def minilm():
    """The engine's real embedder (all-MiniLM-L6-v2, from its PyPI package), loaded once."""
    from memlora_engine import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


@pytest.fixture
def make_memory(tmp_path, embedder):
    """Build a Memory over real Chroma: in-memory by default, on disk with persistent=True."""

    def build(script=None, *, persistent: bool = False, data_dir=None, **config) -> Memory:
        generator = script if isinstance(script, ScriptedGenerator) else ScriptedGenerator(script or {})
        store = "persistent" if persistent or data_dir else "memory"
        cfg = MemoryConfig(store=store, data_dir=data_dir or tmp_path / "data", **config)
        return Memory(cfg, generator=generator, embedder=embedder)

    return build


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory):
    """A real ``chroma run`` on 127.0.0.1, shared by the session; yields its port."""
    if not (shutil.which("chroma") or Path(sys.executable).with_name("chroma").exists()):
        pytest.skip("the chroma command (pip install chromadb) is not installed")
    server = ChromaServer.launch(tmp_path_factory.mktemp("chroma-server"))
    yield server.port
    server.stop()


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL cluster on 127.0.0.1, shared by the session (started on first use)."""
    if postgres_binaries() is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    pytest.importorskip("psycopg", reason='psycopg is not installed (pip install "memlora[server]")')
    server = PostgresServer.launch()
    yield server
    server.destroy()

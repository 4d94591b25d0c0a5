"""Server mode against a real ``chroma run`` on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest

from memlora_engine import Memory, MemoryConfig
from memlora_engine.commands._loopback import free_port
from memlora_engine.errors import StorageError
from memlora_engine.testing import DeterministicEmbedder, ScriptedGenerator

pytestmark = pytest.mark.server


def _memory(port: int, tmp_path: Path) -> Memory:
    config = MemoryConfig(store="http", chroma_host="127.0.0.1", chroma_port=port, data_dir=tmp_path)
    generator = ScriptedGenerator({"extraction": ['{"facts": ["Lives in Oslo"]}'], "generation": ["Oslo"]})
    return Memory(config, generator=generator, embedder=DeterministicEmbedder())


def test_server_mode_round_trip(chroma_server, tmp_path) -> None:
    memory = _memory(chroma_server, tmp_path)
    (event,) = memory.add("I live in Oslo", user_id="alice")
    memory.add("Bob's note", user_id="bob", infer=False)
    # a second client (another process in real life) sees the same server
    other = _memory(chroma_server, tmp_path)
    assert [r.id for r in other.search("Oslo", user_id="alice")] == [event.id]
    assert [r.text for r in other.get_all(user_id="bob")] == ["Bob's note"]
    assert other.get(event.id, user_id="bob") is None
    assert other.answer("Where?", user_id="alice").text == "Oslo"
    assert memory.delete_all(user_id="alice") == 1
    assert other.get_all(user_id="alice") == []


def test_unreachable_server_is_a_storage_error(tmp_path) -> None:
    with pytest.raises(StorageError, match="Chroma"):
        _memory(free_port(), tmp_path)

"""The LlamaIndex classes' settings vocabulary (k, score_threshold, ingest, infer, forget) and its old spellings."""

from __future__ import annotations

import pytest
from li_fakes import extraction_calls
from llama_index.core.base.llms.types import ChatMessage, MessageRole

from memlora_integrations.llama_index import MemLoRAMemory, MemLoRAMemoryBlock


def chat(*pairs: tuple[str, str]) -> list[ChatMessage]:
    return [ChatMessage(role=role, content=text) for role, text in pairs]


def deprecated(old: str, new: str):
    return pytest.warns(DeprecationWarning, match=f"'{old}' is deprecated, use '{new}'")


def seed(engine) -> None:
    for text in ("I live in Oslo", "I like tea", "I have a dog called Rex"):
        engine.add(text, user_id="alice", infer=False)


# -- the new spelling -------------------------------------------------------------------
def test_k_limits_the_memories_shown(engine) -> None:
    seed(engine)
    memory = MemLoRAMemory.from_defaults(engine, user_id="alice", k=2, memory_prompt="{memories}")
    note = memory.get(input="Where do I live?")[0]
    assert note.role == MessageRole.SYSTEM
    assert len(note.content.splitlines()) == 2


async def test_block_k_limits_the_memories_returned(engine) -> None:
    seed(engine)
    block = MemLoRAMemoryBlock(memory=engine, user_id="alice", k=1)
    assert len((await block.aget(chat(("user", "Where do I live?")))).splitlines()) == 1


def test_ingest_false_keeps_the_session_but_remembers_nothing(engine, generator) -> None:
    memory = MemLoRAMemory.from_defaults(engine, user_id="alice", ingest=False)
    memory.put_messages(chat(("user", "I live in Oslo"), ("assistant", "Nice.")))
    memory.put(ChatMessage(role="user", content="I like tea"))
    memory.reset()
    assert extraction_calls(generator) == []
    assert engine.get_all(user_id="alice") == []


async def test_block_ingest_false_only_reads(engine, generator) -> None:
    block = MemLoRAMemoryBlock(memory=engine, user_id="alice", ingest=False)
    await block.aput(chat(("user", "I live in Oslo"), ("assistant", "Nice.")))
    assert extraction_calls(generator) == []
    assert engine.get_all(user_id="alice") == []


# -- the old spellings, deprecated --------------------------------------------------------
def test_search_limit_is_a_deprecated_k(engine) -> None:
    with deprecated("search_limit", "k") as record:
        memory = MemLoRAMemory.from_defaults(engine, user_id="alice", search_limit=2)
    assert record[0].filename == __file__  # attributed to the caller, so Python's default filters show it
    assert memory.k == 2
    with deprecated("search_limit", "k"):
        assert memory.search_limit == 2
    with deprecated("search_limit", "k"):
        block = MemLoRAMemoryBlock(memory=engine, user_id="alice", search_limit=3)
    assert block.k == 3
    with pytest.raises(TypeError, match="both 'search_limit'"):
        MemLoRAMemoryBlock(memory=engine, user_id="alice", search_limit=3, k=3)


def test_reset_forget_memories_is_a_deprecated_forget(engine) -> None:
    memory = MemLoRAMemory.from_defaults(engine, user_id="alice")
    memory.put_messages(chat(("user", "I live in Oslo"), ("assistant", "Nice.")))
    assert engine.get_all(user_id="alice")
    with deprecated("forget_memories", "forget") as record:
        memory.reset(forget_memories=True)
    assert record[0].filename == __file__
    assert engine.get_all(user_id="alice") == []
    assert memory.get_all() == []


async def test_areset_forget_memories_is_a_deprecated_forget(engine) -> None:
    memory = MemLoRAMemory.from_defaults(engine, user_id="alice")
    await memory.aput_messages(chat(("user", "I live in Oslo"), ("assistant", "Nice.")))
    with deprecated("forget_memories", "forget") as record:
        await memory.areset(forget_memories=True)
    assert record[0].filename == __file__
    assert engine.get_all(user_id="alice") == []
    with pytest.raises(TypeError, match="both 'forget_memories'"):
        memory.reset(True, forget_memories=True)

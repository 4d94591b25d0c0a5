"""MemLoRAMemoryBlock inside LlamaIndex's own Memory (real Memory, real engine, scripted model)."""

from __future__ import annotations

import pytest
from li_fakes import extraction_calls
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.memory import BaseMemoryBlock
from llama_index.core.memory import Memory as LlamaMemory

from memlora_engine import ScopeError
from memlora_integrations.llama_index import MemLoRAMemoryBlock


def chat(*pairs: tuple[str, str]) -> list[ChatMessage]:
    return [ChatMessage(role=role, content=text) for role, text in pairs]


def test_is_a_llama_index_memory_block(engine) -> None:
    assert issubclass(MemLoRAMemoryBlock, BaseMemoryBlock)
    block = MemLoRAMemoryBlock(memory=engine, user_id="alice")
    assert isinstance(block, BaseMemoryBlock)
    assert block.name == "memlora_memories"


def test_a_missing_scope_fails_at_construction(engine) -> None:
    with pytest.raises(ScopeError):
        MemLoRAMemoryBlock(memory=engine)


async def test_aput_remembers_one_turn_per_call_and_aget_returns_relevant_memories(engine, generator) -> None:
    block = MemLoRAMemoryBlock(memory=engine, user_id="alice")
    await block.aput(
        chat(("user", "I live in Oslo"), ("assistant", "Nice."), ("user", "I like tea"), ("assistant", "Me too.")),
        from_short_term_memory=True,
        session_id="s1",
    )
    assert len(extraction_calls(generator)) == 2
    assert {r.metadata["session_id"] for r in engine.get_all(user_id="alice")} == {"s1"}
    text = await block.aget(chat(("assistant", "Hello"), ("user", "Where do I live?")), session_id="s1")
    assert "- I live in Oslo" in text.splitlines()


async def test_aget_without_a_user_message_is_empty(engine) -> None:
    block = MemLoRAMemoryBlock(memory=engine, user_id="alice")
    await block.aput(chat(("user", "I live in Oslo"), ("assistant", "Nice.")))
    assert await block.aget(None) == ""
    assert await block.aget(chat(("assistant", "Hi"))) == ""


async def test_turns_without_conversation_cost_no_model_call(engine, generator) -> None:
    block = MemLoRAMemoryBlock(memory=engine, user_id="alice")
    await block.aput(chat(("system", "be nice"), ("tool", "42")))
    assert generator.calls == []


async def test_blocks_of_two_users_never_share_memories(engine) -> None:
    alice = MemLoRAMemoryBlock(memory=engine, user_id="alice")
    bob = MemLoRAMemoryBlock(memory=engine, user_id="bob")
    await alice.aput(chat(("user", "My password hint is blue whale"), ("assistant", "Ok.")))
    assert await bob.aget(chat(("user", "password hint blue whale"))) == ""


async def test_flushed_messages_reach_the_engine_and_come_back_in_the_system_message(engine, generator) -> None:
    block = MemLoRAMemoryBlock(memory=engine, user_id="alice")
    memory = LlamaMemory.from_defaults(
        session_id="s1",
        memory_blocks=[block],
        token_limit=40,
        chat_history_token_ratio=0.5,
        token_flush_size=10,
        tokenizer_fn=str.split,
    )
    turns = [("I live in Oslo with my cat Miso", "Lovely."), ("I work as a nurse at night", "Noted."),
             ("I like green tea in the morning", "Great."), ("Where do I live?", "Let me check.")]
    for said, answered in turns:
        await memory.aput_messages(chat(("user", said), ("assistant", answered)))
    assert extraction_calls(generator), "the short-term queue flushed nothing"
    assert all("user: " in c.messages[-1]["content"] for c in extraction_calls(generator))
    got = await memory.aget()
    assert got[0].role.value == "system"
    assert "<memlora_memories>" in got[0].content
    assert "I live in Oslo with my cat Miso" in got[0].content
    # each extraction call saw whole turns: a user message with its reply
    first = extraction_calls(generator)[0].messages[-1]["content"]
    assert "user: I live in Oslo with my cat Miso\nassistant: Lovely." in first


async def test_under_token_pressure_the_least_relevant_memories_go_first(engine) -> None:
    for fact in ("I live in Oslo", "I live near the fjord in a small house", "I like green tea",
                 "I work as a nurse at night"):
        engine.add(fact, user_id="alice", infer=False)
    block = MemLoRAMemoryBlock(memory=engine, user_id="alice", priority=1, k=4)
    full = await block.aget(chat(("user", "Where do I live?")))
    assert len(full.splitlines()) == 4
    memory = LlamaMemory.from_defaults(session_id="s1", memory_blocks=[block], token_limit=30,
                                       chat_history_token_ratio=0.5, tokenizer_fn=str.split)
    await memory.aput(ChatMessage(role="user", content="Where do I live?"))
    got = (await memory.aget())[0].content
    kept = [line for line in full.splitlines() if line in got]
    # some memories stay, the most relevant ones (LlamaIndex's default drops the whole block)
    assert kept and kept == full.splitlines()[: len(kept)] and len(kept) < 4
    assert len(got.split()) <= 30

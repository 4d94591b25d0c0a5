"""MemLoRAMemory: a LlamaIndex BaseMemory over a real engine (real Chroma, scripted model)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from li_fakes import extraction_calls
from llama_index.core.base.llms.types import ChatMessage, MessageRole, TextBlock, ToolCallBlock
from llama_index.core.memory import BaseMemory
from llama_index.core.schema import BaseComponent

import memlora_integrations.llama_index as li
from memlora_engine import AsyncMemory, ConfigError, GeneratorError, Memory, MemoryConfig, ScopeError
from memlora_engine.testing import DeterministicEmbedder, ScriptedGenerator
from memlora_integrations.llama_index import MemLoRAMemory


def user(text: str) -> ChatMessage:
    return ChatMessage(role=MessageRole.USER, content=text)


def assistant(text: str) -> ChatMessage:
    return ChatMessage(role=MessageRole.ASSISTANT, content=text)


def turn(memory: MemLoRAMemory, said: str, answered: str = "Got it.") -> None:
    memory.put(user(said))
    memory.put(assistant(answered))


def texts(messages: list[ChatMessage]) -> list[tuple[str, str]]:
    return [(m.role.value, m.content or "") for m in messages]


# -- public surface ---------------------------------------------------------------------
def test_package_exports_sorted_public_names() -> None:
    assert li.__all__ == sorted(li.__all__)
    assert set(li.__all__) == {"MemLoRALLM", "MemLoRAMemory", "MemLoRAMemoryBlock"}
    for name in li.__all__:
        assert getattr(li, name).__module__.startswith("memlora_integrations.llama_index.")


def test_is_a_llama_index_base_memory(engine) -> None:
    assert issubclass(MemLoRAMemory, BaseMemory)
    assert issubclass(MemLoRAMemory, BaseComponent)
    memory = MemLoRAMemory.from_defaults(engine, user_id="alice")
    assert isinstance(memory, BaseMemory)
    assert memory.class_name() == "MemLoRAMemory"
    assert memory.to_dict()["user_id"] == "alice"  # serializable fields; the engine stays private


def test_from_defaults_builds_a_default_engine(tmp_path, generator) -> None:
    memory = MemLoRAMemory.from_defaults(
        user_id="alice",
        config=MemoryConfig(store="memory", data_dir=tmp_path),
        generator=generator,
        embedder=DeterministicEmbedder(),
        chat_history=[user("I live in Oslo"), assistant("Nice.")],
        k=3,
    )
    assert isinstance(memory.engine, Memory)
    assert texts(memory.get_all()) == [("user", "I live in Oslo"), ("assistant", "Nice.")]
    assert [r.text for r in memory.engine.get_all(user_id="alice")] == ["I live in Oslo"]


def test_from_defaults_rejects_an_engine_and_engine_settings_together(engine, generator) -> None:
    with pytest.raises(ValueError, match="either memory="):
        MemLoRAMemory.from_defaults(engine, user_id="alice", generator=generator)


@pytest.mark.parametrize("ids", [{}, {"user_id": ""}, {"user_id": "bad\x00id"}])
def test_a_missing_or_malformed_scope_fails_at_construction(engine, ids) -> None:
    with pytest.raises(ScopeError):
        MemLoRAMemory(memory=engine, **ids)


def test_unknown_settings_are_rejected(engine) -> None:
    with pytest.raises(ValueError):
        MemLoRAMemory(memory=engine, user_id="alice", serch_limit=3)


def test_async_memory_engine_is_accepted(engine) -> None:
    memory = MemLoRAMemory.from_defaults(AsyncMemory(memory=engine), user_id="alice")
    assert memory.engine is engine


# -- get / put ------------------------------------------------------------------------------
def test_get_puts_relevant_memories_in_a_system_message_before_the_chat(engine) -> None:
    memory = MemLoRAMemory.from_defaults(engine, user_id="alice", session_id="s1")
    turn(memory, "I live in Oslo", "Oslo is lovely.")
    got = memory.get(input="Where do I live?")
    assert got[0].role is MessageRole.SYSTEM
    assert "- I live in Oslo" in got[0].content
    assert texts(got[1:]) == [("user", "I live in Oslo"), ("assistant", "Oslo is lovely.")]
    assert texts(memory.get_all()) == texts(got[1:])  # get_all: the buffer only


def test_get_without_input_searches_with_the_last_user_message(engine) -> None:
    memory = MemLoRAMemory.from_defaults(engine, user_id="alice")
    turn(memory, "My cat is called Miso")
    memory.put(user("What is my cat called?"))
    got = memory.get()
    assert "My cat is called Miso" in got[0].content
    assert texts(got[-1:]) == [("user", "What is my cat called?")]


def test_no_memories_no_system_message(engine) -> None:
    memory = MemLoRAMemory.from_defaults(engine, user_id="alice")
    assert memory.get(input="anything") == []
    memory.put(user("hello"))
    assert texts(memory.get()) == [("user", "hello")]


def test_get_accepts_a_chat_message_as_input(engine) -> None:
    memory = MemLoRAMemory.from_defaults(engine, user_id="alice")
    turn(memory, "I play chess")
    assert "I play chess" in memory.get(input=user("chess?"))[0].content


def test_token_limit_counts_initial_tokens_and_keeps_whole_turns(engine) -> None:
    memory = MemLoRAMemory.from_defaults(engine, user_id="alice", token_limit=20, k=1, memory_prompt="{memories}")
    turn(memory, "one two three", "four five")
    turn(memory, "six seven", "eight")
    memory.put(user("nine ten"))  # 10 words of chat; the memory line costs at most 4
    assert len(memory.get(initial_token_count=0)) == 1 + 5
    window = memory.get(initial_token_count=10)[1:]  # room for 6 to 7 words: drop the first turn whole
    assert texts(window) == [("user", "six seven"), ("assistant", "eight"), ("user", "nine ten")]
    # over budget even for the newest message: nothing, as LlamaIndex's ChatMemoryBuffer (never more than the limit)
    assert memory.get(initial_token_count=100) == []


def test_max_messages_bounds_the_window(engine) -> None:
    memory = MemLoRAMemory.from_defaults(engine, user_id="alice", max_messages=2)
    for i in range(3):
        turn(memory, f"fact {i}", f"ok {i}")
    assert texts(memory.get(input="zzz")[-2:]) == [("user", "fact 2"), ("assistant", "ok 2")]
    assert len(memory.get_all()) == 6


# -- batching ---------------------------------------------------------------------------------
def test_one_extraction_per_user_turn_with_its_reply(engine, generator) -> None:
    memory = MemLoRAMemory.from_defaults(engine, user_id="alice")
    memory.put(user("I live in Oslo"))
    assert extraction_calls(generator) == []  # a user message alone waits for its reply
    memory.put(assistant("Nice."))
    turn(memory, "I like tea")
    calls = extraction_calls(generator)
    assert len(calls) == 2
    assert "user: I live in Oslo\nassistant: Nice." in calls[0].messages[-1]["content"]
    assert "I live in Oslo" not in calls[1].messages[-1]["content"]  # each turn is extracted once


def test_a_speakers_name_reaches_extraction(engine, generator) -> None:
    memory = MemLoRAMemory.from_defaults(engine, user_id="alice")
    memory.put(ChatMessage(role=MessageRole.USER, content="I live in Oslo", additional_kwargs={"name": "Alice"}))
    memory.put(assistant("Nice."))
    assert "Alice: I live in Oslo\nassistant: Nice." in extraction_calls(generator)[0].messages[-1]["content"]


def test_tool_calls_and_results_belong_to_the_turn_of_the_final_reply(engine, generator) -> None:
    memory = MemLoRAMemory.from_defaults(engine, user_id="alice")
    memory.put(user("Book a table in Oslo"))
    memory.put_messages([
        ChatMessage(role="assistant", blocks=[ToolCallBlock(tool_call_id="c1", tool_name="book", tool_kwargs={"city": "Oslo"})]),
        ChatMessage(role="tool", content="booked", additional_kwargs={"tool_call_id": "c1"}),
        assistant("Your table is booked."),
    ])
    calls = extraction_calls(generator)
    assert len(calls) == 1
    assert "user: Book a table in Oslo\nassistant: Your table is booked." in calls[0].messages[-1]["content"]
    restored = memory.get_all()
    assert isinstance(restored[1].blocks[0], ToolCallBlock)  # the exact message comes back
    assert restored[2].additional_kwargs == {"tool_call_id": "c1"}


def test_consecutive_pending_turns_are_extracted_one_call_each(engine, generator) -> None:
    memory = MemLoRAMemory.from_defaults(engine, user_id="alice")
    memory.put_messages([user("I live in Oslo"), assistant("Nice."), user("I like tea"), assistant("Me too.")])
    assert len(extraction_calls(generator)) == 2


def test_an_engine_error_leaves_the_reply_unbuffered(tmp_path) -> None:
    engine = Memory(MemoryConfig(store="memory", data_dir=tmp_path), generator=None, embedder=DeterministicEmbedder())
    memory = MemLoRAMemory.from_defaults(engine, user_id="alice")
    memory.put(user("I live in Oslo"))
    with pytest.raises(GeneratorError, match="no generator"):
        memory.put(assistant("Nice."))
    assert texts(memory.get_all()) == [("user", "I live in Oslo")]


def test_infer_false_stores_the_turn_verbatim(engine, generator) -> None:
    memory = MemLoRAMemory.from_defaults(engine, user_id="alice", infer=False)
    turn(memory, "I live in Oslo", "Nice.")
    assert generator.calls == []
    assert sorted(r.text for r in engine.get_all(user_id="alice")) == ["I live in Oslo", "Nice."]


def test_memories_record_their_session(engine) -> None:
    turn(MemLoRAMemory.from_defaults(engine, user_id="alice", session_id="chat-7"), "I live in Oslo")
    assert engine.get_all(user_id="alice")[0].metadata == {"session_id": "chat-7"}


# -- set / reset --------------------------------------------------------------------------------
def test_set_replaces_the_buffer_and_remembers_only_new_turns(engine, generator) -> None:
    memory = MemLoRAMemory.from_defaults(engine, user_id="alice")
    history = [user("I live in Oslo"), assistant("Nice.")]
    memory.set(history)
    memory.set(history)  # same history again: nothing new to remember
    assert len(extraction_calls(generator)) == 1
    memory.set([*history, user("I like tea"), assistant("Me too.")])
    assert len(extraction_calls(generator)) == 2
    memory.set([user("Something else"), assistant("Ok.")])
    assert texts(memory.get_all()) == [("user", "Something else"), ("assistant", "Ok.")]
    assert len(extraction_calls(generator)) == 3


def test_reset_clears_the_session_but_keeps_long_term_memories(engine, generator) -> None:
    memory = MemLoRAMemory.from_defaults(engine, user_id="alice")
    turn(memory, "I live in Oslo")
    memory.put(user("I like tea"))  # never answered: remembered on reset rather than lost
    memory.reset()
    assert memory.get_all() == []
    assert sorted(r.text for r in engine.get_all(user_id="alice")) == ["I like tea", "I live in Oslo"]
    assert len(extraction_calls(generator)) == 2
    memory.reset(forget=True)
    assert engine.get_all(user_id="alice") == []


# -- isolation and persistence ----------------------------------------------------------------------
def test_one_users_memories_and_chat_never_reach_another(engine) -> None:
    alice = MemLoRAMemory.from_defaults(engine, user_id="alice", session_id="shared-name")
    bob = MemLoRAMemory.from_defaults(engine, user_id="bob", session_id="shared-name")
    turn(alice, "My password hint is blue whale")
    bob.put(user("What is my password hint?"))
    seen = " ".join(m.content or "" for m in bob.get(input="password hint blue whale"))
    assert "blue whale" not in seen
    assert texts(bob.get_all()) == [("user", "What is my password hint?")]
    assert "blue whale" in alice.get(input="password hint")[0].content


def test_sessions_share_long_term_memory_but_not_chat(engine) -> None:
    turn(MemLoRAMemory.from_defaults(engine, user_id="alice", session_id="monday"), "I live in Oslo")
    tuesday = MemLoRAMemory.from_defaults(engine, user_id="alice", session_id="tuesday")
    assert tuesday.get_all() == []
    assert "I live in Oslo" in tuesday.get(input="where do I live")[0].content


def test_memory_and_pending_turn_survive_a_process_restart(make_engine, tmp_path) -> None:
    memory = MemLoRAMemory.from_defaults(make_engine(persistent=True), user_id="alice", session_id="s1")
    turn(memory, "I live in Oslo", "Nice.")
    memory.put_messages([
        ChatMessage(role="assistant", blocks=[ToolCallBlock(tool_call_id="c1", tool_name="weather", tool_kwargs={})]),
    ])
    memory.put(user("I like tea"))  # pending: its reply comes in the next process
    child = textwrap.dedent(f"""
        import json
        from memlora_engine import Memory, MemoryConfig
        from memlora_engine.testing import DeterministicEmbedder, ScriptedGenerator
        from memlora_integrations.llama_index import MemLoRAMemory
        from llama_index.core.base.llms.types import ChatMessage

        gen = ScriptedGenerator({{"extraction": ['{{"facts": ["Likes tea"]}}'], "update": ['{{"memory": []}}']}})
        engine = Memory(MemoryConfig(data_dir={str(tmp_path / "data")!r}), generator=gen,
                        embedder=DeterministicEmbedder())
        memory = MemLoRAMemory.from_defaults(engine, user_id="alice", session_id="s1")
        before = [[m.role.value, m.content, type(m.blocks[0]).__name__ if m.blocks else None] for m in memory.get_all()]
        recalled = memory.get(input="Where do I live?")[0].content
        memory.put(ChatMessage(role="assistant", content="Tea it is."))
        print(json.dumps({{"before": before, "recalled": recalled,
                          "extraction": [c.messages[-1]["content"] for c in gen.calls if c.operation.value == "extraction"]}}))
    """)
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["before"] == [
        ["user", "I live in Oslo", "TextBlock"],
        ["assistant", "Nice.", "TextBlock"],
        ["assistant", None, "ToolCallBlock"],
        ["user", "I like tea", "TextBlock"],
    ]
    assert "I live in Oslo" in out["recalled"]
    # the restarted process remembers the pending turn, and only it
    assert len(out["extraction"]) == 1
    assert "user: I like tea\nassistant: Tea it is." in out["extraction"][0]
    assert "Oslo" not in out["extraction"][0]


# -- async and the call shapes LlamaIndex uses ---------------------------------------------------
async def test_async_methods(engine, generator) -> None:
    memory = MemLoRAMemory.from_defaults(engine, user_id="alice")
    await memory.aput(user("I live in Oslo"))
    await memory.aput(assistant("Nice."))
    await memory.aput_messages([user("I like tea"), assistant("Me too.")])
    got = await memory.aget(input="Where do I live?", initial_token_count=5)
    assert "I live in Oslo" in got[0].content
    assert len(await memory.aget_all()) == 4
    await memory.aset([user("fresh start"), assistant("ok")])
    assert texts(await memory.aget_all()) == [("user", "fresh start"), ("assistant", "ok")]
    await memory.areset()
    assert await memory.aget_all() == []
    assert len(extraction_calls(generator)) == 3


# Shapes taken from llama_index.core: chat_engine/simple.py (get/aget with initial_token_count),
# chat_engine/condense_plus_context.py (get/aget with input=), agent/workflow/base_agent.py
# (aget(), aget(input=...)), agent/workflow/function_agent.py (aput_messages), memory.Memory (areset(status=)).
@pytest.mark.parametrize(
    ("method", "args", "kwargs"),
    [
        ("get", (), {"initial_token_count": 12}),
        ("get", (), {"input": "Where do I live?"}),
        ("aget", (), {}),
        ("aget", (), {"input": "Where do I live?"}),
        ("aget", (), {"initial_token_count": 12}),
        ("aput", (ChatMessage(role="user", content="hi"),), {}),
        ("aput_messages", ([ChatMessage(role="user", content="hi")],), {}),
        ("aset", ([ChatMessage(role="user", content="hi")],), {}),
        ("areset", (), {"status": None}),
        ("reset", (), {}),
        ("get_all", (), {}),
    ],
)
async def test_call_shapes_used_by_llama_index(engine, method, args, kwargs) -> None:
    memory = MemLoRAMemory.from_defaults(engine, user_id="alice")
    turn(memory, "I live in Oslo")
    result = getattr(memory, method)(*args, **kwargs)
    if hasattr(result, "__await__"):
        result = await result
    if method in ("get", "aget"):
        assert "I live in Oslo" in result[0].content


def test_a_first_turn_needs_no_update_call(tmp_path) -> None:
    gen = ScriptedGenerator({"extraction": ['{"facts": ["Lives in Oslo"]}']}, strict=True)
    engine = Memory(MemoryConfig(store="memory", data_dir=tmp_path), generator=gen, embedder=DeterministicEmbedder())
    turn(MemLoRAMemory.from_defaults(engine, user_id="alice"), "I live in Oslo")
    assert [r.text for r in engine.get_all(user_id="alice")] == ["Lives in Oslo"]


def test_insert_method_user_puts_memories_in_front_of_the_last_user_message(engine) -> None:
    memory = MemLoRAMemory.from_defaults(engine, user_id="alice", insert_method="user")
    turn(memory, "I live in Oslo")
    memory.put(user("Where do I live?"))
    got = memory.get()
    assert [m.role.value for m in got] == ["user", "assistant", "user"]
    assert "- I live in Oslo" in got[-1].content and got[-1].content.endswith("Where do I live?")
    assert memory.get_all()[-1].content == "Where do I live?"


# -- token budget: never more than the limit, never a tool result without its call ------------
@pytest.mark.parametrize("limit", [1, 2, 3, 5, 8, 13, 30])
@pytest.mark.parametrize("initial", [0, 4])
def test_get_never_returns_more_than_the_token_limit(engine, limit, initial) -> None:
    memory = MemLoRAMemory.from_defaults(engine, user_id="alice", token_limit=limit, k=3)
    turn(memory, "I live in Oslo near the fjord", "Lovely place to live")
    turn(memory, "I drink green tea", "Good choice")
    memory.put(user("Where do I live?"))
    returned = memory.get(initial_token_count=initial)
    assert sum(len((m.content or "").split()) for m in returned) <= max(limit - initial, 0)


# The call's own words: none, or enough that the budget cuts the call and could keep its result.
@pytest.mark.parametrize("call_words", ["", "Let me book that."])
def test_a_trimmed_window_never_starts_with_a_tool_result(engine, call_words) -> None:
    memory = MemLoRAMemory.from_defaults(engine, user_id="alice", token_limit=4, ingest=False)
    memory.put(user("Book a table in Oslo for two people tonight please"))
    call_blocks = [TextBlock(text=call_words)] if call_words else []
    memory.put_messages([
        ChatMessage(role="assistant",
                    blocks=[*call_blocks, ToolCallBlock(tool_call_id="c1", tool_name="book", tool_kwargs={})]),
        ChatMessage(role="tool", content="booked", additional_kwargs={"tool_call_id": "c1"}),
        assistant("Done, booked."),
    ])
    window = memory.get(input="zzz")
    assert window and all(m.role != MessageRole.TOOL for m in window)
    assert texts(window)[-1] == ("assistant", "Done, booked.")


# -- serialisation: an agent Context holding the memory can be saved and restored ----------------
def test_to_dict_from_dict_round_trip_in_this_process(engine) -> None:
    memory = MemLoRAMemory.from_defaults(engine, user_id="alice", session_id="s1", k=2)
    turn(memory, "I live in Oslo")
    restored = MemLoRAMemory.from_dict(json.loads(json.dumps(memory.to_dict())))
    assert restored.engine is engine and (restored.session_id, restored.k, restored.scope) == ("s1", 2, {"user_id": "alice"})
    assert texts(restored.get_all()) == [("user", "I live in Oslo"), ("assistant", "Got it.")]
    other = Memory(MemoryConfig(store="memory"), generator=ScriptedGenerator(), embedder=DeterministicEmbedder())
    assert MemLoRAMemory.from_dict(memory.to_dict(), memory=other).engine is other


def test_from_dict_finds_an_engine_over_the_same_persistent_store(make_engine) -> None:
    first = make_engine(persistent=True)
    saved = MemLoRAMemory.from_defaults(first, user_id="alice").to_dict()
    saved["engine"]["token"] = "from-another-process"
    again = make_engine(persistent=True)  # what a new worker builds at start-up
    MemLoRAMemory.from_defaults(again, user_id="bob")
    assert MemLoRAMemory.from_dict(saved).engine in (first, again)


def test_from_dict_without_a_matching_engine_says_what_to_do(engine) -> None:
    saved = MemLoRAMemory.from_defaults(engine, user_id="alice").to_dict()
    saved["engine"] = {"token": "gone", "config": {**saved["engine"]["config"], "store": "memory"}}
    with pytest.raises(ConfigError, match="from_dict\\(data, memory=engine\\)"):
        MemLoRAMemory.from_dict(saved)

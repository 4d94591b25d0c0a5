"""The shared turn-ingestion and scope helpers of the integrations (real engine, scripted model)."""

from __future__ import annotations

import json

import pytest

from memlora_engine import AsyncMemory, GenerationRequest, Memory, MemoryConfig, ScopeError
from memlora_engine.testing import DeterministicEmbedder, ScriptedGenerator
from memlora_integrations._scope import resolve_memory, scope_kwargs
from memlora_integrations._turns import has_conversation, ingest_turn, ingest_turns, split_turns


def _user_lines(request: GenerationRequest) -> str:
    lines = request.messages[-1]["content"].splitlines()
    return json.dumps({"facts": [line.removeprefix("user: ") for line in lines if line.startswith("user: ")]})


def _add_all(request: GenerationRequest) -> str:
    facts = json.loads(request.messages[-1]["content"].rsplit("New facts:", 1)[1])
    return json.dumps({"memory": [{"id": "new", "text": f, "event": "ADD"} for f in facts]})


@pytest.fixture
def memory() -> Memory:
    generator = ScriptedGenerator({"extraction": _user_lines, "update": _add_all})
    return Memory(MemoryConfig(store="memory"), generator=generator, embedder=DeterministicEmbedder())


def extractions(memory: Memory) -> list[str]:
    return [c.messages[-1]["content"] for c in memory.generator.calls if c.operation.value == "extraction"]


def say(role: str, content: object) -> dict:
    return {"role": role, "content": content}


# -- turns ------------------------------------------------------------------------------
def test_a_user_message_after_any_other_role_starts_a_turn() -> None:
    messages = [
        say("assistant", "welcome back"),
        say("user", "a"),
        say("user", "b"),
        say("tool", "result"),
        say("assistant", "c"),
        say("user", "d"),
    ]
    assert [[m["content"] for m in t] for t in split_turns(messages)] == [
        ["welcome back"], ["a", "b", "result", "c"], ["d"]
    ]


def test_a_turn_has_conversation_only_with_user_or_assistant_text_or_images() -> None:
    assert not has_conversation([say("user", "  "), say("tool", "42"), say("system", "be nice")])
    assert not has_conversation([say("user", [{"type": "text", "text": " "}])])
    assert has_conversation([say("assistant", "hi")])
    assert has_conversation([say("user", [{"type": "text", "text": ""}, {"type": "image", "image": "cat.png"}])])


def test_ingest_turns_makes_one_add_per_turn_and_skips_turns_that_say_nothing(memory) -> None:
    messages = [say("user", "I live in Oslo"), say("assistant", "Nice."), say("tool", "noise"),
                say("user", "I like tea"), say("assistant", "Me too."), say("user", "   ")]
    results = ingest_turns(memory, messages, scope={"user_id": "alice"}, metadata={"via": "test"})
    assert len(results) == 2
    assert extractions(memory) == ["user: I live in Oslo\nassistant: Nice.",  # the engine reads no tool text
                                   "user: I like tea\nassistant: Me too."]
    records = memory.get_all(user_id="alice")
    assert sorted(r.text for r in records) == ["I like tea", "I live in Oslo"]
    assert all(r.metadata == {"via": "test"} for r in records)


def test_complete_only_leaves_a_question_waiting_for_its_reply(memory) -> None:
    messages = [say("user", "I live in Oslo"), say("assistant", "Nice."), say("user", "I like tea")]
    assert len(ingest_turns(memory, messages, scope={"user_id": "alice"}, complete_only=True)) == 1
    assert [r.text for r in memory.get_all(user_id="alice")] == ["I live in Oslo"]


def test_ingest_turn_with_infer_false_stores_the_words_without_a_model_call(memory) -> None:
    turn = [say("user", "I live in Oslo"), say("assistant", "Nice.")]
    assert ingest_turn(memory, turn, scope={"user_id": "alice"}, infer=False) is not None
    assert extractions(memory) == []
    assert memory.get_all(user_id="alice")
    assert ingest_turn(memory, [say("tool", "42")], scope={"user_id": "alice"}) is None


# -- scope ------------------------------------------------------------------------------
def test_scope_kwargs_validates_and_keeps_only_the_ids_set() -> None:
    assert scope_kwargs("alice", None, "r1") == {"user_id": "alice", "run_id": "r1"}
    with pytest.raises(ScopeError):
        scope_kwargs(None, None, None)


def test_resolve_memory_unwraps_an_async_engine_and_rejects_anything_else(memory) -> None:
    assert resolve_memory(memory) is memory
    assert resolve_memory(AsyncMemory(memory=memory)) is memory
    with pytest.raises(TypeError, match="memlora_engine.Memory"):
        resolve_memory(object())

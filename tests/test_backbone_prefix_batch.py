"""Prefix caching and batched generation on a tiny in-process model: the greedy tokens of one whole prompt at a time."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("llguidance")

from memlora_engine.backbone import HFBackbone  # noqa: E402
from memlora_engine.backbone._prefix import PrefixCache  # noqa: E402
from memlora_engine.backbone.tiny import make_lora_adapter, tiny_model, tiny_tokenizer  # noqa: E402
from memlora_engine.errors import ConfigError  # noqa: E402
from memlora_engine.generator import GenerationRequest  # noqa: E402
from memlora_engine.operations import EXTRACTION_SCHEMA, UPDATE_SCHEMA  # noqa: E402
from memlora_engine.types import Operation  # noqa: E402

SYSTEM = "You manage a memory. Compare each new fact with the existing memories and choose one event per fact."
OLD = json.dumps([{"id": "0", "text": "Caroline likes tea."}, {"id": "1", "text": "Mel paints."}], indent=2)


def _update(facts: list[str], old: str = OLD) -> list[dict[str, str]]:
    user = f"Existing memories:\n{old}\n\nNew facts:\n{json.dumps(facts)}"
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def _chat(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]


# The same system prompt under three adapters and the base model, switching between them,
# with the update step's per-fact prompts (shared old memories) among them.
CALLS = [
    GenerationRequest(Operation.UPDATE, _update(["Caroline moved to Oslo."]), UPDATE_SCHEMA, 24),
    GenerationRequest(Operation.UPDATE, _update(["Mel has two kids."]), UPDATE_SCHEMA, 24),
    GenerationRequest(Operation.EXTRACTION, _chat("Caroline: I moved to Oslo."), EXTRACTION_SCHEMA, 24),
    GenerationRequest(Operation.UPDATE, _update(["Mel likes tea too."]), UPDATE_SCHEMA, 24),
    GenerationRequest(Operation.GENERATION, _chat("Where does Caroline live?"), None, 12),
    GenerationRequest(Operation.EXTRACTION, _chat("Mel: we went camping."), EXTRACTION_SCHEMA, 24),
    GenerationRequest(Operation.UPDATE, _update(["Mel went camping."], old="[]"), UPDATE_SCHEMA, 24),
    GenerationRequest(Operation.GENERATION, _chat("What does Mel paint?"), None, 12),
    GenerationRequest(Operation.VQA, _chat("Question: what colour?"), None, 12),
    GenerationRequest(Operation.UPDATE, _update(["Caroline has a dog."]), UPDATE_SCHEMA, 24),
    GenerationRequest(Operation.UPDATE, _update(["Caroline moved to Oslo."]), UPDATE_SCHEMA, 24),
]


@pytest.fixture(scope="module")
def adapter_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("adapters")
    base = tiny_model(len(tiny_tokenizer()))
    dirs = {op: make_lora_adapter(base, root / op, seed=i + 1) for i, op in enumerate(["extraction", "update", "vqa"])}
    dirs["update-v2"] = make_lora_adapter(base, root / "update-v2", seed=7)
    return dirs


def _backbone(adapter_dirs, *, prefix_cache: bool, vocabulary: str = "full") -> HFBackbone:
    tokenizer = tiny_tokenizer()
    adapters = {op: adapter_dirs[op] for op in ("extraction", "update", "vqa")}
    return HFBackbone(tiny_model(len(tokenizer)), tokenizer, adapters=adapters, name="tiny",
                      prefix_cache=prefix_cache, vocabulary=vocabulary, batch_generation=True)


def _tokens(backbone: HFBackbone, request: GenerationRequest) -> tuple[int, str]:
    # A byte-level tokenizer: the text, bytes and all, with the token count pins the tokens.
    generation = backbone.generate(request)
    return generation.output_tokens, generation.text


@pytest.mark.parametrize("vocabulary", ["full", "latin"])
def test_cached_prefixes_give_the_uncached_tokens_across_adapter_switches(adapter_dirs, vocabulary):
    cached = _backbone(adapter_dirs, prefix_cache=True, vocabulary=vocabulary)
    plain = _backbone(adapter_dirs, prefix_cache=False, vocabulary=vocabulary)
    for request in CALLS:
        assert _tokens(cached, request) == _tokens(plain, request), request.messages[1]["content"]
    cache = cached.prefix_cache
    assert cache is not None and plain.prefix_cache is None
    # Not vacuous: most calls reused a prefix, and the per-fact update prompts reused the old memories.
    assert cache.hits >= 6
    assert cache.reused_tokens > 6 * len(SYSTEM)
    assert any(len(prefix) > len(SYSTEM) + len(OLD) for _, prefix in cache._entries)


def test_a_prefix_is_reused_only_under_the_adapter_that_computed_it(adapter_dirs):
    backbone = _backbone(adapter_dirs, prefix_cache=True)
    plain = _backbone(adapter_dirs, prefix_cache=False)
    same_prompt = _chat("Caroline: I moved to Oslo and adopted a dog.")
    for op in [Operation.EXTRACTION, Operation.EXTRACTION, Operation.UPDATE, Operation.VQA, Operation.GENERATION]:
        request = GenerationRequest(op, same_prompt, None, 16)
        assert _tokens(backbone, request) == _tokens(plain, request), op
    adapters = {adapter for adapter, _ in backbone.prefix_cache._entries}  # type: ignore[union-attr]
    assert adapters == {"memlora_extraction"}  # each other adapter saw the prompt once: nothing to share yet


def test_replacing_an_adapter_drops_the_prefixes_it_computed(adapter_dirs):
    backbone = _backbone(adapter_dirs, prefix_cache=True)
    for request in CALLS[:2]:
        backbone.generate(request)
    assert len(backbone.prefix_cache or ()) > 0
    backbone.add_adapter(Operation.UPDATE, adapter_dirs["update-v2"])
    assert len(backbone.prefix_cache or ()) == 0
    fresh = _backbone(adapter_dirs, prefix_cache=False)
    fresh.add_adapter(Operation.UPDATE, adapter_dirs["update-v2"])
    for request in [CALLS[3], CALLS[9], CALLS[10]]:
        assert _tokens(backbone, request) == _tokens(fresh, request)


def test_streaming_uses_the_cached_prefix_with_the_same_text(adapter_dirs):
    backbone = _backbone(adapter_dirs, prefix_cache=True)
    plain = _backbone(adapter_dirs, prefix_cache=False)
    for request in CALLS[:4]:
        assert "".join(backbone.stream(request)) == plain.generate(request).text
    assert backbone.prefix_cache is not None and backbone.prefix_cache.hits >= 2


def test_entries_are_bounded_least_recently_used_first(adapter_dirs):
    backbone = _backbone(adapter_dirs, prefix_cache=True)
    backbone.prefix_cache = PrefixCache(max_entries=2)
    olds = [json.dumps([{"id": "0", "text": f"Memory number {i} is here."}]) for i in range(4)]
    for old in olds:
        for fact in ["A new fact.", "Another fact."]:
            backbone.generate(GenerationRequest(Operation.UPDATE, _update([fact], old=old), UPDATE_SCHEMA, 4))
    assert len(backbone.prefix_cache) == 2


def test_both_are_off_by_default():
    tokenizer = tiny_tokenizer()
    backbone = HFBackbone(tiny_model(len(tokenizer)), tokenizer)
    assert backbone.prefix_cache is None and not backbone.supports_batch_generation


@pytest.mark.parametrize(("entries", "tokens"), [(0, 16), (4, 0)])
def test_bad_sizes_are_config_errors(entries, tokens):
    with pytest.raises(ConfigError, match="max_entries"):
        PrefixCache(max_entries=entries, min_tokens=tokens)


# -- batched generation: each row equals its own generate() -------------------------------------
FACTS = [["Caroline moved to Oslo."], ["Mel has two kids and a dog named Bo."], ["Mel likes tea."], ["Caro runs."]]


@pytest.mark.parametrize("prefix_cache", [True, False])
@pytest.mark.parametrize("vocabulary", ["full", "latin"])
def test_a_batch_gives_each_request_its_own_greedy_tokens(adapter_dirs, prefix_cache, vocabulary):
    batched = _backbone(adapter_dirs, prefix_cache=prefix_cache, vocabulary=vocabulary)
    plain = _backbone(adapter_dirs, prefix_cache=False, vocabulary=vocabulary)
    plain.batch_generation = False
    assert batched.supports_batch_generation and not plain.supports_batch_generation
    batches = [
        [GenerationRequest(Operation.UPDATE, _update(f), UPDATE_SCHEMA, 40) for f in FACTS],  # rows of several lengths
        [GenerationRequest(Operation.UPDATE, _update(f, old="[]"), UPDATE_SCHEMA, 40) for f in FACTS[:2]],
        [GenerationRequest(Operation.EXTRACTION, _chat(t), EXTRACTION_SCHEMA, 30) for t in ["Hi.", "Mel: we went camping."]],
        # no schema; rows with their own token budgets
        [GenerationRequest(Operation.GENERATION, _chat(q), None, n) for q, n in [("Where?", 5), ("What does Mel paint?", 12)]],
        [GenerationRequest(Operation.VQA, _chat("Question: what colour?"), None, 8)] * 3,  # identical rows
    ]
    for requests in batches:
        rows = batched.generate_batch(requests)
        alone = plain.generate_batch(requests)
        assert [(g.text, g.output_tokens, g.input_tokens) for g in rows] == [
            (g.text, g.output_tokens, g.input_tokens) for g in alone
        ]
    if prefix_cache:
        assert batched.prefix_cache is not None and batched.prefix_cache.hits >= 4


def test_rows_stop_on_their_own_eos(adapter_dirs):
    """Rows that finished keep their tokens while longer rows decode on (pads are not fed to their matchers)."""
    batched = _backbone(adapter_dirs, prefix_cache=True)
    plain = _backbone(adapter_dirs, prefix_cache=False)
    requests = [GenerationRequest(Operation.UPDATE, _update(f), UPDATE_SCHEMA if i % 2 else None, 40)
                for i, f in enumerate(FACTS)]
    alone = [plain.generate(r) for r in requests]
    assert len({g.output_tokens for g in alone}) > 1  # not vacuous: the rows end at different steps
    assert [g.text for g in batched.generate_batch(requests)] == [g.text for g in alone]


def test_mixed_operations_run_one_by_one(adapter_dirs):
    backbone = _backbone(adapter_dirs, prefix_cache=False)
    requests = [CALLS[0], CALLS[2]]
    assert [g.text for g in backbone.generate_batch(requests)] == [backbone.generate(r).text for r in requests]


@pytest.mark.parametrize("own", [False, True], ids=["shared-listing", "own-listings"])
def test_the_update_step_batches_its_per_fact_calls_with_the_one_by_one_plan(adapter_dirs, own):
    from memlora_engine import MemoryConfig
    from memlora_engine.repository import text_hash
    from memlora_engine.stats import Stats
    from memlora_engine.steps import ModelCaller, decide_updates
    from memlora_engine.types import MemoryRecord

    records = [MemoryRecord(id=f"m{i}", text=t, hash=text_hash(t), created_at="2024-01-01T00:00:00+00:00", user_id="u")
               for i, t in enumerate(["Caroline likes tea.", "Mel paints."])]
    facts = ["Caroline moved to Oslo.", "Mel has two kids.", "Mel likes tea."]
    # own listings: the rows' prompts differ after the system prompt, and in length
    nearest = {facts[0]: records[:1], facts[1]: records[1:], facts[2]: records[::-1]} if own else None
    plans, calls = [], []
    for batch in (True, False):
        backbone = _backbone(adapter_dirs, prefix_cache=batch)
        backbone.batch_generation = batch
        caller = ModelCaller(MemoryConfig(store="memory"), backbone, Stats())
        plans.append(decide_updates(caller, records, facts, date="2024-05-01", nearest=nearest))
        calls.append(caller.stats[Operation.UPDATE].calls)
    assert plans[0] == plans[1]
    assert calls == [3, 3]  # a batch still counts one call per fact

"""Current-state generation examples: the newest value is the answer, in the engine's own prompt.

All conversation text here is invented (no LoCoMo text).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

import pytest

from memlora_engine import MemoryConfig
from memlora_engine.commands import main
from memlora_engine.data.locomo import parse_locomo
from memlora_engine.errors import ConfigError
from memlora_engine.prompts import render_prompt
from memlora_engine.training._synthetic_templates import ATTRIBUTES, EXTRA_ATTRIBUTES
from memlora_engine.training.cleaning import prompt_values
from memlora_engine.training.current_state import (
    CHAIN_VALUES,
    CURRENT_STATE_ID,
    KINDS,
    QUESTIONS,
    generate_current_state_examples,
    write_current_state,
)
from memlora_engine.training.synthetic_update import demo_free
from memlora_engine.types import Operation

_OBSERVATIONS = {
    "syn-a": ("Rosa", "Tariq", ["Rosa volunteers at an animal shelter on weekends.",
                                "Tariq attends a chess club every Thursday."]),
    "syn-b": ("Lena", "Omar", ["Lena is training for a half marathon.", "Omar coaches a youth football team."]),
}


def _sample(sample_id: str) -> dict[str, Any]:
    a, b, facts = _OBSERVATIONS.get(sample_id, _OBSERVATIONS["syn-a"])
    turns = [{"speaker": text.split()[0], "dia_id": f"D1:{i + 1}", "text": text} for i, text in enumerate(facts)]
    observation = {"session_1_observation": {name: [[t, f"D1:{i + 1}"] for i, t in enumerate(facts)
                                                    if t.startswith(name)] for name in (a, b)}}
    qa = [{"question": f"What does {a} do?", "answer": facts[0].split(" ", 1)[1].rstrip("."), "evidence": ["D1:1"],
           "category": 4}]
    return {"sample_id": sample_id, "qa": qa, "observation": observation,
            "conversation": {"speaker_a": a, "speaker_b": b, "session_1_date_time": "9:05 am on 3 March, 2024",
                             "session_1": turns}}


@pytest.fixture
def conversations():
    return parse_locomo([_sample("syn-a"), _sample("syn-b")])


def _memories(example: dict[str, Any]) -> list[str]:
    listing = prompt_values("memlora", Operation.GENERATION, example["messages"])["memories"]
    return [line.removeprefix("- ") for line in listing.splitlines()]


ROOMY = MemoryConfig(answer_top_k=10)
"""Room in the listing for a five-value chain and the source conversation's observations."""


def test_every_example_is_the_engines_prompt_with_a_known_answer(conversations, embedder):
    # Ten memories hold every distractor asserted below; the engine's default lists 8 (answer_top_k).
    examples = generate_current_state_examples(conversations, 24, embedder, seed=2, config=ROOMY)
    assert len(examples) == 24
    for number, example in enumerate(examples):
        assert example["id"] == f"{CURRENT_STATE_ID}/generation/{number}"
        assert example["operation"] == "generation" and example["conversation"] == CURRENT_STATE_ID
        values = prompt_values("memlora", Operation.GENERATION, example["messages"])
        assert example["messages"] == render_prompt("memlora", Operation.GENERATION, **values)
        memories = _memories(example)
        assert example["context"]["memories"] == len(memories)
        assert example["context"]["kind"] in KINDS and example["context"]["attribute"] in QUESTIONS
        assert all(demo_free(text) for text in memories + [values["question"], example["target"]])
        # The answer is in a memory, and the observations of the person's conversation are among the distractors.
        assert any(example["target"].lower() in text.lower() for text in memories)  # "Purple has become ..."
        source = next(c for c in conversations if c.sample_id == example["context"]["source"])
        assert {o.text for o in source.observations} <= set(memories)


def _mentions(text: str, value: str) -> bool:
    return re.search(rf"\b{re.escape(value)}\b", text, re.IGNORECASE) is not None


def _values(attribute: str) -> list[str]:
    """Every value the templates draw for ``attribute`` (a preference's values are grouped by category)."""
    values = {**ATTRIBUTES, **EXTRA_ATTRIBUTES}[attribute]["values"]
    return values if isinstance(values, list) else [v for group in values.values() for v in group]


@pytest.mark.parametrize(
    ("kind", "memories_with_a_value", "stale_values_stated"),
    [
        ("stable", 1, 0),  # the value once: the answer
        ("from_to", 1, 1),  # one memory names the old and the new value
        ("old_and_new", 2, 1),  # the old value, then a change to the answer
        ("chain", 3, 2),  # two older values, then the answer
        ("end_then_new", 1, 1),  # the old value's end, then the answer's start (one memory or two)
    ],
)
def test_each_kind_states_older_values_before_the_answer(conversations, embedder, kind, memories_with_a_value,
                                                         stale_values_stated):
    examples = [e for e in generate_current_state_examples(conversations, 60, embedder, seed=7)
                if e["context"]["kind"] == kind]
    assert examples, f"no {kind} example in 60"
    for example in examples:
        values = _values(example["context"]["attribute"])
        memories = _memories(example)
        about = [m for m in memories if any(_mentions(m, v) for v in values)]
        stated = {v for m in about for v in values if _mentions(m, v)}
        assert example["target"] in stated
        assert len(stated - {example["target"]}) >= stale_values_stated
        assert len(about) >= memories_with_a_value


def test_an_ended_value_is_named_before_the_new_one(conversations, embedder):
    examples = [e for e in generate_current_state_examples(conversations, 80, embedder, seed=4)
                if e["context"]["kind"] == "end_then_new"]
    assert {e["context"]["writes"] for e in examples} == {1, 2}  # with and without the old value's own memory
    sentences = 0
    for example in examples:
        values = _values(example["context"]["attribute"])
        target = example["target"]
        for memory in (m for m in _memories(example) if _mentions(m, target)):
            # Other values the memory names ("tennis" is not another value in "table tennis").
            older = [v for v in values if v.lower() not in target.lower() and _mentions(memory, v)]
            if older:  # one sentence: "... gave up X and took up Y." -- the ended value first
                sentences += 1
                assert all(memory.lower().index(v.lower()) < memory.lower().index(target.lower()) for v in older)
    assert 0 < sentences < len(examples)  # both forms: one sentence, and the end and the start apart


def test_held_out_values_are_never_drawn(conversations, embedder):
    from memlora_engine.evaluation.consolidation import load_histories

    # What `memlora distill --current-state` holds out: every value of the consolidation check's histories.
    held = {s.lower() for h in load_histories() for v in h.values for s in h.spellings(v)}
    assert {"ghent", "valencia", "italian"} <= held
    observations = {o.text for c in conversations for o in c.observations}
    examples = generate_current_state_examples(conversations, 150, embedder, seed=9, held_out=held)
    for example in examples:
        for text in [m for m in _memories(example) if m not in observations] + [example["target"]]:
            assert not any(_mentions(text, value) for value in held), text
    # Without them the same seed draws some (the templates were written before the check).
    drawn = generate_current_state_examples(conversations, 150, embedder, seed=9)
    assert any(_mentions(e["target"], value) for e in drawn for value in held)


def test_chains_run_from_three_to_five_values_and_answer_the_last(conversations, embedder):
    examples = [e for e in generate_current_state_examples(conversations, 120, embedder, seed=3, config=ROOMY)
                if e["context"]["kind"] == "chain"]
    assert {e["context"]["writes"] for e in examples} == set(range(CHAIN_VALUES[0], CHAIN_VALUES[1] + 1))
    for example in examples:
        values = _values(example["context"]["attribute"])
        stated = {v for m in _memories(example) for v in values if _mentions(m, v)}
        assert example["target"] in stated
        assert len(stated - {example["target"]}) >= example["context"]["writes"] - 1


def test_kinds_follow_their_weights(conversations, embedder):
    found = Counter(e["context"]["kind"] for e in generate_current_state_examples(conversations, 200, embedder))
    assert set(found) == set(KINDS)
    for kind, weight in KINDS.items():
        assert abs(found[kind] / 200 - weight) < 0.1, found


def test_prompts_follow_the_engine_settings(conversations, embedder):
    config = MemoryConfig(answer_top_k=3, dated_memories=True)
    for example in generate_current_state_examples(conversations, 6, embedder, config=config):
        lines = _memories(example)
        assert 0 < len(lines) <= 3 and all(re.match(r"\[2023-\d\d-\d\d\] ", line) for line in lines)


def test_deterministic_per_seed(conversations, embedder):
    def run(seed: int) -> list[Any]:
        return [(e["messages"], e["target"]) for e in generate_current_state_examples(conversations, 6, embedder,
                                                                                      seed=seed)]

    assert run(5) == run(5)
    assert run(5) != run(6)


def test_held_out_conversations_and_bad_counts_are_refused(conversations, embedder):
    with pytest.raises(ConfigError, match="validation/test"):
        generate_current_state_examples(parse_locomo([_sample("syn-a"), _sample("conv-26")]), 2, embedder)
    with pytest.raises(ConfigError, match="count"):
        generate_current_state_examples(conversations, 0, embedder)


def test_distill_writes_current_state_examples_and_train_mixes_them_in(distill_samples, train_one_step, capsys):
    data = distill_samples([_sample("syn-a"), _sample("syn-b"), _sample("conv-30")], "--current-state", "5")
    out = capsys.readouterr().out
    assert "current-state examples leave out the held-out conversations ['conv-30']" in out
    assert "current-state examples: 5 (" in out
    lines = (data / "generation" / f"{CURRENT_STATE_ID}.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 5
    stats = json.loads((data / "generation" / f"{CURRENT_STATE_ID}.stats.json").read_text(encoding="utf-8"))
    assert stats["conversations"] == ["syn-a", "syn-b"] and sum(stats["kinds"].values()) == 5
    assert stats["held_out_values"] > 100  # the command holds out the consolidation check's values (and spellings)
    assert json.loads((data / "manifest.json").read_text())["current_state"]["generation"]["count"] == 5

    card = train_one_step("generation", data, "--train-conversations", "syn-a", "--val-conversations", "syn-b",
                          "--with-current-state")
    syn_a = len((data / "generation" / "syn-a.jsonl").read_text().splitlines())
    assert card["data"]["train_conversations"] == ["syn-a", CURRENT_STATE_ID]
    assert card["data"]["train_examples"] == syn_a + 5
    assert card["data"]["current_state"]["count"] == 5


def test_with_current_state_is_for_generation_only(tmp_path, capsys):
    assert main(["train", "update", "--data-dir", str(tmp_path), "--with-current-state"]) == 2
    assert "generation operation only" in capsys.readouterr().err


def test_write_returns_the_statistics_it_writes(conversations, embedder, tmp_path):
    stats = write_current_state(tmp_path, conversations, 4, embedder, seed=1)
    assert stats == json.loads((tmp_path / "generation" / f"{CURRENT_STATE_ID}.stats.json").read_text())
    assert sum(stats["attributes"].values()) == 4

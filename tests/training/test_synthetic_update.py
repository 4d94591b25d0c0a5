"""Synthetic update conflicts: labels consistent with the edit, valid ids, determinism, no demo story.

All conversation text here is invented (no LoCoMo text).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from importlib.resources import files
from typing import Any

import pytest

from memlora_engine.commands import main
from memlora_engine.data.locomo import parse_locomo
from memlora_engine.errors import ConfigError
from memlora_engine.ops import plan_operations
from memlora_engine.parsing import parse_update_ops
from memlora_engine.prompts import render_prompt
from memlora_engine.training._synthetic_templates import CHANGE_DETAILS, EXTRA_ATTRIBUTES
from memlora_engine.training.cleaning import clean_output, prompt_values
from memlora_engine.training.synthetic_update import (
    EDIT_EVENTS,
    SYNTHETIC_ID,
    generate_update_examples,
    label_distribution,
)
from memlora_engine.types import Event, MemoryRecord, Operation

DEMO_WORDS = re.compile(r"\b(Alice|Paris|Lisbon|Miso|Pico|fish diet)\b", re.IGNORECASE)

_OBSERVATIONS = {
    "Rosa": [
        "Rosa volunteers at an animal shelter on weekends with her sister.",
        "Rosa plays the guitar in a band with friends from college.",
        "Rosa recently started a pottery class because she wanted a creative outlet.",
        "Rosa enjoys hiking in the mountains and camping under the stars.",
        "Rosa is training for a half marathon with her running club.",
        "Rosa took a trip to Paris last spring.",  # a demo word: never used
        "Rosa has a garden where she grows tomatoes and peppers.",
        "Rosa believes that reading every night helps her sleep better.",
    ],
    "Tariq": [
        "Tariq works at a bookstore downtown and loves recommending novels.",
        "Tariq attends a chess club every Thursday at the library.",
        "Tariq bought a new camera to photograph birds at the lake.",
        "Tariq is learning to cook Thai food from online videos.",
        "Tariq started a fish diet last month.",  # a demo story: never used
        "Tariq visited his grandparents in the countryside over the holidays.",
        "Tariq thinks that community gardens bring neighbours together.",
        "Tariq coaches a youth football team after school.",
    ],
}


def _sample(sample_id: str) -> dict[str, Any]:
    turns = [{"speaker": name, "dia_id": f"D1:{i + 1}", "text": f"Hello number {i}."}
             for i, name in enumerate(["Rosa", "Tariq"] * 8)]
    observation = {"session_1_observation": {
        name: [[text, f"D1:{2 * i + (name == 'Tariq') + 1}"] for i, text in enumerate(texts)]
        for name, texts in _OBSERVATIONS.items()}}
    qa = [{"question": "What does Rosa play?", "answer": "the guitar", "evidence": ["D1:3"], "category": 4}]
    return {"sample_id": sample_id, "qa": qa, "observation": observation,
            "conversation": {"speaker_a": "Rosa", "speaker_b": "Tariq",
                             "session_1_date_time": "9:05 am on 3 March, 2024", "session_1": turns}}


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "rich"])
def examples(request) -> list[dict[str, Any]]:
    return generate_update_examples(parse_locomo([_sample("syn-a"), _sample("syn-b")]), 300, seed=7,
                                    rich=request.param)


def _record(text: str, number: int) -> MemoryRecord:
    return MemoryRecord(id=f"m{number}", text=text, hash=str(number), created_at="2024-01-01")


def test_every_target_is_valid_for_the_engine(examples):
    assert len(examples) == 300
    for example in examples:
        values = prompt_values("memlora", Operation.UPDATE, example["messages"])  # an engine-rendered prompt
        old = json.loads(values["old_memories"])
        facts = json.loads(values["facts"])
        assert [o["id"] for o in old] == [str(i) for i in range(len(old))]
        assert 1 <= len(facts) <= 4
        ops = parse_update_ops(example["target"])
        assert len(ops) == len(facts)  # one operation per new fact
        assert example["target"] == clean_output(Operation.UPDATE, example["target"], new_facts=facts)
        id_map = {o["id"]: _record(o["text"], i) for i, o in enumerate(old)}
        planned, rejected = plan_operations(ops, id_map)
        assert rejected == []
        assert len(planned) == sum(op.event != Event.NONE.value for op in ops)
        for op in ops:
            if op.event == Event.ADD.value:
                assert op.id not in id_map and op.text in facts
            else:
                assert op.id in id_map
            if op.event == Event.NONE.value:
                assert op.text in facts
            if op.event == Event.UPDATE.value:
                assert op.old_memory == id_map[op.id or ""].text and op.text != op.old_memory
            if op.event == Event.DELETE.value:
                assert op.text == id_map[op.id or ""].text


def test_prompts_are_rendered_like_the_engine(examples):
    example = examples[0]
    values = prompt_values("memlora", Operation.UPDATE, example["messages"])
    old = json.loads(values["old_memories"])
    # Memory._infer's rendering: indent=2 old memories, compact fact list, ensure_ascii=False.
    assert example["messages"] == render_prompt(
        "memlora", Operation.UPDATE, facts=json.dumps(json.loads(values["facts"]), ensure_ascii=False),
        old_memories=json.dumps(old, ensure_ascii=False, indent=2))


def test_labels_follow_the_edit_types(examples):
    seen: Counter[str] = Counter()
    for example in examples:
        edits, events = example["context"]["edits"], example["context"]["events"]
        assert [op.event for op in parse_update_ops(example["target"])] == events
        index = 0
        while index < len(edits):
            expected = EDIT_EVENTS[edits[index]]
            assert tuple(events[index : index + len(expected)]) == tuple(e.value for e in expected)
            seen[edits[index]] += 1
            index += len(expected)
    # Every edit type occurs ("addition": rich only; the twins: with twins only).
    assert set(seen) >= set(EDIT_EVENTS) - {"addition", "twin_change", "twin_end_with_state"}


def test_edits_mean_what_they_say(examples):
    for example in examples:
        facts = json.loads(prompt_values("memlora", Operation.UPDATE, example["messages"])["facts"])
        ops = parse_update_ops(example["target"])
        for edit, op, fact in zip(example["context"]["edits"], ops, facts):
            if edit == "repeat":
                assert fact == op.text and op.event == "NONE"
            if edit == "repeat_part":
                assert fact.rstrip(".") in next(o["text"] for o in json.loads(prompt_values(
                    "memlora", Operation.UPDATE, example["messages"])["old_memories"]) if o["id"] == op.id)
            if edit == "end" and op.event == "DELETE":
                assert re.search(r"no longer|quit|died|broke up|sold|stopped|gave|split|ended|laid off|retired|"
                                 r"moved out|anymore|passed away|resigned|gone off|not care|let go|left|dropped out|lost|"
                                 r"cut out", fact), fact


def test_distribution_is_balanced_and_reported(examples):
    stats = label_distribution(examples)
    assert stats["examples"] == 300 and stats["facts"] == sum(stats["events"].values())
    assert set(stats["facts_per_call"]) == {"1", "2", "3", "4"}
    for event in Event:
        assert 0.1 <= stats["event_shares"][event.value] <= 0.45
    assert sum(stats["edits"].values()) == sum(len(x["context"]["edits"]) for x in examples)


def test_deterministic_per_seed():
    conversations = parse_locomo([_sample("syn-a"), _sample("syn-b")])
    first = generate_update_examples(conversations, 40, seed=3)
    assert first == generate_update_examples(conversations, 40, seed=3)
    assert first != generate_update_examples(conversations, 40, seed=4)


def test_no_demo_names_or_story(examples):
    for example in examples:
        assert not DEMO_WORDS.search(json.dumps(example, ensure_ascii=False))


def test_held_out_conversations_are_refused():
    with pytest.raises(ConfigError, match="validation/test"):
        generate_update_examples(parse_locomo([_sample("syn-a"), _sample("conv-26")]), 5)
    with pytest.raises(ConfigError, match="validation/test"):
        generate_update_examples(parse_locomo([_sample("conv-30")]), 5)


def test_distill_writes_synthetic_examples_and_train_mixes_them_in(distill_samples, train_one_step, capsys):
    data = distill_samples([_sample("syn-a"), _sample("syn-b")], "--synthetic-update", "24")
    out = capsys.readouterr().out
    assert "synthetic update examples: 24" in out and "mix with the cached LoCoMo update examples" in out
    lines = (data / "update" / f"{SYNTHETIC_ID}.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 24
    stats = json.loads((data / "update" / f"{SYNTHETIC_ID}.stats.json").read_text(encoding="utf-8"))
    locomo = sum(len((data / "update" / f"{c}.jsonl").read_text().splitlines()) for c in ("syn-a", "syn-b"))
    assert stats["synthetic"]["examples"] == 24
    assert stats["mix"]["examples"] == 24 + locomo - stats["locomo_left_out_as_too_long"]
    assert json.loads((data / "manifest.json").read_text())["synthetic"]["update"]["count"] == 24

    card = train_one_step("update", data, "--train-conversations", "syn-a", "--val-conversations", "syn-b",
                          "--with-synthetic")
    syn_a = len((data / "update" / "syn-a.jsonl").read_text().splitlines())
    assert card["data"]["train_conversations"] == ["syn-a", SYNTHETIC_ID]
    assert card["data"]["train_examples"] == syn_a + 24
    assert card["data"]["synthetic"]["count"] == 24


def test_with_synthetic_is_for_update_only(tmp_path, capsys):
    assert main(["train", "extraction", "--data-dir", str(tmp_path), "--with-synthetic"]) == 2
    assert "update operation only" in capsys.readouterr().err


def test_rich_recipe_writes_long_facts_single_calls_and_same_person_memories():
    examples = generate_update_examples(parse_locomo([_sample("syn-a"), _sample("syn-b")]), 300, seed=7,
                                        per_fact=True, rich=True)
    single = [x for x in examples if x["context"]["single"]]
    assert 0.1 <= len(single) / len(examples) <= 0.35
    assert all(x["context"]["old_memories"] == 1 for x in single)  # the fact's own memory, or one for an ADD
    changed = [json.loads(prompt_values("memlora", Operation.UPDATE, x["messages"])["facts"])[0]
               for x in examples if x["context"]["edits"] == ["change"]]
    with_clause = [f for f in changed if any(f.endswith(d + ".") for d in CHANGE_DETAILS)]
    assert 0.3 <= len(with_clause) / len(changed) <= 0.7
    extra = [x for x in examples if any(f"{a}" in json.dumps(x) for a in ("works at", "studies at", "supports"))]
    assert extra  # the added attributes are drawn
    # A second value beside the stored one is an ADD that leaves the old memory alone.
    additions = [x for x in examples if x["context"]["edits"] == ["addition"]]
    assert additions and all(x["context"]["events"] == ["ADD"] for x in additions)
    # An ADD over a memory about the same person's other attribute: a new value of one
    # attribute must not touch the others.
    adds = [x for x in examples if x["context"]["edits"] == ["unrelated"]]
    assert any(
        json.loads(prompt_values("memlora", Operation.UPDATE, x["messages"])["facts"])[0].split()[0]
        in {o["text"].split()[0].removesuffix("'s") for o in
            json.loads(prompt_values("memlora", Operation.UPDATE, x["messages"])["old_memories"])}
        for x in adds)


def _listing(example: dict[str, Any]) -> list[str]:
    return [o["text"] for o in json.loads(prompt_values("memlora", Operation.UPDATE, example["messages"])["old_memories"])]


def _fact(example: dict[str, Any]) -> str:
    (fact,) = json.loads(prompt_values("memlora", Operation.UPDATE, example["messages"])["facts"])
    return fact


def test_twins_add_a_changed_value_whose_memory_is_not_listed():
    conversations = parse_locomo([_sample("syn-a"), _sample("syn-b")])
    examples = generate_update_examples(conversations, 300, seed=7, per_fact=True, rich=True, twins=1.0)
    twins = [x for x in examples if x["context"].get("twin")]
    assert twins and all(x["context"]["events"] == ["ADD"] for x in twins)
    by_id = {x["id"]: x for x in examples}
    for twin in twins:
        fact, listed = _fact(twin), _listing(twin)
        original = by_id[twin["context"]["twin_of"]]  # the changed value it twins: same fact
        assert original["context"]["edits"] in (["change"], ["end_with_state"]) and _fact(original) == fact
        (changed,) = parse_update_ops(original["target"])
        # Its listing less the memory the fact changes (and at most one memory of the same
        # person's other attribute, listed first).
        assert changed.old_memory not in listed and set(listed) - set(_listing(original)) <= {listed[0]}
        person = fact.split()[0].removesuffix("'s")
        assert any(t.split()[0].removesuffix("'s") == person for t in listed)  # the person is still in memory
        (op,) = parse_update_ops(twin["target"])
        assert (op.event, op.text) == (Event.ADD.value, fact)
    # Without twins the recipe's examples are unchanged, and twins need one fact per call.
    plain = generate_update_examples(conversations, 120, seed=7, per_fact=True, rich=True)
    assert plain == generate_update_examples(conversations, 120, seed=7, per_fact=True, rich=True, twins=0.0)
    with pytest.raises(ConfigError, match="per_fact"):
        generate_update_examples(conversations, 10, seed=7, rich=True, twins=0.5)


def test_rich_values_stay_apart_from_the_consolidation_check():
    """The added value lists share no value with `memlora eval consolidation`'s histories (own benchmark cases)."""
    histories = files("memlora_engine.evaluation") / "data" / "consolidation.jsonl"
    held = {v.lower() for line in histories.read_text(encoding="utf-8").splitlines()
            for v in json.loads(line)["values"]}
    for attribute, spec in EXTRA_ATTRIBUTES.items():
        for value in spec["values"]:
            words = re.sub(r"^(a|an|the) ", "", value.lower())
            assert words not in held and not any(re.search(rf"\b{re.escape(h)}\b", words) for h in held), (
                attribute, value)

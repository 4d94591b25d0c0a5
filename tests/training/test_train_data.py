"""Distillation data: cleaning, prompt inversion, the offline signals, the replay and its cache."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from memlora_engine.config import MemoryConfig
from memlora_engine.errors import ConfigError, GeneratorError, ModelOutputError
from memlora_engine.prompts import render_prompt
from memlora_engine.training import (
    CachedTeacher,
    ChatModelTeacher,
    GeneratorTeacher,
    ObservationTeacher,
    UpdateLabeler,
    build_distillation_data,
    cap_empty_share,
    clean_output,
    is_empty_extraction,
    labeler_agreement,
    load_examples,
    prompt_values,
    replay_conversation,
    window_facts,
)
from memlora_engine.training.data import listing_settings
from memlora_engine.types import Operation

CASES = Path(__file__).parent / "data" / "update_cases.jsonl"


# -- cleaning -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("operation", "raw", "facts", "expected"),
    [
        (Operation.EXTRACTION, '<think>hmm</think>{"facts": ["Likes tea"]}', None, '{"facts": ["Likes tea"]}'),
        (Operation.EXTRACTION, 'Sure!\n```json\n{"facts": ["A  b", "A b", 3]}\n```', None, '{"facts": ["A b", "3"]}'),
        (Operation.EXTRACTION, '{"facts":[]}', None, '{"facts": []}'),
        (Operation.EXTRACTION, '["Bare list"]', None, '{"facts": ["Bare list"]}'),
        # NONE echoes of old memories are dropped; ops on the new facts are kept.
        (Operation.UPDATE,
         '{"memory": [{"id": "0", "text": "Old memory", "event": "NONE"},'
         ' {"id": "1", "text": "New fact", "event": "ADD"}]}',
         ["New fact"], '{"memory": [{"id": "1", "text": "New fact", "event": "ADD"}]}'),
        (Operation.UPDATE,
         '<think>x</think>{"memory": [{"id": "0", "text": "New fact", "event": "none"}]}',
         ["New fact"], '{"memory": [{"id": "0", "text": "New fact", "event": "NONE"}]}'),
        (Operation.UPDATE,
         '{"memory": [{"id": "0", "text": "Likes tea and cake", "event": "UPDATE", "old_memory": "Likes tea"},'
         ' {"id": "1", "text": "x", "event": "MERGE"}]}',
         ["Likes cake"],
         '{"memory": [{"id": "0", "text": "Likes tea and cake", "event": "UPDATE", "old_memory": "Likes tea"}]}'),
        (Operation.UPDATE, '{"memory": [{"id": "2", "text": "Gone", "event": "DELETE"}]}', ["Not gone"],
         '{"memory": [{"id": "2", "text": "Gone", "event": "DELETE"}]}'),
        (Operation.GENERATION, "<think>the cat</think>  Miso \n", None, "Miso"),
        (Operation.VQA, 'It is {"answer": "a cat", "reason": "whiskers", "extra": 1}', None,
         '{"answer": "a cat", "reason": "whiskers"}'),
    ],
)
def test_clean_output(operation, raw, facts, expected):
    assert clean_output(operation, raw, new_facts=facts) == expected


@pytest.mark.parametrize(
    ("operation", "raw"),
    [(Operation.EXTRACTION, "no json here"), (Operation.EXTRACTION, '{"other": 1}'),
     (Operation.UPDATE, '{"facts": []}'), (Operation.GENERATION, "<think>only thinking</think>"),
     (Operation.VQA, '{"reason": "no answer"}')],
)
def test_clean_output_rejects_unusable(operation, raw):
    with pytest.raises(ModelOutputError):
        clean_output(operation, raw)


@pytest.mark.parametrize(
    ("style", "operation", "values"),
    [
        ("memlora", Operation.EXTRACTION, {"conversation": "Ana: hi\nBen: $5 {x}", "date": "2024-03-03"}),
        ("memlora", Operation.UPDATE, {"old_memories": '[\n  {"id": "0", "text": "a"}\n]', "facts": '["b"]',
                                       "date": "2024-01-01"}),
        ("memlora", Operation.GENERATION, {"memories": "- a\n- b", "question": "Who?", "date": "2024-01-01"}),
        ("mem0", Operation.UPDATE, {"old_memories": "[]", "facts": '["b"]', "date": "2024-01-01"}),
    ],
)
def test_prompt_values_inverts_render_prompt(style, operation, values):
    messages = render_prompt(style, operation, **values)
    got = prompt_values(style, operation, messages)
    assert {k: got[k] for k in values if k in got} == {k: v for k, v in values.items() if k in got}
    assert render_prompt(style, operation, **got) == messages


def test_prompt_values_rejects_other_prompts():
    with pytest.raises(ValueError, match="not a memlora/update prompt"):
        prompt_values("memlora", Operation.UPDATE, [{"role": "system", "content": "x"}, {"role": "user", "content": "y"}])


# -- signals ------------------------------------------------------------------------------
def test_window_facts_assign_observations_to_the_window_of_their_last_evidence(conversations):
    facts = window_facts(conversations[0])
    assert facts[("D1:1", "D1:2")] == ["Ana adopted a cat named Miso."]
    # evidence D1:2 and D1:4: the fact is complete in the window holding D1:4
    assert facts[("D1:3", "D1:4")] == ["Ana grows tomatoes in her garden.", "Ben is learning the cello."]
    assert facts[("D1:5",)] == []
    assert facts[("D2:3", "D2:4")] == ["Ana moved to Lisbon."]


def _update_prompt(old: list[str], facts: list[str]) -> list[dict[str, str]]:
    old_json = json.dumps([{"id": str(i), "text": t} for i, t in enumerate(old)], ensure_ascii=False, indent=2)
    return render_prompt("memlora", Operation.UPDATE, old_memories=old_json, facts=json.dumps(facts), date="2024-01-01")


@pytest.mark.parametrize(
    ("old", "facts", "expected"),
    [
        (["Ana adopted a cat named Miso."], ["Ana adopted a cat named Miso."], [("NONE", "0")]),
        (["Ben plays the cello."], ["Ben plays the cello in an orchestra."], [("UPDATE", "0")]),
        (["Ben plays the cello."], ["Ben no longer plays the cello."], [("DELETE", "0")]),
        (["Ben plays the cello."], ["Ana moved to Lisbon."], [("ADD", "1")]),
        # one old memory is changed at most once per call: the second extension is an ADD
        (["Ben plays the cello."], ["Ben plays the cello in an orchestra.", "Ben plays the cello every day."],
         [("UPDATE", "0"), ("ADD", "1")]),
    ],
)
def test_update_labeler_rules(embedder, old, facts, expected):
    output = json.loads(UpdateLabeler(embedder).complete(_update_prompt(old, facts), operation=Operation.UPDATE))
    assert [(op["event"], op["id"]) for op in output["memory"]] == expected


def test_update_labeler_merged_text_and_old_memory(embedder):
    output = json.loads(UpdateLabeler(embedder).complete(
        _update_prompt(["Ben plays the cello."], ["Ben plays the cello in an orchestra."]), operation=Operation.UPDATE))
    assert output["memory"] == [{"id": "0", "text": "Ben plays the cello in an orchestra.", "event": "UPDATE",
                                 "old_memory": "Ben plays the cello."}]


def test_labeler_agreement_on_the_hand_labelled_cases(embedder):
    cases = [json.loads(line) for line in CASES.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(cases) == 40
    assert {c["event"] for c in cases} == {"ADD", "UPDATE", "DELETE", "NONE"}
    report = labeler_agreement(UpdateLabeler(embedder), cases)
    assert report["cases"] == 40
    # The hashed bag-of-words test embedder; with all-MiniLM-L6-v2 it is 0.90 (docs/training.md).
    assert report["agreement"] >= 0.7
    assert sum(sum(row.values()) for row in report["confusion"].values()) == 40


def test_signal_teachers_refuse_other_operations():
    with pytest.raises(GeneratorError):
        ObservationTeacher().complete([], operation=Operation.UPDATE)


# -- teachers -----------------------------------------------------------------------------
def test_chat_model_teacher_wraps_a_langchain_model():
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    teacher = ChatModelTeacher(FakeListChatModel(responses=['<think>x</think>{"facts": ["A"]}']))
    raw = teacher.complete([{"role": "user", "content": "hi"}], operation=Operation.EXTRACTION)
    assert clean_output(Operation.EXTRACTION, raw) == '{"facts": ["A"]}'


def test_generator_teacher_and_cache(tmp_path):
    from memlora_engine.testing import ScriptedGenerator

    scripted = ScriptedGenerator({"generation": ["first", "second"]})
    cached = CachedTeacher(GeneratorTeacher(scripted), tmp_path / "cache.jsonl")
    messages = [{"role": "user", "content": "q"}]
    assert cached.complete(messages, operation=Operation.GENERATION) == "first"
    assert cached.complete(messages, operation=Operation.GENERATION) == "first"
    assert len(scripted.calls) == 1
    reopened = CachedTeacher(GeneratorTeacher(scripted), tmp_path / "cache.jsonl")  # a later session
    assert reopened.complete(messages, operation=Operation.GENERATION) == "first"
    assert reopened.hits == 1 and len(scripted.calls) == 1


# -- replay -------------------------------------------------------------------------------
def test_replay_records_engine_prompts_and_clean_targets(conversations, signal_teachers, embedder):
    examples, report = replay_conversation(conversations[0], signal_teachers, embedder)
    extraction = examples["extraction"]
    assert len(extraction) == 5  # every two-turn window of both sessions
    first = extraction[0]
    assert first["messages"] == render_prompt(
        "memlora", Operation.EXTRACTION,
        conversation="Ana: I adopted a cat named Miso last week.\nBen: Lovely! I started learning the cello.",
        date="2024-03-03",
    )
    assert json.loads(first["target"]) == {"facts": ["Ana adopted a cat named Miso."]}
    assert json.loads(extraction[2]["target"]) == {"facts": []}
    # update calls happen only once old memories exist; every op is about a new fact
    for example in examples["update"]:
        facts = json.loads(prompt_values("memlora", Operation.UPDATE, example["messages"])["facts"])
        ops = json.loads(example["target"])["memory"]
        assert len(ops) == len(facts)
    # the orchestra fact extends the cello memory
    events = [op["event"] for e in examples["update"] for op in json.loads(e["target"])["memory"]]
    assert "UPDATE" in events
    # generation: answerable questions only, target = the reference answer
    assert [e["target"] for e in examples["generation"]] == ["Miso", "the cello", "Lisbon"]
    assert examples["generation"][0]["messages"][1]["content"].startswith("Memories:\n- ")
    assert report.examples == {"extraction": 5, "update": len(examples["update"]), "generation": 3}


def test_replay_dates_the_generation_memories_as_the_engine_does(conversations, signal_teachers, embedder):
    plain, _ = replay_conversation(conversations[0], signal_teachers, embedder)
    dated, _ = replay_conversation(conversations[0], signal_teachers, embedder,
                                   listing=MemoryConfig(dated_memories=True))
    for example in dated["generation"]:
        lines = [line for line in example["messages"][1]["content"].splitlines() if line.startswith("- ")]
        dates = [re.match(r"- \[(\d{4}-\d{2}-\d{2})\] ", line).group(1) for line in lines]  # type: ignore[union-attr]
        assert dates and dates == sorted(dates, reverse=True)  # newest first
    # the same memories and targets, only the listing differs
    assert [e["target"] for e in dated["generation"]] == [e["target"] for e in plain["generation"]]
    assert [e["messages"] for e in dated["extraction"]] == [e["messages"] for e in plain["extraction"]]
    assert dated["generation"][0]["messages"] != plain["generation"][0]["messages"]


@pytest.mark.parametrize(("listing", "memories", "turns"), [
    (None, MemoryConfig().answer_top_k, MemoryConfig().answer_turns),  # the engine's own listing
    (MemoryConfig(answer_top_k=2, answer_turns=0), 2, 0),
    (MemoryConfig(answer_top_k=3, answer_turns=2), 3, 2),
])
def test_replay_lists_the_generation_memories_as_the_engine_does(conversations, signal_teachers, embedder,
                                                                listing, memories, turns):
    examples, _ = replay_conversation(conversations[0], signal_teachers, embedder, listing=listing)
    listed = [line for line in examples["generation"][-1]["messages"][1]["content"].splitlines()
              if line.startswith(("- ", "  "))]
    kinds = ["memory" if line.startswith("- ") else "turn" for line in listed]
    assert 1 <= kinds.count("memory") <= memories
    # each of the first `turns` memories is followed by the turn it was written from
    assert kinds == [k for i in range(kinds.count("memory")) for k in ["memory"] + ["turn"] * (i < turns)]


@pytest.mark.parametrize(("first", "second", "cached"), [
    (MemoryConfig(dated_memories=True), None, "'dated_memories': True"),
    (MemoryConfig(answer_turns=0), None, "'answer_turns': 0"),
    (None, MemoryConfig(answer_top_k=3), f"'answer_top_k': {MemoryConfig().answer_top_k}"),
    ("unrecorded", None, "'answer_top_k': 10, 'answer_turns': 0"),  # a cache from before "listing"
])
def test_build_distillation_data_refuses_a_cache_of_another_listing(tmp_path, conversations, signal_teachers,
                                                                   embedder, first, second, cached):
    out = tmp_path / "data"
    if first == "unrecorded":
        out.mkdir()
        (out / "manifest.json").write_text(json.dumps({"conversations": {"syn-1": {}}, "dated_memories": False}))
    else:
        manifest = build_distillation_data(conversations[:1], signal_teachers, embedder, out, listing=first)
        assert manifest["listing"] == listing_settings(first or MemoryConfig())
    with pytest.raises(ConfigError, match=re.escape(cached)):
        build_distillation_data(conversations, signal_teachers, embedder, out, listing=second)
    assert set(json.loads((out / "manifest.json").read_text())["conversations"]) == {"syn-1"}  # nothing written


def test_build_distillation_data_caches_and_resumes(tmp_path, conversations, signal_teachers, embedder, monkeypatch):
    out = tmp_path / "data"
    manifest = build_distillation_data(conversations, signal_teachers, embedder, out)
    assert set(manifest["conversations"]) == {"syn-1", "syn-2"}
    assert manifest["teachers"]["update"] == "rule-update-labeler"
    assert len(load_examples(out, "generation", ["syn-1", "syn-2"])) == 6

    import memlora_engine.training.data as data_module

    def fail(*args, **kwargs):
        raise AssertionError("a cached conversation was replayed again")

    monkeypatch.setattr(data_module, "replay_conversation", fail)
    build_distillation_data(conversations, signal_teachers, embedder, out)  # all cached: no replay
    with pytest.raises(FileNotFoundError, match="memlora distill"):
        load_examples(out, "extraction", ["missing"])


def test_vqa_wiring(tmp_path):
    from memlora_engine.training import build_vqa_examples

    image = tmp_path / "x.png"
    image.write_bytes(b"\x89PNG fake")

    class FakeVLM:
        name = "fake-vlm"

        def __init__(self):
            self.seen = []

        def complete(self, messages, *, operation, json_schema=None, max_new_tokens=1024):
            self.seen.append(messages)
            return '{"answer": "a cat", "reason": "it has whiskers"}' if "animal" in messages[1]["content"][1]["text"] else "?"

    teacher = FakeVLM()
    examples, unusable = build_vqa_examples([(image, "Which animal?"), (image, "Color?")], teacher)
    assert unusable == 1
    assert examples[0]["target"] == '{"answer": "a cat", "reason": "it has whiskers"}'
    assert teacher.seen[0][1]["content"][0]["image_url"]["url"].startswith("data:image/png;base64,")


def _extraction_record(i: int, facts: list[str]) -> dict:
    return {"operation": "extraction", "id": f"x{i}", "target": json.dumps({"facts": facts})}


def test_cap_empty_share_keeps_every_fact_window_and_samples_the_empty_ones():
    records = [_extraction_record(i, [] if i % 2 else [f"fact {i}"]) for i in range(40)]  # 20 + 20 empty
    capped = cap_empty_share(records, 0.2, seed=3)
    empty = [r for r in capped if is_empty_extraction(r)]
    assert [r for r in capped if not is_empty_extraction(r)] == records[0::2]
    assert len(empty) == 5  # 5 / 25 = 0.2
    assert [r["id"] for r in capped] == sorted((r["id"] for r in capped), key=lambda x: int(x[1:]))  # order kept
    assert cap_empty_share(records, 0.2, seed=3) == capped  # seeded
    assert cap_empty_share(records, 0.5) == records  # already within the cap
    assert [r for r in cap_empty_share(records, 0.0) if is_empty_extraction(r)] == []
    other = [{"operation": "generation", "target": "Paris"}, {"operation": "extraction", "target": "not json"}]
    assert not any(map(is_empty_extraction, other))
    with pytest.raises(ValueError):
        cap_empty_share(records, 1.0)

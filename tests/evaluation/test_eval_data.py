"""The LoCoMo loader (synthetic fixtures and the dev file's quirks), splits and configuration specs."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from memlora_engine.errors import ConfigError, InvalidInputError
from memlora_engine.evaluation import (
    DEV_SPLITS,
    load_locomo,
    parse_config,
    parse_evidence,
    parse_locomo,
    parse_session_datetime,
    select_questions,
    select_split,
    split_conversations,
)
from memlora_engine.evaluation.configs import PIPELINE_OPERATIONS
from memlora_engine.types import Operation


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1:56 pm on 8 May, 2023", datetime(2023, 5, 8, 13, 56)),
        ("12:09 am on 13 September, 2023", datetime(2023, 9, 13, 0, 9)),
        ("12:30 pm on 10 March, 2024", datetime(2024, 3, 10, 12, 30)),
        ("9:05 AM on 3 Mar 2024", datetime(2024, 3, 3, 9, 5)),
    ],
)
def test_parse_session_datetime(text, expected):
    assert parse_session_datetime(text) == expected


@pytest.mark.parametrize("text", ["", "May 8, 2023", "1:56 pm on 31 February, 2023", "1:56 pm on 8 Maybe, 2023"])
def test_parse_session_datetime_rejects(text):
    with pytest.raises(InvalidInputError):
        parse_session_datetime(text)


KNOWN = {"D1:1", "D1:2", "D2:3", "D11:26", "D8:6", "D9:17"}


@pytest.mark.parametrize(
    ("raw", "valid", "invalid"),
    [
        (["D1:1"], ["D1:1"], []),
        (["D8:6; D9:17"], ["D8:6", "D9:17"], []),
        (["D1:1 D1:2 D2:3"], ["D1:1", "D1:2", "D2:3"], []),
        ("D1:1, D1:2", ["D1:1", "D1:2"], []),
        (["D:11:26"], ["D11:26"], []),
        (["D"], [], ["D"]),
        (["D10:19", "D1:1"], ["D1:1"], ["D10:19"]),
        (["D1:1", "D1:1"], ["D1:1"], []),
        ([], [], []),
        (None, [], []),
        ([["D1:1", "D1:2"]], ["D1:1", "D1:2"], []),
    ],
)
def test_parse_evidence(raw, valid, invalid):
    assert parse_evidence(raw, KNOWN) == (valid, invalid)


def test_loader_on_synthetic_quirks(synthetic_file):
    conversations = load_locomo(synthetic_file)
    assert [c.sample_id for c in conversations] == ["syn-1", "syn-2"]
    conv = conversations[0]
    assert (conv.speaker_a, conv.speaker_b) == ("Ana", "Ben")
    assert [s.index for s in conv.sessions] == [1, 2, 3]
    assert conv.sessions[0].date_time == datetime(2024, 3, 3, 9, 5)
    assert conv.orphan_date_times == {4: "1:00 pm on 2 April, 2024"}
    photo = conv.sessions[0].turns[2]
    assert photo.blip_caption == "a photo of tomatoes in a garden"
    assert photo.img_url == ("http://example.invalid/a.jpg",)
    assert photo.rendered() == "Look at my garden. [shares a photo: a photo of tomatoes in a garden]"
    assert photo.rendered(captions=False) == "Look at my garden."
    assert conv.role_of("Ana") == "user" and conv.role_of("Ben") == "assistant"
    qa = {q.index: q for q in conv.qa}
    assert qa[1].answer == "2022"  # int answer
    assert qa[2].evidence == ("D1:2", "D2:2")  # joined ids split
    assert qa[3].reference == "Yes" and qa[3].evidence == ("D1:3",)  # ';' alternatives, "D:1:3" repaired
    assert qa[4].answer is None and qa[4].adversarial_answer == "nurse" and qa[4].category_name == "adversarial"
    assert qa[5].evidence == ("D3:1",) and qa[5].invalid_evidence == ("D9:9",)  # dangling id kept aside
    assert qa[6].evidence == () and qa[6].invalid_evidence == ("D",)
    obs = conv.observations
    assert [(o.session, o.speaker, o.evidence) for o in obs] == [
        (1, "Ana", ("D1:1",)), (1, "Ben", ("D1:2", "D1:4")), (2, "Ana", ("D2:1", "D2:3"))
    ]
    assert conv.session_summaries == {1: "Ana and Ben talked about pets and music."}


def test_loader_errors(tmp_path, make_sample):
    with pytest.raises(InvalidInputError):
        load_locomo(tmp_path / "missing.json")
    bad = make_sample()
    del bad["conversation"]["speaker_b"]
    with pytest.raises(InvalidInputError):
        parse_locomo([bad])
    with pytest.raises(InvalidInputError):
        parse_locomo({"not": "a list"})


def test_question_filter_by_sessions(synthetic_file):
    conv = load_locomo(synthetic_file)[0]
    assert [q.index for q in select_questions(conv, None, None)] == list(range(7))
    # evidence entirely in session 1: only the cat (D1:1) and the garden (D1:3) questions
    assert [q.index for q in select_questions(conv, 1, None)] == [0, 3]
    assert [q.index for q in select_questions(conv, 2, None)] == [0, 1, 2, 3, 4]  # no-evidence question dropped
    assert [q.index for q in select_questions(conv, 2, 2)] == [0, 1]


def test_dev_splits_are_disjoint_and_6_1_1():
    assert {k: len(v) for k, v in DEV_SPLITS.items()} == {"train": 6, "validation": 1, "test": 1}
    ids = [i for v in DEV_SPLITS.values() for i in v]
    assert len(ids) == len(set(ids)) == 8


def test_split_selection(synthetic_file):
    conversations = load_locomo(synthetic_file)
    splits = {"train": ["syn-1"], "test": ["syn-2"]}
    assert [c.sample_id for c in select_split(conversations, "test", splits)] == ["syn-2"]
    assert len(select_split(conversations, "all")) == 2
    grouped = split_conversations(conversations, {"train": ["syn-1"]})
    assert [c.sample_id for c in grouped["unassigned"]] == ["syn-2"]
    with pytest.raises(ConfigError):
        select_split(conversations, "test")  # the dev ids are not in this file
    with pytest.raises(ConfigError):
        select_split(conversations, "nope", splits)
    with pytest.raises(ConfigError):
        split_conversations(conversations, {"a": ["syn-1"], "b": ["syn-1"]})


@pytest.mark.parametrize(
    ("spec", "name", "adapters", "prompts", "full"),
    [
        ("memlora", "memlora", {"extraction", "update", "generation"}, ("memlora",) * 3, False),
        ("mem0-prompts", "mem0-prompts", set(), ("mem0",) * 3, False),
        ("memlora-prompts-base", "memlora-prompts-base", set(), ("memlora",) * 3, False),
        ("full-context", "full-context", set(), ("memlora",) * 3, True),
        ("adapters=extraction,update", "adapters-extraction-update", {"extraction", "update"}, ("memlora",) * 3, False),
        ("adapters=generation;base-prompts=mem0", "adapters-generation-base-mem0", {"generation"},
         ("mem0", "mem0", "memlora"), False),
        ("adapters=none", "adapters-none", set(), ("memlora",) * 3, False),
        ("full-context;base-prompts=mem0", "full-context-base-mem0", set(), ("mem0",) * 3, True),
    ],
)
def test_parse_config(spec, name, adapters, prompts, full):
    config = parse_config(spec)
    assert config.name == name
    assert {op.value for op in config.adapters} == adapters
    assert tuple(config.prompt_style(op) for op in PIPELINE_OPERATIONS) == prompts
    assert config.full_context is full
    memory_config = config.memory_config()
    assert memory_config.store == "memory"


@pytest.mark.parametrize("spec", ["", "nope", "adapters=vqa", "adapters=extraction;base-prompts=long", "memlora;x=1"])
def test_parse_config_rejects(spec):
    with pytest.raises(ConfigError):
        parse_config(spec)


# -- the real dev file (never copied into the repo; skipped when absent) ---------------------------------


def test_dev_file_loads_with_its_quirks(locomo_dev):
    conversations = load_locomo(locomo_dev)
    ids = [c.sample_id for c in conversations]
    assert sorted(ids) == sorted(i for v in DEV_SPLITS.values() for i in v)
    assert [c.sample_id for c in select_split(conversations, "test")] == list(DEV_SPLITS["test"])
    qa = [q for c in conversations for q in c.qa]
    assert {q.category for q in qa} == {1, 2, 3, 4, 5}
    # every category 1-4 question has a gold answer, int answers became text
    assert all(isinstance(q.answer, str) for q in qa if q.category != 5)
    assert all(q.adversarial_answer is not None for q in qa if q.category == 5)
    assert sum(q.answer is None for q in qa if q.category == 5) > 0
    # joined / malformed evidence is repaired; what names no turn is kept aside, not lost
    for conv in conversations:
        known = conv.dia_ids
        for q in conv.qa:
            assert set(q.evidence) <= known
    assert any(q.invalid_evidence for q in qa)
    assert any(len(q.reference.split(";")) == 1 and ";" in q.answer for q in qa if q.category == 3)
    # sessions parse their date-times, in order; some conversations list date-times of sessions with no turns
    for conv in conversations:
        stamps = [s.date_time for s in conv.sessions]
        assert all(stamps) and stamps == sorted(stamps)
    assert any(c.orphan_date_times for c in conversations)
    assert all(c.observations and c.session_summaries for c in conversations)
    assert any(t.blip_caption for c in conversations for t in c.turns)


def test_dev_file_raw_quirks_exist(locomo_dev):
    """The quirks the loader handles are really in the file (guards against a cleaned-up copy)."""
    raw = json.loads(locomo_dev.read_text(encoding="utf-8"))
    evidence = [e for s in raw for q in s["qa"] for e in q["evidence"]]
    assert any(";" in e or " " in e.strip() for e in evidence)
    assert any(isinstance(q.get("answer"), int) for s in raw for q in s["qa"])
    assert Operation.EXTRACTION in PIPELINE_OPERATIONS


def test_conversation_selection_by_ids_or_splits(synthetic_file):
    from memlora_engine.data.splits import select_conversations

    conversations = load_locomo(synthetic_file)
    assert [c.sample_id for c in select_conversations(conversations, ids="syn-2, syn-1", splits="test")] == [
        "syn-2", "syn-1"]
    assert len(select_conversations(conversations, ids=None, splits="all")) == 2
    with pytest.raises(ConfigError, match="syn-9"):
        select_conversations(conversations, ids="syn-1,syn-9", splits="test", source="x.json")

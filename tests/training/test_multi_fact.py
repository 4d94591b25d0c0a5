"""Multi-fact extraction windows: engine rendering, union targets, speaker calls, splits, seeds, statistics.

All conversation text here is invented (no LoCoMo text).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from memlora_engine import Memory, MemoryConfig
from memlora_engine.commands import main
from memlora_engine.data.locomo import Conversation, parse_locomo
from memlora_engine.data.windows import window_messages
from memlora_engine.errors import ConfigError
from memlora_engine.testing import DeterministicEmbedder, ScriptedGenerator
from memlora_engine.training._synthetic_templates import BANNED_WORDS
from memlora_engine.training.cleaning import prompt_values
from memlora_engine.training.data import replay_conversation
from memlora_engine.training.multi_fact import (
    MULTI_FACT_ID,
    facts_distribution,
    generate_multi_fact_examples,
)
from memlora_engine.types import Operation

DEMO_STORY = re.compile(r"\b(" + "|".join(BANNED_WORDS) + r")\b", re.IGNORECASE)

# (speaker, text, [(observation, evidence turn numbers of this session)])
_SESSION_1 = [
    ("Rosa", "I started volunteering at the animal shelter.", [("Rosa volunteers at an animal shelter.", [1])]),
    ("Tariq", "Nice! I joined a chess club on Thursdays.", [("Tariq joined a chess club that meets on Thursdays.", [2])]),
    ("Rosa", "How was your weekend?", []),
    ("Tariq", "Quiet, mostly reading.", []),
    ("Rosa", "I also play guitar in a band now.", [("Rosa plays guitar in a band.", [5])]),
    ("Tariq", "Cool, what kind of music?", []),
    # evidence in both speakers' turns: a Rosa-only call cannot keep it
    ("Rosa", "Mostly rock. We practise on Mondays.", [("Rosa's band plays rock and practises on Mondays.", [6, 7])]),
    ("Tariq", "I bought a camera to photograph birds.", [("Tariq bought a camera to photograph birds.", [8])]),
    ("Rosa", "Sounds fun!", []),
    ("Tariq", "Thanks, see you!", []),
    ("Rosa", "My sister visited me from Paris.", [("Rosa's sister visited her from Paris.", [11])]),  # demo word
    ("Tariq", "Have fun.", []),
]
_SESSION_2 = [
    ("Tariq", "I'm learning to cook Thai food.", [("Tariq is learning to cook Thai food.", [1])]),
    ("Rosa", "Yum. I'm training for a half marathon.", [("Rosa is training for a half marathon.", [2])]),
    ("Tariq", "Good luck!", []),
    ("Rosa", "Thanks. I ran 15 km yesterday.", [("Rosa ran 15 km on 9 March 2024.", [4])]),
    ("Tariq", "I eat fish every day now.", [("Tariq eats fish every day.", [5])]),  # demo word
    ("Rosa", "Healthy!", []),
    ("Tariq", "Bye for now.", []),
    ("Rosa", "Bye!", []),
    ("Tariq", "Wait, one more thing.", []),  # a chit-chat stretch: runs of windows without a fact
    ("Rosa", "Yes?", []),
    ("Tariq", "Never mind, talk soon.", []),
    ("Rosa", "Talk soon!", []),
]


def _sample(sample_id: str) -> dict[str, Any]:
    conversation: dict[str, Any] = {"speaker_a": "Rosa", "speaker_b": "Tariq"}
    observation: dict[str, Any] = {}
    for number, (turns, date) in enumerate([(_SESSION_1, "9:05 am on 3 March, 2024"),
                                            (_SESSION_2, "12:30 pm on 10 March, 2024")], start=1):
        conversation[f"session_{number}_date_time"] = date
        conversation[f"session_{number}"] = [{"speaker": s, "dia_id": f"D{number}:{i}", "text": t}
                                             for i, (s, t, _) in enumerate(turns, start=1)]
        facts: dict[str, list[Any]] = {"Rosa": [], "Tariq": []}
        for speaker, _, observations in turns:
            for text, evidence in observations:
                facts[speaker].append([text, [f"D{number}:{e}" for e in evidence]])
        observation[f"session_{number}_observation"] = facts
    qa = [{"question": "What does Rosa play?", "answer": "guitar", "evidence": ["D1:5"], "category": 4}]
    return {"sample_id": sample_id, "conversation": conversation, "qa": qa, "observation": observation}


@pytest.fixture(scope="module")
def sources() -> list[Conversation]:
    return parse_locomo([_sample("syn-a"), _sample("syn-b")])


@pytest.fixture(scope="module")
def drawn(sources):
    return generate_multi_fact_examples(sources, 16, seed=5, speaker_share=0.25)


def _facts(example: dict[str, Any]) -> list[str]:
    return json.loads(example["target"])["facts"]


def _turns(conversation: Conversation, example: dict[str, Any]) -> tuple[Any, list[Any]]:
    session = next(s for s in conversation.sessions if s.index == example["context"]["session"])
    by_id = {t.dia_id: t for t in session.turns}
    return session, [by_id[d] for d in example["context"]["dia_ids"]]


def test_calls_are_rendered_as_the_engine_renders_them(sources, drawn):
    by_id = {c.sample_id: c for c in sources}
    generator = ScriptedGenerator({"extraction": ['{"facts": []}']})
    with Memory(MemoryConfig(store="memory", namespace="mf-check", extraction_window=None), generator=generator,
                embedder=DeterministicEmbedder()) as memory:  # real Chroma, the engine's own add path
        for example in drawn.examples:
            conversation = by_id[example["context"]["source"]]
            session, turns = _turns(conversation, example)
            memory.add(window_messages(conversation, turns), user_id="check", timestamp=session.date_time)
            assert example["messages"] == generator.calls[-1].messages
            assert prompt_values("memlora", Operation.EXTRACTION, example["messages"])["date"] == \
                session.date_time.date().isoformat()


def test_windows_calls_join_consecutive_windows_with_the_union_of_their_targets(sources, drawn, signal_teachers,
                                                                                 embedder):
    """Each windows call = 2-4 consecutive distilled two-turn calls of one session: turns joined, targets united."""
    distilled: dict[tuple[str, tuple[str, ...]], dict[str, Any]] = {}
    for conversation in sources:
        examples, _ = replay_conversation(conversation, signal_teachers, embedder)
        for record in examples["extraction"]:
            distilled[conversation.sample_id, tuple(record["context"]["dia_ids"])] = record
    windows = [e for e in drawn.examples if e["context"]["variant"] == "windows"]
    assert windows and {e["context"]["windows"] for e in windows} == {2, 3, 4}
    for example in windows:
        ids = example["context"]["dia_ids"]
        parts = [distilled[example["context"]["source"], tuple(ids[i:i + 2])] for i in range(0, len(ids), 2)]
        assert len(parts) == example["context"]["windows"]
        values = [prompt_values("memlora", Operation.EXTRACTION, p["messages"]) for p in parts]
        got = prompt_values("memlora", Operation.EXTRACTION, example["messages"])
        assert got["conversation"] == "\n".join(v["conversation"] for v in values)
        assert {got["date"]} == {v["date"] for v in values}
        assert _facts(example) == list(dict.fromkeys(f for p in parts for f in _facts(p)))


def test_speaker_calls_keep_one_speakers_turns_verbatim(sources, drawn):
    by_id = {c.sample_id: c for c in sources}
    speaker_calls = [e for e in drawn.examples if e["context"]["variant"] == "speaker"]
    assert len(speaker_calls) == round(16 * 0.25)
    for example in speaker_calls:
        speaker = example["context"]["speaker"]
        _, turns = _turns(by_id[example["context"]["source"]], example)
        assert len(turns) >= 2 and {t.speaker for t in turns} == {speaker}
        lines = prompt_values("memlora", Operation.EXTRACTION, example["messages"])["conversation"].split("\n")
        assert lines == [f"{speaker}: {t.text}" for t in turns]  # the original turns, never merged or reworded


def test_speaker_calls_never_hold_half_a_fact(sources):
    """A speaker call lists exactly the facts resting on its turns; a run where one would be half there is not used."""
    conversation = sources[0]
    drawn = generate_multi_fact_examples([conversation], 100, seed=0, speaker_share=1.0)
    assert drawn.skipped["speaker_partial_fact"] > 0  # D1:7's fact rests on Tariq's D1:6 and Rosa's D1:7
    turn_order = {t.dia_id: i for i, t in enumerate(conversation.turns)}

    def window_then_file_order(item: tuple[int, Any]) -> tuple[int, int]:
        index, observation = item
        return turn_order[max(observation.evidence, key=turn_order.__getitem__)] // 2, index

    for example in drawn.examples:
        ids = set(example["context"]["dia_ids"])
        assert "D1:7" not in ids and not {"D1:6", "D1:8"} <= ids  # the runs where that fact would be half there
        grounded = sorted(((i, o) for i, o in enumerate(conversation.observations) if set(o.evidence) <= ids),
                          key=window_then_file_order)
        assert _facts(example) == [o.text for _, o in grounded]
    assert drawn.speaker_dropped_facts > 0  # the other speaker's facts are left out


def test_chit_chat_stays_represented(drawn):
    assert any(_facts(e) == [] for e in drawn.examples)  # whole calls with nothing to remember
    assert any(len(_facts(e)) >= 2 for e in drawn.examples)
    stats = facts_distribution(drawn.examples)
    assert stats["empty_share"] == round(sum(_facts(e) == [] for e in drawn.examples) / len(drawn.examples), 3)


def test_demo_story_never_in_the_data(drawn):
    assert drawn.skipped.get("demo_story", 0) > 0  # the sample mentions Paris and fish: those runs are skipped
    for example in drawn.examples:
        assert not DEMO_STORY.search(json.dumps(example, ensure_ascii=False))


def test_only_training_conversations(sources, drawn):
    assert {e["context"]["source"] for e in drawn.examples} <= {"syn-a", "syn-b"}
    for held_out in ("conv-26", "conv-30"):
        with pytest.raises(ConfigError, match="validation/test"):
            generate_multi_fact_examples(parse_locomo([_sample("syn-a"), _sample(held_out)]), 5)


def test_deterministic_per_seed(sources, drawn):
    assert generate_multi_fact_examples(sources, 16, seed=5, speaker_share=0.25).examples == drawn.examples
    assert generate_multi_fact_examples(sources, 16, seed=6, speaker_share=0.25).examples != drawn.examples


def test_long_calls_are_skipped_and_the_runs_can_run_out(sources):
    short = generate_multi_fact_examples(sources, 500, seed=0, max_chars=480)
    assert short.skipped["too_long"] > 0
    assert all(sum(len(m["content"]) for m in e["messages"]) + len(e["target"]) <= 480 for e in short.examples)
    # 24 runs of 2-4 windows per conversation (6 windows per session: 5 + 4 + 3): 48 candidates
    assert short.candidates == 48 and len(short.examples) == 48 - sum(short.skipped.values())


def test_bad_speaker_share_is_refused(sources):
    with pytest.raises(ConfigError, match="speaker_share"):
        generate_multi_fact_examples(sources, 5, speaker_share=1.5)


def test_distill_writes_multi_fact_calls_and_train_mixes_them_in(distill_samples, train_one_step, capsys):
    data = distill_samples([_sample("syn-a"), _sample("conv-30")], "--multi-fact-windows", "10")
    out = capsys.readouterr().out
    assert "multi-fact extraction calls leave out the held-out conversations ['conv-30']" in out
    assert "multi-fact extraction calls: 10 of 10 asked (24 runs of 2-4 windows" in out
    records = [json.loads(line) for line in
               (data / "extraction" / f"{MULTI_FACT_ID}.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(records) == 10 and {r["context"]["source"] for r in records} == {"syn-a"}
    stats = json.loads((data / "extraction" / f"{MULTI_FACT_ID}.stats.json").read_text(encoding="utf-8"))
    per_call = [len(_facts(r)) for r in records]
    assert stats["synthetic"]["facts_per_call"] == {str(k): per_call.count(k) for k in sorted(set(per_call))}
    assert stats["synthetic"]["facts"] == sum(per_call)
    assert stats["variants"]["speaker"] == round(10 * 0.25)
    assert stats["locomo_cached"] == ["syn-a"]
    two_turn = (data / "extraction" / "syn-a.jsonl").read_text(encoding="utf-8").splitlines()
    assert stats["locomo"]["examples"] == len(two_turn) and stats["mix"]["examples"] == len(two_turn) + 10
    assert json.loads((data / "manifest.json").read_text())["synthetic"]["extraction"]["count"] == 10

    card = train_one_step("extraction", data, "--train-conversations", "syn-a", "--val-conversations", "conv-30",
                          "--with-multi-fact")
    assert card["data"]["train_conversations"] == ["syn-a", MULTI_FACT_ID]
    assert card["data"]["train_examples"] == len(two_turn) + 10
    assert card["data"]["synthetic"]["count"] == 10


def test_with_multi_fact_is_for_extraction_only(tmp_path, capsys):
    assert main(["train", "update", "--data-dir", str(tmp_path), "--with-multi-fact"]) == 2
    assert "extraction operation only" in capsys.readouterr().err


def test_synthetic_update_keeps_the_multi_fact_manifest_entry(tmp_path: Path, sources):
    from memlora_engine.training.multi_fact import write_multi_fact_windows
    from memlora_engine.training.synthetic_update import write_synthetic_update

    write_multi_fact_windows(tmp_path, sources, 4)
    write_synthetic_update(tmp_path, sources, 4)
    synthetic = json.loads((tmp_path / "manifest.json").read_text())["synthetic"]
    assert synthetic["extraction"]["count"] == 4 and synthetic["update"]["count"] == 4

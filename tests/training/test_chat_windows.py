"""Chat-shaped extraction windows: engine rendering, the turn's own facts, the kinds, splits, seeds, CLI.

All conversation text here is invented (no LoCoMo text).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from memlora_engine import Memory, MemoryConfig
from memlora_engine.commands import main
from memlora_engine.data.locomo import Conversation, parse_locomo
from memlora_engine.errors import ConfigError
from memlora_engine.testing import DeterministicEmbedder, ScriptedGenerator
from memlora_engine.training.chat_windows import (
    ACKNOWLEDGEMENTS,
    CHAT_WINDOWS_ID,
    generate_chat_window_examples,
)
from memlora_engine.training.cleaning import prompt_values
from memlora_engine.types import Operation

# (speaker, text, [(observation, evidence turn numbers of this session)])
_TURNS = [
    ("Ines", "I adopted a parrot called Kiwi.", [("Ines adopted a parrot called Kiwi.", [1])]),
    ("Bao", "Lovely! I repair old radios as a hobby.", [("Bao repairs old radios as a hobby.", [2])]),
    ("Ines", "What was the last one you fixed?", []),
    # rests on Bao's turn and the question before it: a Bao-only call cannot hold it
    ("Bao", "A 1950s valve set from my grandfather.", [("Bao fixed his grandfather's 1950s valve radio.", [3, 4])]),
    ("Ines", "I teach chemistry at a high school.", [("Ines teaches chemistry at a high school.", [5])]),
    ("Bao", "Nice talking to you.", []),
    ("Ines", "I moved to Lisbon last year.", [("Ines moved to Lisbon.", [7])]),  # the demo's story
    ("Bao", "See you soon!", []),
]


def _sample(sample_id: str) -> dict[str, Any]:
    turns = [{"speaker": s, "dia_id": f"D1:{i}", "text": t} for i, (s, t, _) in enumerate(_TURNS, start=1)]
    facts: dict[str, list[Any]] = {"Ines": [], "Bao": []}
    for speaker, _, observations in _TURNS:
        for text, evidence in observations:
            facts[speaker].append([text, [f"D1:{e}" for e in evidence]])
    return {"sample_id": sample_id, "qa": [],
            "conversation": {"speaker_a": "Ines", "speaker_b": "Bao", "session_1": turns,
                             "session_1_date_time": "4:10 pm on 2 June, 2024"},
            "observation": {"session_1_observation": facts}}


@pytest.fixture(scope="module")
def sources() -> list[Conversation]:
    return parse_locomo([_sample(f"chat-{x}") for x in "abcdef"])


@pytest.fixture(scope="module")
def drawn(sources):
    return generate_chat_window_examples(sources, 100, seed=3, empty_share=1.0)


def _facts(example: dict[str, Any]) -> list[str]:
    return json.loads(example["target"])["facts"]


def _lines(example: dict[str, Any]) -> list[str]:
    return prompt_values("memlora", Operation.EXTRACTION, example["messages"])["conversation"].split("\n")


def test_calls_are_rendered_as_the_engine_renders_a_chat_turn(drawn):
    generator = ScriptedGenerator({"extraction": ['{"facts": []}']})
    with Memory(MemoryConfig(store="memory", namespace="chat-check"), generator=generator,
                embedder=DeterministicEmbedder()) as memory:  # real Chroma, the engine's own add path
        for example in drawn.examples:
            speaker, said = _lines(example)[0].split(": ", 1)
            messages = [{"role": "user", "name": speaker, "content": said}]
            if example["context"]["kind"] != "alone":
                messages.append({"role": "assistant", "content": _lines(example)[1].split(": ", 1)[1]})
            memory.add(messages, user_id="check", timestamp="2024-06-02T16:10:00")
            assert example["messages"] == generator.calls[-1].messages
            assert prompt_values("memlora", Operation.EXTRACTION, example["messages"])["date"] == "2024-06-02"


@pytest.mark.parametrize(
    ("said", "facts"),
    [
        pytest.param("Ines: I adopted a parrot called Kiwi.", ["Ines adopted a parrot called Kiwi."], id="own-fact"),
        pytest.param("Bao: Lovely! I repair old radios as a hobby.", ["Bao repairs old radios as a hobby."],
                     id="own-fact-of-the-other-speaker"),
        pytest.param("Bao: Nice talking to you.", [], id="chit-chat-stays-empty"),
        pytest.param("Ines: I teach chemistry at a high school.", ["Ines teaches chemistry at a high school."],
                     id="before-a-reply-with-no-fact"),
    ],
)
def test_the_target_is_the_turns_own_facts(drawn, said, facts):
    matching = [e for e in drawn.examples if _lines(e)[0] == said]
    assert matching
    assert all(_facts(e) == facts for e in matching)


def test_the_kinds_of_reply(drawn):
    kinds = {e["context"]["kind"] for e in drawn.examples}
    assert kinds == {"acknowledgement", "alone", "reply"}
    for example in drawn.examples:
        lines = _lines(example)
        kind = example["context"]["kind"]
        assert len(lines) == (1 if kind == "alone" else 2)
        if kind == "acknowledgement":
            assert lines[1].removeprefix("assistant: ") in ACKNOWLEDGEMENTS
        if kind == "reply":  # the other speaker's next turn, verbatim, as an unnamed assistant
            user = lines[0].split(": ", 1)[0]
            assert lines[1].startswith("assistant: ") and not lines[1].startswith(f"assistant: {user}")
    assert drawn.reply_dropped_facts > 0  # Ines's turn followed by Bao's fact: Bao's fact left out


def test_a_fact_resting_on_two_turns_is_never_half_there(drawn):
    assert drawn.skipped["partial_fact"] > 0
    assert not any("valve set" in _lines(e)[0] for e in drawn.examples)
    assert not any("valve" in f for e in drawn.examples for f in _facts(e))


def test_the_probe_and_check_replies_stay_out():
    assert not any(a.lower().startswith(("noted", "got it")) for a in ACKNOWLEDGEMENTS)


def test_demo_story_never_in_the_data(drawn):
    assert drawn.skipped["demo_story"] > 0
    assert not any("Lisbon" in json.dumps(e) for e in drawn.examples)


def test_empty_share_bounds_the_chit_chat(sources):
    bounded = generate_chat_window_examples(sources, 30, seed=0, empty_share=0.1)
    assert sum(_facts(e) == [] for e in bounded.examples) <= 3
    assert bounded.skipped.get("empty_quota", 0) > 0


def test_only_training_conversations(sources):
    for held_out in ("conv-26", "conv-30"):
        with pytest.raises(ConfigError, match="validation/test"):
            generate_chat_window_examples(parse_locomo([_sample("chat-a"), _sample(held_out)]), 5)


def test_deterministic_per_seed(sources, drawn):
    assert generate_chat_window_examples(sources, 100, seed=3, empty_share=1.0).examples == drawn.examples
    assert generate_chat_window_examples(sources, 100, seed=4, empty_share=1.0).examples != drawn.examples


def test_distill_writes_chat_windows_and_train_mixes_them_in(distill_samples, train_one_step, capsys):
    data = distill_samples([_sample("chat-a"), _sample("conv-30")], "--chat-windows", "5")
    out = capsys.readouterr().out
    assert "chat-window extraction calls leave out the held-out conversations ['conv-30']" in out
    assert "chat-window extraction calls: 5 of 5 asked (8 turns;" in out
    records = [json.loads(line) for line in
               (data / "extraction" / f"{CHAT_WINDOWS_ID}.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(records) == 5 and {r["context"]["source"] for r in records} == {"chat-a"}
    stats = json.loads((data / "extraction" / f"{CHAT_WINDOWS_ID}.stats.json").read_text(encoding="utf-8"))
    assert sum(stats["kinds"].values()) == 5
    assert json.loads((data / "manifest.json").read_text())["chat_windows"]["extraction"]["count"] == 5

    card = train_one_step("extraction", data, "--train-conversations", "chat-a", "--val-conversations", "conv-30",
                          "--with-chat-windows")
    two_turn = (data / "extraction" / "chat-a.jsonl").read_text(encoding="utf-8").splitlines()
    assert card["data"]["train_conversations"] == ["chat-a", CHAT_WINDOWS_ID]
    assert card["data"]["train_examples"] == len(two_turn) + 5
    assert card["data"]["chat_windows"]["count"] == 5


def test_with_chat_windows_is_for_extraction_only(tmp_path, capsys):
    assert main(["train", "update", "--data-dir", str(tmp_path), "--with-chat-windows"]) == 2
    assert "extraction operation only" in capsys.readouterr().err

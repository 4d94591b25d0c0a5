"""Unanswerable generation examples: the fixed phrase, memories that do not answer, the engine's prompt.

All conversation text here is invented (no LoCoMo text).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from memlora_engine import NOT_IN_MEMORY, MemoryConfig
from memlora_engine.commands import main
from memlora_engine.data.locomo import parse_locomo
from memlora_engine.errors import ConfigError
from memlora_engine.evaluation.metrics import adversarial_score
from memlora_engine.prompts import render_prompt
from memlora_engine.training.cleaning import prompt_values
from memlora_engine.training.unanswerable import (
    KINDS,
    UNANSWERABLE_ID,
    generate_unanswerable_examples,
    write_unanswerable,
)
from memlora_engine.types import Operation

_PEOPLE = {
    "syn-a": ("Rosa", "Tariq", [
        ("Rosa", "Rosa volunteers at an animal shelter on weekends."),
        ("Tariq", "Tariq works at a bookstore downtown."),
        ("Rosa", "Rosa plays the guitar in a band."),
        ("Tariq", "Tariq attends a chess club every Thursday."),
    ]),
    "syn-b": ("Lena", "Omar", [
        ("Lena", "Lena is training for a half marathon."),
        ("Omar", "Omar coaches a youth football team."),
        ("Lena", "Lena grows tomatoes in her garden."),
        ("Omar", "Omar is learning to cook Thai food."),
    ]),
    "syn-c": ("Rosa", "Ines", [  # another Rosa: never a memory for syn-a's questions
        ("Rosa", "Rosa repairs bicycles in her garage."),
        ("Ines", "Ines sings in a church choir."),
        ("Rosa", "Rosa collects vinyl records."),
        ("Ines", "Ines teaches yoga at the community centre."),
    ]),
}


def _sample(sample_id: str) -> dict[str, Any]:
    a, b, facts = _PEOPLE.get(sample_id, _PEOPLE["syn-a"])
    turns = [{"speaker": speaker, "dia_id": f"D1:{i + 1}", "text": f"{text} (said {speaker})"}
             for i, (speaker, text) in enumerate(facts)]
    observation = {"session_1_observation": {name: [[text, f"D1:{i + 1}"] for i, (speaker, text) in enumerate(facts)
                                                    if speaker == name] for name in (a, b)}}
    qa = [
        {"question": f"Where does {a} volunteer?", "answer": "an animal shelter", "evidence": ["D1:1"], "category": 4},
        {"question": f"Where does {b} work?", "answer": "a bookstore", "evidence": ["D1:2"], "category": 4},
        {"question": f"What instrument does {a} play?", "answer": "guitar", "evidence": ["D1:3"], "category": 4},
        {"question": f"What club does {a} attend?", "adversarial_answer": "chess", "evidence": ["D1:4"],
         "category": 5},
        {"question": f"Where does {b} volunteer?", "adversarial_answer": "a shelter", "evidence": ["D1:1"],
         "category": 5},
    ]
    return {"sample_id": sample_id, "qa": qa, "observation": observation,
            "conversation": {"speaker_a": a, "speaker_b": b, "session_1_date_time": "9:05 am on 3 March, 2024",
                             "session_1": turns}}


@pytest.fixture
def conversations():
    return parse_locomo([_sample("syn-a"), _sample("syn-b")])


def _memories(example: dict[str, Any]) -> list[str]:
    listing = prompt_values("memlora", Operation.GENERATION, example["messages"])["memories"]
    return [line.removeprefix("- ") for line in listing.splitlines()]


def test_the_phrase_is_what_the_locomo_scorer_counts_as_declined():
    assert NOT_IN_MEMORY == "No information available."
    assert adversarial_score(NOT_IN_MEMORY) == 1.0


def test_every_example_targets_the_phrase_in_the_engines_prompt(conversations, embedder):
    examples = generate_unanswerable_examples(conversations, 8, embedder, seed=3)
    assert len(examples) == 8
    for number, example in enumerate(examples):
        assert example["id"] == f"{UNANSWERABLE_ID}/generation/{number}"
        assert example["operation"] == "generation" and example["conversation"] == UNANSWERABLE_ID
        assert example["target"] == NOT_IN_MEMORY
        values = prompt_values("memlora", Operation.GENERATION, example["messages"])
        # Memory.answer's rendering: "- text" lines, the stripped question, the date of the memory's last session.
        assert values["date"] == "2024-03-03"
        assert example["messages"] == render_prompt("memlora", Operation.GENERATION, **values)
        assert example["context"]["memories"] == len(_memories(example)) > 0


def test_memories_come_from_the_right_conversation_and_do_not_answer(conversations, embedder):
    examples = generate_unanswerable_examples(conversations, 8, embedder, seed=1)
    observations = {c.sample_id: {o.text for o in c.observations} for c in conversations}
    questions = {c.sample_id: {q.index: q for q in c.qa} for c in conversations}
    for example in examples:
        context = example["context"]
        question = questions[context["source"]][context["question_index"]]
        assert prompt_values("memlora", Operation.GENERATION, example["messages"])["question"] == question.question
        assert set(_memories(example)) <= observations[context["memory"]]
        if context["kind"] == "adversarial":
            assert question.category == 5 and context["memory"] == context["source"]
        else:
            assert question.category in (1, 2, 3, 4) and context["memory"] != context["source"]
            asked_about = question.question.split()[2]  # "Where does Rosa volunteer?" -> Rosa
            assert not any(asked_about in text for text in _memories(example))


def test_a_when_question_is_an_example_too(embedder):
    # The engine answers "When ...?" with a memory's date, without a generation call; here every
    # question must reach the call it is an example of.
    sample = _sample("syn-a")
    sample["qa"] = [{**qa, "question": "When did Rosa join the chess club?"} if qa["category"] == 5 else qa
                    for qa in sample["qa"]]
    conversations = parse_locomo([sample, _sample("syn-b")])
    examples = generate_unanswerable_examples(conversations, 6, embedder, seed=2, adversarial_share=1.0)
    questions = [prompt_values("memlora", Operation.GENERATION, e["messages"])["question"] for e in examples]
    assert "When did Rosa join the chess club?" in questions
    assert all(e["target"] == NOT_IN_MEMORY for e in examples)


def test_another_conversation_with_a_speaker_of_the_same_name_is_never_the_memory(embedder):
    conversations = parse_locomo([_sample("syn-a"), _sample("syn-b"), _sample("syn-c")])
    examples = generate_unanswerable_examples(conversations, 30, embedder, adversarial_share=0.0)
    pairs = {(e["context"]["source"], e["context"]["memory"]) for e in examples}
    assert pairs == {("syn-a", "syn-b"), ("syn-b", "syn-a"), ("syn-b", "syn-c"), ("syn-c", "syn-b")}
    with pytest.raises(ConfigError, match="no speaker in common"):
        generate_unanswerable_examples(parse_locomo([_sample("syn-a"), _sample("syn-c")]), 3, embedder,
                                       adversarial_share=0.0)


def test_kinds_follow_the_share_and_fall_back_when_category_5_runs_out(conversations, embedder):
    def kinds(count: int, share: float) -> dict[str, int]:
        found = [e["context"]["kind"] for e in generate_unanswerable_examples(conversations, count, embedder,
                                                                              adversarial_share=share)]
        return {kind: found.count(kind) for kind in KINDS}

    assert kinds(6, 0.5) == {"adversarial": 3, "other_conversation": 3}
    assert kinds(10, 1.0) == {"adversarial": 4, "other_conversation": 6}  # only four category-5 questions
    assert kinds(4, 0.0) == {"adversarial": 0, "other_conversation": 4}


def test_prompts_follow_the_engine_settings(conversations, embedder):
    config = MemoryConfig(answer_top_k=2, dated_memories=True)
    for example in generate_unanswerable_examples(conversations, 4, embedder, config=config):
        lines = _memories(example)
        assert 0 < len(lines) <= 2 and all(line.startswith("[2024-03-03] ") for line in lines)


def test_deterministic_per_seed(conversations, embedder):
    def run(seed: int) -> list[Any]:
        return [e["messages"] for e in generate_unanswerable_examples(conversations, 6, embedder, seed=seed)]

    assert run(5) == run(5)
    assert run(5) != run(6)


def test_share_of_the_mix_is_unknown_before_the_answerable_examples_are_distilled(conversations, embedder, tmp_path):
    stats = write_unanswerable(tmp_path, conversations, 2, embedder)
    assert stats["cached_answerable_examples"] == 0 and stats["share_of_mix"] is None


def test_held_out_conversations_and_bad_settings_are_refused(conversations, embedder):
    with pytest.raises(ConfigError, match="validation/test"):
        generate_unanswerable_examples(parse_locomo([_sample("syn-a"), _sample("conv-26")]), 2, embedder)
    with pytest.raises(ConfigError, match="validation/test"):
        generate_unanswerable_examples(parse_locomo([_sample("conv-30")]), 2, embedder)
    with pytest.raises(ConfigError, match="other_conversation kind needs two"):
        generate_unanswerable_examples(parse_locomo([_sample("syn-a")]), 3, embedder, adversarial_share=0.0)
    with pytest.raises(ConfigError, match="count"):
        generate_unanswerable_examples(conversations, 0, embedder)
    with pytest.raises(ConfigError, match="adversarial_share"):
        generate_unanswerable_examples(conversations, 2, embedder, adversarial_share=1.5)


def test_distill_writes_unanswerable_examples_and_train_mixes_them_in(distill_samples, train_one_step, capsys):
    data = distill_samples([_sample("syn-a"), _sample("syn-b"), _sample("conv-30")], "--unanswerable", "6")
    out = capsys.readouterr().out
    assert "unanswerable examples leave out the held-out conversations ['conv-30']" in out
    assert "unanswerable examples: 6 (adversarial 3, other_conversation 3)" in out
    lines = (data / "generation" / f"{UNANSWERABLE_ID}.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["target"] for line in lines] == [NOT_IN_MEMORY] * 6
    stats = json.loads((data / "generation" / f"{UNANSWERABLE_ID}.stats.json").read_text(encoding="utf-8"))
    answerable = sum(len((data / "generation" / f"{c}.jsonl").read_text().splitlines()) for c in ("syn-a", "syn-b"))
    assert stats["conversations"] == ["syn-a", "syn-b"] and stats["cached_answerable_examples"] == answerable
    assert stats["share_of_mix"] == round(6 / (6 + answerable), 3)
    assert json.loads((data / "manifest.json").read_text())["unanswerable"]["generation"]["count"] == 6

    card = train_one_step("generation", data, "--train-conversations", "syn-a", "--val-conversations", "syn-b",
                          "--with-unanswerable")
    syn_a = len((data / "generation" / "syn-a.jsonl").read_text().splitlines())
    assert card["data"]["train_conversations"] == ["syn-a", UNANSWERABLE_ID]
    assert card["data"]["train_examples"] == syn_a + 6
    assert card["data"]["unanswerable"]["phrase"] == NOT_IN_MEMORY


def test_with_unanswerable_is_for_generation_only(tmp_path, capsys):
    assert main(["train", "update", "--data-dir", str(tmp_path), "--with-unanswerable"]) == 2
    assert "generation operation only" in capsys.readouterr().err

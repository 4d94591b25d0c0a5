"""Synthetic LoCoMo-format data and a tiny in-process model for the training tests.

Everything here is invented; no LoCoMo text is used (the data set is CC BY-NC 4.0).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest


def synthetic_sample(sample_id: str = "syn-1") -> dict[str, Any]:
    """Two speakers, two sessions, observations with single and multiple evidence turns."""

    def turn(session: int, number: int, speaker: str, text: str, **extra: Any) -> dict[str, Any]:
        return {"speaker": speaker, "dia_id": f"D{session}:{number}", "text": text, **extra}

    conversation = {
        "speaker_a": "Ana",
        "speaker_b": "Ben",
        "session_1_date_time": "9:05 am on 3 March, 2024",
        "session_1": [
            turn(1, 1, "Ana", "I adopted a cat named Miso last week."),
            turn(1, 2, "Ben", "Lovely! I started learning the cello."),
            turn(1, 3, "Ana", "Look at my garden.", img_url=["http://example.invalid/a.jpg"],
                 blip_caption="a photo of tomatoes in a garden"),
            turn(1, 4, "Ben", "Great tomatoes."),
            turn(1, 5, "Ana", "Thanks!"),
        ],
        "session_2_date_time": "12:30 pm on 10 March, 2024",
        "session_2": [
            turn(2, 1, "Ana", "Miso now opens doors by himself."),
            turn(2, 2, "Ben", "Ha! I play the cello in a small orchestra now."),
            turn(2, 3, "Ana", "I moved to Lisbon."),
            turn(2, 4, "Ben", "Nice city."),
        ],
    }
    qa = [
        {"question": "What is the name of Ana's cat?", "answer": "Miso", "evidence": ["D1:1"], "category": 4},
        {"question": "What does Ben play?", "answer": "the cello", "evidence": ["D1:2"], "category": 4},
        {"question": "Where did Ana move?", "answer": "Lisbon", "evidence": ["D2:3"], "category": 4},
        {"question": "What is Ben's job?", "adversarial_answer": "nurse", "evidence": ["D2:3"], "category": 5},
    ]
    observation = {
        "session_1_observation": {
            "Ana": [["Ana adopted a cat named Miso.", "D1:1"], ["Ana grows tomatoes in her garden.", "D1:3"]],
            "Ben": [["Ben is learning the cello.", ["D1:2", "D1:4"]]],
        },
        "session_2_observation": {
            "Ana": [["Ana's cat Miso can open doors.", "D2:1"], ["Ana moved to Lisbon.", "D2:3"]],
            "Ben": [["Ben is learning the cello and plays in a small orchestra.", "D2:2"]],
        },
    }
    return {"sample_id": sample_id, "conversation": conversation, "qa": qa, "observation": observation}


@pytest.fixture
def conversations():
    from memlora_engine.data.locomo import parse_locomo

    return parse_locomo([synthetic_sample("syn-1"), synthetic_sample("syn-2")])


@pytest.fixture
def synthetic_file(tmp_path: Path) -> Path:
    path = tmp_path / "synthetic_locomo.json"
    path.write_text(json.dumps([synthetic_sample("syn-1"), synthetic_sample("syn-2")]), encoding="utf-8")
    return path


@pytest.fixture
def signal_teachers(embedder):
    from memlora_engine.training import ObservationTeacher, ReferenceAnswerTeacher, UpdateLabeler

    return {"extraction": ObservationTeacher(), "update": UpdateLabeler(embedder), "generation": ReferenceAnswerTeacher()}


@pytest.fixture
def tiny():
    """A fresh tiny random Llama and its byte-level tokenizer (plain prompts, like gemma-3-270m)."""
    from memlora_engine.backbone.tiny import tiny_model, tiny_tokenizer

    def build(seed: int = 0):
        tokenizer = tiny_tokenizer()
        return tiny_model(len(tokenizer), seed=seed), tokenizer

    return build


@pytest.fixture
def tiny_model_dir(tmp_path: Path, tiny) -> Path:
    """The tiny model saved as a model directory (what --model PATH loads)."""
    model, tokenizer = tiny()
    path = tmp_path / "tiny-model"
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture
def distill_samples(tmp_path: Path):
    """Write LoCoMo-format ``samples`` to a file and run ``memlora distill`` on all of them with ``options``.

    The replay uses the deterministic embedder; returns the data directory.
    """
    from memlora_engine.commands import main

    def run(samples: list[dict[str, Any]], *options: str) -> Path:
        source, data = tmp_path / "locomo.json", tmp_path / "data"
        source.write_text(json.dumps(samples), encoding="utf-8")
        ids = ",".join(sample["sample_id"] for sample in samples)
        assert main(["distill", "--data", str(source), "--conversations", ids, "--out", str(data),
                     "--embedder", "deterministic", *options]) == 0
        return data

    return run


@pytest.fixture
def train_one_step(tmp_path: Path, tiny_model_dir: Path):
    """Run ``memlora train OPERATION`` for one step on the tiny model with ``options``; return the saved card."""
    from memlora_engine.commands import main

    def run(operation: str, data: Path, *options: str) -> dict[str, Any]:
        target = tmp_path / "saved"
        assert main(["train", operation, "--data-dir", str(data), "--out", str(tmp_path / "runs"),
                     "--model", str(tiny_model_dir), *options, "--max-steps", "1", "--eval-every", "1",
                     "--batch-size", "2", "--val-examples", "2", "--max-length", "8192", "--dtype", "float32",
                     "--quiet", "--save-to", str(target)]) == 0
        return json.loads((target / "card.json").read_text())

    return run

"""Synthetic LoCoMo-format data and a scripted model for the evaluation tests.

Everything here is invented; no LoCoMo text is used (the data set is CC BY-NC 4.0
and is read only from MEMLORA_LOCOMO_PATH by the tests that need it).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from memlora_engine.generator import GenerationRequest
from memlora_engine.testing import ContextLengthGenerator, ScriptedGenerator


def locomo_path() -> Path:
    default = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "locomo_dev.json"
    return Path(os.environ.get("MEMLORA_LOCOMO_PATH", default))


def synthetic_sample(sample_id: str = "syn-1") -> dict[str, Any]:
    """Two speakers, three sessions (plus a date-time for a session with no turns), all quirks."""

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
                 blip_caption="a photo of tomatoes in a garden", query="tomato garden"),
            turn(1, 4, "Ben", "Great tomatoes."),
        ],
        "session_2_date_time": "12:30 pm on 10 March, 2024",
        "session_2": [
            turn(2, 1, "Ana", "I moved to Lisbon in 2022."),
            turn(2, 2, "Ben", "My sister lives in Porto."),
            turn(2, 3, "Ana", "I work as a nurse."),
        ],
        "session_3_date_time": "11:59 pm on 1 April, 2024",
        "session_3": [
            turn(3, 1, "Ana", "Miso learned to open doors."),
            turn(3, 2, "Ben", "I played my first cello concert."),
        ],
        "session_4_date_time": "1:00 pm on 2 April, 2024",
    }
    qa = [
        {"question": "What is the name of Ana's cat?", "answer": "Miso", "evidence": ["D1:1"], "category": 4},
        {"question": "When did Ana move to Lisbon?", "answer": 2022, "evidence": ["D2:1"], "category": 2},
        {"question": "What instrument and city relate to Ben?", "answer": "cello, Porto",
         "evidence": ["D1:2; D2:2"], "category": 1},
        {"question": "Would Ana enjoy gardening?", "answer": "Yes; she grows tomatoes",
         "evidence": ["D:1:3"], "category": 3},
        {"question": "What is Ben's job?", "adversarial_answer": "nurse", "evidence": ["D2:3"], "category": 5},
        {"question": "What did Miso learn?", "answer": "to open doors", "evidence": ["D3:1 D9:9"], "category": 4},
        {"question": "Where does Ana work?", "answer": "hospital", "evidence": ["D"], "category": 4},
    ]
    observation = {
        "session_1_observation": {
            "Ana": [["Ana adopted a cat named Miso.", "D1:1"]],
            "Ben": [["Ben learns the cello.", ["D1:2", "D1:4"]]],
        },
        "session_2_observation": {"Ana": [["Ana lives in Lisbon.", "D2:1, D2:3"]], "Ben": []},
    }
    summary = {"session_1_summary": "Ana and Ben talked about pets and music."}
    return {"sample_id": sample_id, "conversation": conversation, "qa": qa, "observation": observation,
            "session_summary": summary}


@pytest.fixture
def synthetic_file(tmp_path: Path) -> Path:
    path = tmp_path / "synthetic_locomo.json"
    path.write_text(json.dumps([synthetic_sample("syn-1"), synthetic_sample("syn-2")]), encoding="utf-8")
    return path


def _facts_from(request: GenerationRequest) -> list[str]:
    content = request.messages[-1]["content"]
    start = content.rfind('["')
    if start < 0:
        return []
    facts, _ = json.JSONDecoder().raw_decode(content[start:])
    return facts


def _extract(request: GenerationRequest) -> str:
    lines = [line for line in request.messages[-1]["content"].splitlines() if re.match(r"^\w+: ", line)]
    return json.dumps({"facts": lines})


def _update(request: GenerationRequest) -> str:
    facts = _facts_from(request)
    return json.dumps({"memory": [{"id": f"new{i}", "text": f, "event": "ADD"} for i, f in enumerate(facts)]})


def _generate(request: GenerationRequest) -> str:
    content = request.messages[-1]["content"]
    question = content.rsplit("Question:", 1)[-1].lower()
    if "job" in question:
        return "Not mentioned in the conversation."
    if "cat" in question:
        return "Miso"
    memories = [line[2:] for line in content.splitlines() if line.startswith("- ")]
    return memories[0].split(": ", 1)[-1] if memories else "I do not know"


def scripted_model(adapters: Any = None, context_length: int | None = None) -> ScriptedGenerator:
    """A deterministic stand-in for the backbone: extracts each line, ADDs each fact, answers from memory
    (declaring a context of ``context_length`` tokens when given, as the backbones do)."""
    script = {"extraction": _extract, "update": _update, "generation": _generate}
    if context_length is not None:
        return ContextLengthGenerator(script, adapters=adapters, context_length=context_length)
    return ScriptedGenerator(script, adapters=adapters)


@pytest.fixture
def make_model():
    return scripted_model


@pytest.fixture
def first_session_run(tmp_path: Path, synthetic_file: Path):
    """The synthetic conversation's first session ingested and answered by the ``memlora``
    configuration into ``tmp_path/runs``: a run to resume, re-score or take ingestion from."""
    from memlora_engine.evaluation import RunOptions, load_locomo, parse_config, run_config
    from memlora_engine.testing import DeterministicEmbedder

    conversation = load_locomo(synthetic_file)[0]
    full = parse_config("memlora")
    run_config([conversation], full, scripted_model(adapters=full.adapters), tmp_path,
               embedder=DeterministicEmbedder(), options=RunOptions(progress=False, limit_sessions=1))
    return conversation


@pytest.fixture
def make_sample():
    return synthetic_sample


@pytest.fixture
def locomo_dev() -> Path:
    path = locomo_path()
    if not path.exists():
        pytest.skip(f"LoCoMo dev file not found at {path} (set MEMLORA_LOCOMO_PATH)")
    return path

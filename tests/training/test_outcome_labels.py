"""Outcome-checked update labels: where update teachers disagree, the answers decide."""

from __future__ import annotations

import json

import pytest

from memlora_engine.evaluation.metrics import locomo_score
from memlora_engine.generator import ChatMessage, GenerationRequest
from memlora_engine.testing import ScriptedGenerator
from memlora_engine.training import ObservationTeacher, ReferenceAnswerTeacher, UpdateLabeler
from memlora_engine.training.cleaning import prompt_values
from memlora_engine.training.data import replay_conversation
from memlora_engine.training.outcome import OutcomeCheckedTeacher
from memlora_engine.types import Operation


class KeepNothing:
    """An update teacher that calls every fact known (NONE carrying the fact): nothing is stored."""

    name = "keep-nothing"

    def complete(self, messages: list[ChatMessage], *, operation: Operation, json_schema=None,
                 max_new_tokens: int = 1024) -> str:
        facts = json.loads(prompt_values("memlora", Operation.UPDATE, messages)["facts"])
        return json.dumps({"memory": [{"id": "0", "text": fact, "event": "NONE"} for fact in facts]})


class Garbled:
    name = "garbled"

    def complete(self, messages, *, operation, json_schema=None, max_new_tokens=1024) -> str:
        return "not json"


def _echo_memories(request: GenerationRequest) -> str:
    """An answerer that repeats the memories it was shown (so an answer holds what memory holds)."""
    prompt = str(request.messages[-1]["content"])
    return " ".join(line[2:] for line in prompt.splitlines() if line.startswith("- "))


def _score(answer: str, qa) -> float:
    return locomo_score(answer, qa.answer, qa.category)


def _teachers(update):
    return {"extraction": ObservationTeacher(), "update": update, "generation": ReferenceAnswerTeacher()}


def _events(examples) -> list[str]:
    return [op["event"] for e in examples["update"] for op in json.loads(e["target"])["memory"]]


def test_a_label_that_loses_the_answer_is_replaced_by_one_that_keeps_it(conversations, embedder):
    answerer = ScriptedGenerator({"generation": _echo_memories})
    checked = OutcomeCheckedTeacher([KeepNothing(), UpdateLabeler(embedder)], answerer, embedder, _score)
    examples, _ = replay_conversation(conversations[0], _teachers(checked), embedder)
    report = checked.report
    assert report.calls == len(examples["update"])
    # "Ana moved to Lisbon." is asked about ("Where did Ana move?", evidence D2:3): keeping
    # nothing scores 0, the labeler's ADD scores; so that label comes from the labeler.
    assert report.changed >= 1 and report.disagreements >= report.changed
    lisbon = [e for e in examples["update"] if "Lisbon" in prompt_values("memlora", Operation.UPDATE, e["messages"])["facts"]]
    assert [json.loads(e["target"])["memory"][0]["event"] for e in lisbon] == ["ADD"]
    assert any("Lisbon" in change["to"] for change in report.changes)
    # Facts no question asks about keep the first teacher's label.
    assert "NONE" in _events(examples)
    assert report.unchecked + report.disagreements <= report.calls


def test_decisions_no_answer_tells_apart_keep_the_first_label(conversations, embedder):
    silent = ScriptedGenerator({"generation": ["I do not know."]})  # every decision scores 0
    checked = OutcomeCheckedTeacher([KeepNothing(), UpdateLabeler(embedder)], silent, embedder, _score)
    examples, _ = replay_conversation(conversations[0], _teachers(checked), embedder)
    assert checked.report.changed == 0
    assert checked.report.ties == checked.report.disagreements >= 1
    assert set(_events(examples)) == {"NONE"}


def test_an_unparsable_candidate_is_never_chosen_and_is_counted(conversations, embedder):
    answerer = ScriptedGenerator({"generation": _echo_memories})
    checked = OutcomeCheckedTeacher([UpdateLabeler(embedder), Garbled()], answerer, embedder, _score)
    alone, _ = replay_conversation(conversations[0], _teachers(UpdateLabeler(embedder)), embedder)
    examples, _ = replay_conversation(conversations[0], _teachers(checked), embedder)
    assert [e["target"] for e in examples["update"]] == [e["target"] for e in alone["update"]]
    assert checked.report.unusable == checked.report.calls and checked.report.disagreements == 0


def test_an_outcome_check_needs_two_candidates(embedder):
    with pytest.raises(ValueError, match="at least two"):
        OutcomeCheckedTeacher([UpdateLabeler(embedder)], ScriptedGenerator(), embedder, _score)


def test_the_distillation_manifest_counts_the_changed_labels(tmp_path, conversations, embedder):
    from memlora_engine.training.data import build_distillation_data

    answerer = ScriptedGenerator({"generation": _echo_memories})
    checked = OutcomeCheckedTeacher([KeepNothing(), UpdateLabeler(embedder)], answerer, embedder, _score)
    manifest = build_distillation_data(conversations, _teachers(checked), embedder, tmp_path)
    for sample_id in ("syn-1", "syn-2"):
        counts = manifest["conversations"][sample_id]["outcome_check"]
        assert counts["changed"] >= 1 and counts["calls"] == manifest["conversations"][sample_id]["examples"]["update"]
        changes = (tmp_path / "update" / f"{sample_id}.outcome-changes.jsonl").read_text().splitlines()
        assert len(changes) == counts["changed"]
    assert manifest["teachers"]["update"] == "outcome-checked(keep-nothing, rule-update-labeler)"

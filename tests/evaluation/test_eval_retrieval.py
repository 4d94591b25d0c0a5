"""Evidence recall@k, extraction coverage, and re-scoring search settings on a cached memory.

Synthetic LoCoMo-format data (tests/evaluation/conftest.py), the scripted model,
the hashing embedder, real in-memory Chroma and the real bm25s.
"""

from __future__ import annotations

import argparse
import json

import pytest

from memlora_engine.commands import eval as eval_cli
from memlora_engine.evaluation import RunOptions, evaluate_locomo, load_locomo, parse_config, run_config
from memlora_engine.evaluation.extraction import extraction_coverage
from memlora_engine.evaluation.retrieval import (
    cached_memory,
    evidence_recall_at_k,
    observation_memory,
    scored_questions,
)
from memlora_engine.testing import DeterministicEmbedder

pytest.importorskip("bm25s")


def _ingest(session: int, *facts: str) -> dict:
    return {"stage": "ingest", "session": session, "facts": list(facts)}


def test_extraction_coverage_counts_matched_observations_and_facts(synthetic_file):
    conversation = load_locomo(synthetic_file)[0]  # observations: session 1 two, session 2 one
    records = [
        _ingest(1, "Ana adopted a cat named Miso.", "Ben ate soup."),
        _ingest(1, "Ben ate soup."),  # a repeated fact counts once
        _ingest(2),
        _ingest(3, "Miso opens doors."),  # no observation in session 3: left out
    ]
    coverage = extraction_coverage(records, conversation, DeterministicEmbedder())
    assert coverage["threshold"] == 0.8
    assert coverage["sessions"]["1"] == {"observations": 2, "facts": 2, "matched_observations": 1,
                                         "matched_facts": 1, "recall": 0.5, "precision": 0.5}
    assert coverage["sessions"]["2"]["recall"] == 0.0 and coverage["sessions"]["2"]["precision"] is None
    assert "3" not in coverage["sessions"]
    assert coverage["overall"]["recall"] == round(1 / 3, 4) and coverage["overall"]["precision"] == 0.5


def test_observation_memory_recall_at_k_per_category(synthetic_file):
    conversation = load_locomo(synthetic_file)[0]
    target = observation_memory(conversation, DeterministicEmbedder(), search_mode="hybrid")
    assert len(target.memory.get_all(user_id=target.scope)) == 3
    assert sorted(sum(target.provenance.values(), [])) == ["D1:1", "D1:2", "D1:4", "D2:1", "D2:3"]
    questions = scored_questions(conversation, target.sessions_done)
    recall = evidence_recall_at_k(target, questions, [1, 3])
    ranks = {r["question_index"]: r["first_hit_rank"] for r in recall["questions"]}
    assert ranks[0] == 1  # "What is the name of Ana's cat?" -> "Ana adopted a cat named Miso." first
    assert recall["overall"]["k=3"] >= recall["overall"]["k=1"]
    assert set(recall["per_category"]) <= {"1", "2", "3", "4", "5"}
    # session 3 was never observed: its question has no evidence-bearing memory
    assert ranks[5] is None


def test_recall_at_each_k_is_the_search_at_that_k(synthetic_file):
    """Hybrid fusion's candidate pool grows with k, so a search at 30 cut to 5 is not the search at 5."""
    conversation = load_locomo(synthetic_file)[0]
    target = observation_memory(conversation, DeterministicEmbedder())
    questions = scored_questions(conversation, target.sessions_done)[:1]
    hit = next(iter(target.provenance))
    target.provenance = {hit: list(questions[0].evidence)}  # this memory is the first question's evidence
    limits: list[int] = []

    class Hit:
        id = hit

    def search(question: str, k: int) -> list[object]:  # found only by the search at 5
        limits.append(k)
        return [Hit()] if k == 5 else []

    recall = evidence_recall_at_k(target, questions, [5, 30], search=search)
    assert sorted(limits) == [5, 30]
    assert recall["overall"]["k=5"] == 1.0 and recall["overall"]["k=30"] == 0.0


def test_scored_questions_keep_those_whose_evidence_was_ingested(synthetic_file):
    conversation = load_locomo(synthetic_file)[0]
    assert {q.index for q in scored_questions(conversation, 1)} == {0, 3}  # "D:1:3" is repaired to D1:3
    assert {q.index for q in scored_questions(conversation, 2)} == {0, 1, 2, 3, 4}


def test_report_has_recall_at_k_and_extraction_and_rescoring_needs_no_model(tmp_path, synthetic_file, make_model,
                                                                              capsys):
    conversations = load_locomo(synthetic_file)[:1]
    out = tmp_path / "out"
    evaluate_locomo(conversations, [parse_config("memlora")], lambda c: make_model(adapters=c.adapters), out,
                    embedder=DeterministicEmbedder(), options=RunOptions(progress=False), plots=False)
    results = json.loads((out / "results.json").read_text())
    memlora = results["configs"]["memlora"]
    assert memlora["scores"]["overall"]["evidence_hit"] == 1.0  # every question retrieves an evidence turn
    assert memlora["scores"]["per_category"]["4"]["evidence_hit"] == 1.0
    assert memlora["extraction"]["syn-1"]["sessions"]["1"]["observations"] == 2
    assert (out / "runs" / "memlora" / "syn-1" / "extraction.json").exists()
    report = (out / "report.md").read_text()
    assert "evidence recall@k per category" in report and "fact recall / precision" in report

    parser = argparse.ArgumentParser(prog="memlora eval")
    eval_cli.add_arguments(parser)
    summary_path = tmp_path / "retrieval.json"
    args = parser.parse_args(["retrieval", "--data", str(synthetic_file), "--conversations", "syn-1", "--run",
                              str(out / "runs" / "memlora"), "--embedder", "deterministic", "--k", "1,5",
                              "--out", str(summary_path)])
    assert eval_cli.run(args) == 0
    summary = json.loads(summary_path.read_text())
    entry = summary["conversations"]["syn-1"]
    assert set(entry["modes"]) == {"vector", "hybrid"} and entry["sessions"] == 3
    assert entry["modes"]["hybrid"]["overall"]["k=5"] == 1.0
    assert entry["extraction"]["overall"]["observations"] == 3
    assert "k=1" in capsys.readouterr().out


def test_cached_memory_of_a_stopped_run_asks_only_ingested_questions(tmp_path, first_session_run):
    conversation = first_session_run
    target = cached_memory(tmp_path / "runs" / "memlora" / "syn-1", DeterministicEmbedder())
    assert target.sessions_done == 1 and target.memory.get_all(user_id=target.scope)
    questions = scored_questions(conversation, target.sessions_done)
    recall = evidence_recall_at_k(target, questions, [10])
    assert recall["overall"] == {"count": 2, "k=10": 1.0}  # questions 0 and 3


def test_answer_only_settings_may_differ_from_the_ingestion_taken(tmp_path, first_session_run, make_model):
    conversation = first_session_run
    partial = parse_config("adapters=extraction,update")
    options = RunOptions(progress=False, limit_sessions=1,
                         memory_overrides={"search_mode": "hybrid", "dated_memories": True, "answer_top_k": 3,
                                           "decline_other_subject": 0.1, "date_answers": False})
    result = run_config([conversation], partial, make_model(adapters=partial.adapters), tmp_path,
                        embedder=DeterministicEmbedder(), options=options, ingest_from="memlora")
    assert result["answers"] and all(len(a["retrieved"]) <= 3 for a in result["answers"])


@pytest.mark.parametrize("dated", [False, True])
def test_answers_on_a_fixed_memory_score_per_category(synthetic_file, make_model, dated):
    from memlora_engine.commands.eval_retrieval import _answers

    conversation = load_locomo(synthetic_file)[0]
    target = observation_memory(conversation, DeterministicEmbedder(), search_mode="hybrid")
    model = make_model()
    result = _answers(target, conversation, scored_questions(conversation, 3), model, 2, dated)
    # category 4: "Ana's cat" is answered "Miso" (F1 1), "What did Miso learn?" from its memory
    assert result["per_category"]["4"]["count"] == 2 and result["per_category"]["4"]["score"] >= 0.5
    assert result["input_tokens_per_answer"] > 0
    prompt = model.calls[-1].messages[-1]["content"]
    assert ("- [2024-03-" in prompt) == dated

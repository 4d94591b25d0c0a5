"""The consolidation check: scoring, the shipped histories, the runner and ``memlora eval consolidation``."""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from memlora_engine import backbone
from memlora_engine.commands import eval as eval_cli
from memlora_engine.config import MemoryConfig
from memlora_engine.errors import InvalidInputError
from memlora_engine.evaluation.consolidation import (
    History,
    format_summary,
    load_histories,
    mentions,
    normalize,
    run_history,
    summarize,
    verdict,
)
from memlora_engine.generator import GenerationRequest
from memlora_engine.testing import DeterministicEmbedder, ScriptedGenerator


# -- scoring -------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    ("Kraków!", "krakow"),
    ("  St. Anne's  ", "st anne s"),
    ("H&M", "h m"),
    ("Mazda CX-5", "mazda cx 5"),
    ("İzmir", "izmir"),
    ("snake_case", "snake case"),
])
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected


@pytest.mark.parametrize(("text", "spellings", "expected"), [
    ("She lives in Krakow now.", ["Kraków"], True),
    ("Mei.", ["Mei"], True),
    ("Her roommate is Meier.", ["Mei"], False),  # whole words only
    ("He drives a mazda cx5", ["Mazda CX-5", "CX5"], True),
    ("He drives a Mazda.", ["Mazda CX-5"], False),  # a part of a value is not the value (aliases say which are)
    ("St Anne's", ["St Anne's"], True),
    ("", ["Oslo"], False),
    ("Oslo", [""], False),  # an empty spelling matches nothing
])
def test_mentions(text: str, spellings: list[str], expected: bool) -> None:
    assert mentions(text, spellings) is expected


NEWEST = ["Kraków", "Cracow"]
OLDER = [["Bergen"], ["Vienna", "Wien"]]


@pytest.mark.parametrize(("answer", "expected"), [
    ("Greta lives in Kraków.", "newest"),
    ("cracow", "newest"),
    ("Greta lives in Vienna.", "stale"),
    ("Wien", "stale"),
    ("She moved from Vienna to Krakow.", "both"),
    ("Bergen, then Kraków", "both"),
    ("I don't know.", "neither"),
    ("", "neither"),
])
def test_verdict(answer: str, expected: str) -> None:
    assert verdict(answer, NEWEST, OLDER) == expected


def _history(length: int = 3, **overrides: object) -> History:
    values = ("Bergen", "Oslo", "Vienna", "Berlin", "Kraków")[:length]
    fields: dict[str, object] = {
        "id": f"t{length}", "person": "Greta", "attribute": "city",
        "steps": tuple(f"I live in {v} now." for v in values), "values": values,
        "question": "Which city does Greta live in now?", "aliases": {"Vienna": ("Wien",)},
    }
    fields.update(overrides)
    return History(**fields)  # type: ignore[arg-type]


def test_history_scores_and_counts_stale_memories() -> None:
    history = _history(3)
    assert (history.newest, history.older) == ("Vienna", ("Bergen", "Oslo"))
    assert history.score("Wien") == "newest"
    assert history.stale_memories(["Greta lives in Oslo.", "Greta moved from Oslo to Vienna.", "Likes tea"]) == 1


def _row(length: int, verdict: str, **extra: object) -> dict[str, object]:
    row: dict[str, object] = {
        "length": length, "verdict": verdict, "memory_count": 1, "stale_memories": 0,
        "applied": {"ADD": 1, "UPDATE": 0, "DELETE": 0}, "decided": {"ADD": 0, "UPDATE": 0, "DELETE": 0, "NONE": 0},
        "update_calls": 0, "uncovered_facts": 0, "duplicate_adds": 0, "unchanged_updates": 0, "rejected_ops": 0,
        "failures": [],
    }
    row.update(extra)
    return row


@pytest.mark.parametrize(("verdicts", "shares"), [
    (["newest"], {"newest": 1.0, "stale": 0.0, "both": 0.0, "neither": 0.0}),
    (["newest", "stale", "both", "neither"], {"newest": 0.25, "stale": 0.25, "both": 0.25, "neither": 0.25}),
    (["stale", "stale", "newest"], {"newest": 0.3333, "stale": 0.6667, "both": 0.0, "neither": 0.0}),
])
def test_summarize_shares(verdicts: list[str], shares: dict[str, float]) -> None:
    summary = summarize([_row(2, v) for v in verdicts])
    assert list(summary) == ["2"]
    assert {k: summary["2"][k] for k in shares} == shares
    assert summary["2"]["histories"] == len(verdicts)


def test_summarize_groups_by_length_and_totals_the_events() -> None:
    rows = [
        _row(5, "newest", memory_count=1, applied={"ADD": 1, "UPDATE": 4, "DELETE": 0},
             decided={"ADD": 0, "UPDATE": 4, "DELETE": 0, "NONE": 0}, update_calls=4),
        _row(2, "stale", memory_count=2, stale_memories=1, uncovered_facts=1, duplicate_adds=1,
             decided={"ADD": 1, "UPDATE": 0, "DELETE": 0, "NONE": 1}, failures=["x"]),
        _row(5, "both", memory_count=4, stale_memories=3, applied={"ADD": 4, "UPDATE": 0, "DELETE": 1}, rejected_ops=2,
             unchanged_updates=1),
    ]
    summary = summarize(rows)
    assert list(summary) == ["2", "5"]
    assert summary["5"]["applied"] == {"ADD": 5, "UPDATE": 4, "DELETE": 1}
    assert (summary["5"]["mean_memory_count"], summary["5"]["mean_stale_memories"]) == (2.5, 1.5)
    assert (summary["5"]["newest"], summary["5"]["both"], summary["5"]["rejected_ops"]) == (0.5, 0.5, 2)
    assert summary["5"]["unchanged_updates"] == 1
    assert summary["2"]["decided"]["NONE"] == 1
    assert (summary["2"]["uncovered_facts"], summary["2"]["duplicate_adds"], summary["2"]["failures"]) == (1, 1, 1)
    table = format_summary(summary)
    assert table.splitlines()[1].split()[:3] == ["2", "1", "0%"]
    assert "UPDATE=4(4)" in table


# -- the shipped histories -------------------------------------------------------------------
def test_shipped_histories_cover_each_length_with_twelve_or_more() -> None:
    histories = load_histories()
    counts = Counter(h.length for h in histories)
    assert all(counts[n] >= 12 for n in (2, 3, 5)), counts
    assert len({h.id for h in histories}) == len(histories)
    assert len({h.attribute for h in histories}) >= 10  # many kinds of attribute, not one template
    assert len({h.steps[0] for h in histories}) == len(histories)
    assert all(h.question.endswith("?") and h.person in h.question for h in histories)
    assert [h.length for h in load_histories(lengths=[3])] == [3] * counts[3]


def test_shipped_histories_keep_out_the_demo_story() -> None:
    # The demo's names and story (docs: they must stay out of all data); also no diet change to fish.
    text = (Path(__file__).resolve().parents[2] / "memlora_engine/evaluation/data/consolidation.jsonl").read_text("utf-8")
    for word in ("alice", "paris", "lisbon", "miso", "pico", "fish", "vegetarian"):
        assert not re.search(rf"\b{word}\b", text.casefold()), word


@pytest.mark.parametrize(("record", "problem"), [
    ({"steps": ["I live in Oslo.", "I moved."], "values": ["Oslo", "Bergen"]}, "does not state its value"),
    ({"steps": ["I live in Oslo."], "values": ["Oslo"]}, "two or more steps"),
    ({"values": ["Oslo"]}, "one value per step"),
    ({"aliases": {"Rome": ["Roma"]}}, "aliases for values"),
    ({"steps": ["I live in Oslo.", "I live in Oslo Nord."], "values": ["Oslo", "Oslo Nord"]}, "cannot be told apart"),
    ({"steps": "I live in Oslo."}, "two or more steps"),
    ({"question": None, "person": None, "id": None, "attribute": None, "steps": None}, "not a consolidation history"),
])
def test_loader_rejects_bad_histories(tmp_path: Path, record: dict[str, object], problem: str) -> None:
    good = {"id": "x", "person": "Greta", "attribute": "city", "steps": ["I live in Oslo.", "Bergen now."],
            "values": ["Oslo", "Bergen"], "question": "Where does Greta live?"}
    path = tmp_path / "h.jsonl"
    path.write_text(json.dumps({**good, **record}) + "\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match=problem):
        load_histories(path)


def test_loader_rejects_repeated_ids_and_bad_json(tmp_path: Path) -> None:
    record = {"id": "x", "person": "Greta", "attribute": "city", "steps": ["I live in Oslo.", "Bergen now."],
              "values": ["Oslo", "Bergen"], "question": "Where does Greta live?"}
    path = tmp_path / "h.jsonl"
    path.write_text((json.dumps(record) + "\n") * 2, encoding="utf-8")
    with pytest.raises(InvalidInputError, match="repeated ids"):
        load_histories(path)
    path.write_text("{nope\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="h.jsonl:1"):
        load_histories(path)
    with pytest.raises(InvalidInputError, match="cannot read"):
        load_histories(tmp_path / "missing.jsonl")


# -- the runner, with the scripted generator ------------------------------------------------------
def _user_text(request: GenerationRequest) -> str:
    return str(request.messages[-1]["content"])


def _extract(request: GenerationRequest) -> str:
    speaker, _, said = _user_text(request).splitlines()[0].partition(": ")
    return json.dumps({"facts": [f"{speaker} said: {said}"]})


def _old_and_new(request: GenerationRequest) -> tuple[list[dict[str, str]], list[str]]:
    match = re.search(r"Existing memories:\n(.*)\n\nNew facts:\n(.*)", _user_text(request), re.S)
    assert match, _user_text(request)
    return json.loads(match.group(1)), json.loads(match.group(2))


def _consolidating(request: GenerationRequest) -> str:
    old, facts = _old_and_new(request)
    return json.dumps({"memory": [{"id": old[0]["id"], "text": facts[0], "event": "UPDATE",
                                   "old_memory": old[0]["text"]}]})


def _hoarding(request: GenerationRequest) -> str:
    return json.dumps({"memory": [{"text": f, "event": "ADD"} for f in _old_and_new(request)[1]]})


def _undecided(request: GenerationRequest) -> str:
    # NONE for the old memory (it is known) and nothing about the new fact, plus an ADD of a stored text
    old, _ = _old_and_new(request)
    return json.dumps({"memory": [{"id": old[0]["id"], "text": old[0]["text"], "event": "NONE"},
                                  {"text": old[0]["text"], "event": "ADD"}]})


def _answer_from_all_memories(request: GenerationRequest) -> str:
    memories = _user_text(request).split("Memories:\n", 1)[1].split("\n\nQuestion:", 1)[0]
    return " / ".join(line.removeprefix("- ") for line in memories.splitlines())


def _generator(update: object) -> ScriptedGenerator:
    return ScriptedGenerator({"extraction": _extract, "update": update, "generation": _answer_from_all_memories})


def test_run_history_consolidating_update_answers_the_newest() -> None:
    history = _history(5)
    generator = _generator(_consolidating)
    row = run_history(history, generator, DeterministicEmbedder())
    assert (row["verdict"], row["memory_count"], row["stale_memories"]) == ("newest", 1, 0)
    assert row["memories"] == ["Greta said: I live in Kraków now."]
    assert row["applied"] == {"ADD": 1, "UPDATE": 4, "DELETE": 0}
    assert row["decided"] == {"ADD": 0, "UPDATE": 4, "DELETE": 0, "NONE": 0, "other": 0}
    assert (row["update_calls"], row["uncovered_facts"], row["duplicate_adds"], row["unchanged_updates"]) == (4, 0, 0, 0)
    extraction = [c for c in generator.calls if c.operation.value == "extraction"]
    assert {c.messages[-1]["content"].splitlines()[1] for c in extraction} == {"assistant: Got it."}
    assert "Today is 2025-03-31" in str(extraction[-1].messages[0]["content"])  # a week apart from 2025-03-03
    generation = [c for c in generator.calls if c.operation.value == "generation"]
    assert "Today is 2025-04-07" in str(generation[0].messages[0]["content"])


def test_run_history_hoarding_update_answers_both() -> None:
    row = run_history(_history(3), _generator(_hoarding), DeterministicEmbedder())
    assert (row["verdict"], row["memory_count"], row["stale_memories"]) == ("both", 3, 2)
    assert row["applied"] == {"ADD": 3, "UPDATE": 0, "DELETE": 0}
    assert row["decided"]["ADD"] == 2


def test_run_history_counts_undecided_facts_and_duplicate_adds() -> None:
    history = _history(2, steps=("Bergen is home, by the harbour.", "We moved to Oslo last month!"))
    row = run_history(history, _generator(_undecided), DeterministicEmbedder(),
                      config=MemoryConfig(store="persistent", uncovered_facts="add"))  # the store is always in memory
    assert row["decided"] == {"ADD": 1, "UPDATE": 0, "DELETE": 0, "NONE": 1, "other": 0}
    assert (row["uncovered_facts"], row["duplicate_adds"]) == (1, 1)
    assert row["applied"] == {"ADD": 2, "UPDATE": 0, "DELETE": 0}  # the uncovered fact is ADDed, the duplicate is not
    assert row["verdict"] == "both"


def test_run_history_reports_garbled_update_output() -> None:
    row = run_history(_history(2), _generator(lambda request: "no json here"), DeterministicEmbedder())
    assert row["unparsed_updates"] == 1 and len(row["failures"]) == 1
    assert (row["memory_count"], row["verdict"]) == (1, "stale")


# -- the command ----------------------------------------------------------------------------------
@pytest.fixture
def loaded(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    """The backbone loads as the scripted generator; the calls to the loader are kept."""
    calls: list[dict[str, object]] = []

    def load(model: str, adapters: object = "shipped", **options: object) -> ScriptedGenerator:
        calls.append({"model": model, "adapters": adapters, **options})
        return _generator(_consolidating)

    monkeypatch.setattr(backbone, "load_backbone", load)
    return calls


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    eval_cli.add_arguments(parser)
    return eval_cli.run(parser.parse_args(["consolidation", *argv]))


def test_cli_consolidation_end_to_end(tmp_path: Path, loaded: list[dict[str, object]],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r" / "consolidation.json"
    # The hashing embedder reads no meaning, so the engine's masked update check (which would refuse
    # most of these changes under it) is turned off: this checks the command, not the check.
    assert _run(["--lengths", "2,5", "--limit", "2", "--embedder", "hashing", "--threads", "1", "--quiet",
                 "--update-min-similarity", "off", "--out", str(out)]) == 0
    from memlora_engine.backbone import resolve_runtime

    runtime = resolve_runtime("auto", "gemma-3-270m")  # llama.cpp where llama-cpp-python is installed
    assert loaded == [{"model": "gemma-3-270m", "adapters": "shipped", "dtype": "auto", "num_threads": 1,
                       "runtime": runtime}]
    printed = capsys.readouterr().out
    assert "gemma-3-270m, adapters: " in printed and "newest" in printed
    report = json.loads(out.read_text(encoding="utf-8"))
    assert [r["id"] for r in report["rows"]] == ["l2-01", "l2-02", "l5-01", "l5-02"]
    assert list(report["summary"]) == ["2", "5"]
    assert report["runtime"] == runtime  # the runtime that ran, never "auto"
    assert report["summary"]["5"]["newest"] == 1.0  # the scripted update consolidates
    assert report["summary"]["5"]["applied"] == {"ADD": 2, "UPDATE": 8, "DELETE": 0}
    assert (report["lengths"], report["limit"], report["embedder"]) == ([2, 5], 2, "hashing")
    assert report["memory"]["update_min_similarity"] is None  # --update-min-similarity off reached the config


def test_cli_consolidation_backbone_options(tmp_path: Path, loaded: list[dict[str, object]],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    common = ["--lengths", "3", "--limit", "1", "--embedder", "hashing", "--quiet"]
    assert _run([*common, "--base"]) == 0
    candidate = tmp_path / "candidate-update"
    candidate.mkdir()
    assert _run([*common, "--base", "--update-adapter", str(candidate)]) == 0
    assert [c["adapters"] for c in loaded] == [None, {"update": str(candidate)}]
    assert "adapters: none (base model)" in capsys.readouterr().out


@pytest.mark.parametrize("dated", [True, False])
def test_cli_consolidation_dated_memories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dated: bool) -> None:
    generators: list[ScriptedGenerator] = []

    def load(model: str, adapters: object = "shipped", **options: object) -> ScriptedGenerator:
        generators.append(_generator(_hoarding))
        return generators[-1]

    monkeypatch.setattr(backbone, "load_backbone", load)
    out = tmp_path / "consolidation.json"
    flag = "--dated-memories" if dated else "--no-dated-memories"
    assert _run(["--lengths", "2", "--limit", "1", "--embedder", "hashing", "--quiet", flag, "--out", str(out)]) == 0
    assert json.loads(out.read_text(encoding="utf-8"))["memory"]["dated_memories"] is dated
    (answer,) = [c for c in generators[0].calls if c.operation.value == "generation"]
    lines = _user_text(answer).split("Memories:\n", 1)[1].split("\n\nQuestion:", 1)[0].splitlines()
    listing = [line for line in lines if line.startswith("- ")]  # the best one's turn follows it, indented
    assert len(listing) == 2 and len(lines) == 3  # the hoarding update keeps both values
    if dated:  # a week apart, the newest first
        assert [line[:15] for line in listing] == ["- [2025-03-10] ", "- [2025-03-03] "]
    else:
        assert not any(line.startswith("- [20") for line in listing)


@pytest.mark.parametrize(("flag", "anchored", "context", "unchanged"), [
    ([], True, "own", "fact"), (["--no-anchor-dates"], False, "own", "fact"),
    (["--update-context", "shared"], True, "shared", "fact"), (["--unchanged-updates", "ignore"], True, "own", "ignore"),
])
def test_cli_consolidation_records_its_memory_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flag,
                                                       anchored, context, unchanged) -> None:
    monkeypatch.setattr(backbone, "load_backbone", lambda model, adapters="shipped", **options: _generator(_hoarding))
    out = tmp_path / "consolidation.json"
    assert _run(["--lengths", "2", "--limit", "1", "--embedder", "hashing", "--quiet", *flag, "--out", str(out)]) == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    assert "anchor_dates" not in report  # once, under "memory"
    memory = report["memory"]
    assert (memory["anchor_dates"], memory["update_context"], memory["unchanged_updates"]) == (anchored, context, unchanged)


@pytest.mark.parametrize(("argv", "message"), [
    (["--lengths", "two"], "--lengths wants"),
    (["--lengths", "4"], "no history of length"),
    (["--update-adapter", "/nonexistent/adapter"], "adapter directory not found"),
    (["--adapter", "update"], "STAGE=PATH"),
])
def test_cli_consolidation_errors(loaded: list[dict[str, object]], capsys: pytest.CaptureFixture[str],
                                  argv: list[str], message: str) -> None:
    assert _run([*argv, "--embedder", "hashing"]) == 2
    assert message in capsys.readouterr().err
    assert loaded == []  # nothing loaded before the options were checked

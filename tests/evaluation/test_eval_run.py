"""End-to-end runs on a synthetic conversation: results, report, plots, recordings, resume, CLI."""

from __future__ import annotations

import argparse
import json

import pytest

from memlora_engine.commands import eval as eval_cli
from memlora_engine.errors import ConfigError
from memlora_engine.evaluation import RunOptions, evaluate_locomo, load_locomo, load_runs, parse_config, run_config
from memlora_engine.evaluation.recording import RecordingGenerator, read_jsonl
from memlora_engine.testing import DeterministicEmbedder, ScriptedGenerator
from memlora_engine.types import Operation


def _factory(make_model, counter=None):
    def build(config):
        if counter is not None:
            counter.append(config.name)
        return make_model(adapters=config.adapters)

    return build


def test_end_to_end_then_resume_without_model_calls(tmp_path, synthetic_file, make_model):
    conversations = load_locomo(synthetic_file)[:1]
    configs = [parse_config("mem0-prompts"), parse_config("memlora"), parse_config("full-context")]
    out = tmp_path / "out"
    loads: list[str] = []
    options = RunOptions(progress=False, limit_sessions=2)
    results = evaluate_locomo(
        conversations, configs, _factory(make_model, loads), out,
        embedder=DeterministicEmbedder(), options=options, model_name="scripted",
    )
    assert loads == ["mem0-prompts", "memlora", "full-context"]
    for name in ("results.json", "report.md", "per_category.png", "configs.png"):
        assert (out / name).stat().st_size > 0
    saved = json.loads((out / "results.json").read_text())
    assert set(saved["configs"]) == {"mem0-prompts", "memlora", "full-context"}
    mem0 = saved["configs"]["mem0-prompts"]
    # questions whose evidence lies in sessions 1-2: four of categories 1-4 and the adversarial one
    assert mem0["scores"]["overall"]["count"] == 4 and mem0["scores"]["adversarial"]["count"] == 1
    assert mem0["scores"]["per_category"]["4"]["locomo_f1"] == 1.0  # "Miso"
    assert mem0["scores"]["adversarial"]["adversarial"] == 1.0
    # 2 + 2 windows (4 and 3 turns); each second turn leads a call of its own (MemoryConfig.speaker_windows)
    # when it speaks in the first person (MemoryConfig.short_windows): Ben's "Great tomatoes." does not
    assert mem0["efficiency"]["per_operation"]["extraction"]["calls"] == 4 + 2
    assert mem0["efficiency"]["tokens_per_answer"] is not None
    assert results["configs"]["memlora"]["model_calls_this_process"] > 0
    report = (out / "report.md").read_text()
    assert "not measured" in report and "meteor_exact_stem" in report
    # 7 facts, all new: 5 ADDs written by the update operation, 2 ADDed with no call into an empty scope
    events = mem0["memory_events"]["syn-1"]
    assert (events["memories"], events["applied"]["ADD"], events["decided"]["ADD"]) == (7, 7, 5)
    assert "memory_events" not in saved["configs"]["full-context"]  # no memory
    assert "| mem0-prompts | syn-1 |" in report.split("## Memory: the update step's events", 1)[1]

    run_dir = out / "runs" / "mem0-prompts" / "syn-1"
    calls = read_jsonl(run_dir / "calls.jsonl")
    assert {c["operation"] for c in calls} == {"extraction", "update", "generation"}
    first = calls[0]
    assert first["stage"] == "ingest" and first["session"] == 1 and first["dia_ids"] == ["D1:1", "D1:2"]
    assert "Personal Information Organizer" in first["messages"][0]["content"]  # Mem0's long prompt
    assert "Ana: I adopted a cat" in first["messages"][1]["content"] and first["output"].startswith("{")
    memlora_calls = read_jsonl(out / "runs" / "memlora" / "syn-1" / "calls.jsonl")
    assert memlora_calls[0]["messages"][0]["content"].startswith("Extract the facts")  # short prompt
    ingest = read_jsonl(run_dir / "ingest.jsonl")
    assert len(ingest) == 4 and ingest[0]["facts"] and ingest[0]["results"][0]["event"] == "ADD"
    answers = read_jsonl(run_dir / "answers.jsonl")
    cat = next(a for a in answers if a["question_index"] == 0)
    assert cat["prediction"] == "Miso" and cat["evidence_recall"] == 1.0
    # which check declined an answer (Answer.declined) is kept beside it; the scripted model answered them all
    assert all(a["declined"] is None and a["reason"] is None for a in answers)
    assert any("D1:1" in r["dia_ids"] for r in cat["retrieved"])
    assert (run_dir / "memories.jsonl").exists()
    full = read_jsonl(out / "runs" / "full-context" / "syn-1" / "answers.jsonl")
    assert full[0]["retrieved"][0]["truncated_turns"] == 0 and "D2:3" in full[0]["retrieved_dia_ids"]

    # resumed: everything is cached, so no model is even built
    loads.clear()
    again = evaluate_locomo(
        conversations, configs, _factory(make_model, loads), out,
        embedder=DeterministicEmbedder(), options=options, model_name="scripted",
    )
    assert loads == []
    assert all(r["model_calls_this_process"] == 0 for r in again["configs"].values())
    assert again["configs"]["mem0-prompts"]["scores"] == mem0["scores"]
    assert len(read_jsonl(run_dir / "calls.jsonl")) == len(calls)


@pytest.mark.parametrize(("context_length", "truncated"), [(8192, False), (165, True)])
def test_full_context_keeps_the_latest_turns_that_fit_the_generator_s_context(
        tmp_path, synthetic_file, make_model, context_length, truncated):
    conversation = load_locomo(synthetic_file)[0]
    config = parse_config("full-context")
    run_config([conversation], config, make_model(adapters=config.adapters, context_length=context_length), tmp_path,
               embedder=DeterministicEmbedder(), options=RunOptions(progress=False, limit_sessions=2))
    answer = read_jsonl(tmp_path / "runs" / "full-context" / "syn-1" / "answers.jsonl")[0]
    # 165 tokens hold the answer prompt (94 by the 4-characters estimate), its 48 new tokens and one turn or so
    assert (answer["retrieved"][0]["truncated_turns"] > 0) is truncated
    if truncated:
        kept = answer["retrieved_dia_ids"]
        assert kept and all(dia_id.startswith("D2:") for dia_id in kept)  # the latest session's turns


def test_interrupted_run_resumes_at_the_last_finished_session(tmp_path, synthetic_file, make_model):
    conversation = load_locomo(synthetic_file)[0]
    config = parse_config("memlora-prompts-base")
    # The other-subject check compares cosine margins, which DeterministicEmbedder's hashed vectors do
    # not give meaning to; this test is about resuming, so every question goes to the model.
    options = RunOptions(progress=False, memory_overrides={"decline_other_subject": None})
    budget = {"calls": 0}

    def flaky(config):
        model = make_model(adapters=())
        inner = model.generate

        def generate(request):
            budget["calls"] += 1
            if budget["calls"] == 8:  # dies during session 2's ingestion
                raise KeyboardInterrupt
            return inner(request)

        model.generate = generate
        return model

    with pytest.raises(KeyboardInterrupt):
        run_config([conversation], config, lambda: flaky(config), tmp_path, embedder=DeterministicEmbedder(),
                   options=options)
    run_dir = tmp_path / "runs" / config.name / conversation.sample_id
    checkpoint = json.loads((run_dir / "checkpoint.json").read_text())
    assert checkpoint["sessions_done"] == 1 and not checkpoint["ingest_complete"]

    fresh = make_model(adapters=())
    result = run_config([conversation], config, fresh, tmp_path, embedder=DeterministicEmbedder(), options=options)
    assert len(result["answers"]) == 7
    ingest = read_jsonl(run_dir / "ingest.jsonl")
    assert [r["session"] for r in ingest] == [1, 1, 2, 2, 3]  # the torn session was redone once
    calls = read_jsonl(run_dir / "calls.jsonl")
    # 7 answers, 6 calls: "When did Ana move to Lisbon?" takes its memory's date (MemoryConfig.date_answers)
    assert sum(c["stage"] == "answer" for c in calls) == 6
    # the resumed memory holds sessions 1-3 exactly once, with provenance for retrieval recall
    memories = read_jsonl(run_dir / "memories.jsonl")
    assert len(memories) == len({m["text"] for m in memories})
    ops = json.loads((run_dir / "checkpoint.json").read_text())["stats"]
    # 5 windows, 4 of two turns whose second turn leads a call too (MemoryConfig.speaker_windows) when it
    # speaks in the first person (all but "Great tomatoes.", MemoryConfig.short_windows)
    assert ops["extraction"]["calls"] == 5 + 3 and ops["generation"]["calls"] == 6 and ops["generation"]["date_answers"] == 1
    # and the whole thing re-scores from disk
    runs = load_runs(tmp_path)
    assert [r.name for r in runs] == [config.name] and len(runs[0].answers) == 7


def test_changed_settings_refuse_to_mix_with_a_cached_run(tmp_path, synthetic_file, make_model):
    conversation = load_locomo(synthetic_file)[0]
    config = parse_config("mem0-prompts")
    run_config([conversation], config, make_model(adapters=()), tmp_path, embedder=DeterministicEmbedder(),
               options=RunOptions(progress=False, limit_sessions=1))
    with pytest.raises(ConfigError, match="limit_sessions"):
        run_config([conversation], config, make_model(adapters=()), tmp_path, embedder=DeterministicEmbedder(),
                   options=RunOptions(progress=False, limit_sessions=2))


def test_recording_generator_checks_adapters_against_the_config():
    with pytest.raises(ConfigError, match="needs an adapter"):
        RecordingGenerator(ScriptedGenerator({}, adapters=()), [Operation.EXTRACTION])
    with pytest.raises(ConfigError, match="base model"):
        RecordingGenerator(ScriptedGenerator({}), [])
    recorder = RecordingGenerator(ScriptedGenerator({}, adapters=["update"]), [Operation.UPDATE])
    assert recorder.has_adapter(Operation.UPDATE) and not recorder.has_adapter(Operation.GENERATION)
    assert recorder.count_tokens("abcdefgh") == 2


def test_cli_report_rescores_cached_runs(tmp_path, synthetic_file, make_model, capsys):
    conversations = load_locomo(synthetic_file)
    for name in ("a", "b"):
        evaluate_locomo(conversations[:1], [parse_config("mem0-prompts")], _factory(make_model), tmp_path / name,
                        embedder=DeterministicEmbedder(), options=RunOptions(progress=False, limit_sessions=1),
                        plots=False)
    parser = argparse.ArgumentParser(prog="memlora eval")
    eval_cli.add_arguments(parser)
    args = parser.parse_args(["report", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "cmp"),
                              "--no-semantic"])
    assert eval_cli.run(args) == 0
    results = json.loads((tmp_path / "cmp" / "results.json").read_text())
    assert set(results["configs"]) == {"mem0-prompts", "mem0-prompts@b"}
    assert (tmp_path / "cmp" / "per_category.png").exists()
    assert "LoCoMo F1" in capsys.readouterr().out


def test_cli_locomo_reports_configuration_errors(tmp_path, synthetic_file, capsys):
    parser = argparse.ArgumentParser(prog="memlora eval")
    eval_cli.add_arguments(parser)
    args = parser.parse_args(["locomo", "--data", str(synthetic_file), "--config", "memlora", "--split", "all",
                              "--out", str(tmp_path)])
    assert eval_cli.run(args) == 2  # memlora needs adapters: a clear message, no model load
    assert "adapters" in capsys.readouterr().err


def test_eval_is_registered_in_the_memlora_command():
    from memlora_engine import commands as cli

    assert cli._COMMANDS["eval"][0] == "memlora_engine.commands.eval"


def test_token_caps_reach_every_recorded_call(tmp_path, synthetic_file, make_model):
    from memlora_engine.evaluation.configs import parse_token_caps

    caps = parse_token_caps("extraction=96, update=160")
    assert caps == {"extraction": 96, "update": 160} and parse_token_caps(None) == {}
    with pytest.raises(ConfigError, match="STAGE=N"):
        parse_token_caps("extract=96")
    with pytest.raises(ConfigError, match="STAGE=N"):
        parse_token_caps("update=0")
    conversation = load_locomo(synthetic_file)[0]
    config = parse_config("memlora-prompts-base")
    run_config([conversation], config, make_model(adapters=()), tmp_path, embedder=DeterministicEmbedder(),
               options=RunOptions(progress=False, limit_sessions=1, memory_overrides={"max_new_tokens": caps}))
    calls = read_jsonl(tmp_path / "runs" / config.name / conversation.sample_id / "calls.jsonl")
    by_stage = {(c["operation"], c["max_new_tokens"]) for c in calls}
    assert ("extraction", 96) in by_stage and ("generation", 48) in by_stage
    assert {cap for op, cap in by_stage if op == "update"} <= {160}


def test_a_configuration_differing_only_in_generation_takes_the_finished_ingestion(tmp_path, synthetic_file,
                                                                                     make_model):
    conversation = load_locomo(synthetic_file)[0]
    # every question to the model (the other-subject check's margins mean nothing on hashed vectors)
    options = RunOptions(progress=False, memory_overrides={"decline_other_subject": None})
    full = parse_config("memlora")
    run_config([conversation], full, make_model(adapters=full.adapters), tmp_path, embedder=DeterministicEmbedder(),
               options=options)
    source = tmp_path / "runs" / "memlora" / conversation.sample_id

    partial = parse_config("adapters=extraction,update")
    seen: list[str] = []
    model = make_model(adapters=partial.adapters)
    inner = model.generate

    def generate(request):
        seen.append(request.operation.value)
        return inner(request)

    model.generate = generate
    result = run_config([conversation], partial, model, tmp_path, embedder=DeterministicEmbedder(), options=options,
                        ingest_from="memlora")
    # nothing ingested again; 7 answers, one a memory's date without a call (MemoryConfig.date_answers)
    assert set(seen) == {"generation"} and len(seen) + 1 == len(result["answers"]) == 7
    target = tmp_path / "runs" / partial.name / conversation.sample_id
    checkpoint = json.loads((target / "checkpoint.json").read_text())
    original = json.loads((source / "checkpoint.json").read_text())
    assert checkpoint["ingested_by"] == "memlora" and checkpoint["provenance"] == original["provenance"]
    assert checkpoint["stats"]["extraction"] == original["stats"]["extraction"]
    assert checkpoint["stats"]["generation"]["calls"] == 6  # its own answers only
    assert read_jsonl(target / "memories.jsonl") == read_jsonl(source / "memories.jsonl")
    assert {c["stage"] for c in read_jsonl(target / "calls.jsonl")} == {"ingest", "answer"}

    def matches(answers):  # ties at score 0 come back in any order
        return {a["question_index"]: {r["id"] for r in a["retrieved"] if r["score"] > 0} for a in answers}

    # the same memory, retrieved alike; only the answering stage differs
    assert matches(result["answers"]) == matches(read_jsonl(source / "answers.jsonl"))


@pytest.mark.parametrize("overrides", [{"answer_lexical_weight": None, "search_lexical_weight": None, "search_limit": 3},
                                       {"answer_top_k": 3, "answer_mmr": 0.5},
                                       {"answer_superseded": "off", "date_answers": False}])
def test_a_run_answering_otherwise_takes_the_ingestion(tmp_path, first_session_run, make_model, overrides):
    partial = parse_config("adapters=extraction,update,generation")
    options = RunOptions(progress=False, limit_sessions=1, memory_overrides=overrides)
    result = run_config([first_session_run], partial, make_model(adapters=partial.adapters), tmp_path,
                        embedder=DeterministicEmbedder(), options=options, ingest_from="memlora")
    target = tmp_path / "runs" / partial.name / first_session_run.sample_id
    assert json.loads((target / "checkpoint.json").read_text())["ingested_by"] == "memlora"
    assert result["answers"]


def test_ingestion_is_not_taken_from_a_run_that_ingests_differently(tmp_path, first_session_run, make_model):
    conversation = first_session_run
    options = RunOptions(progress=False, limit_sessions=1)
    only_extraction = parse_config("adapters=extraction")
    with pytest.raises(ConfigError, match="ingests differently.*ingest_adapters"):
        run_config([conversation], only_extraction, make_model(adapters=only_extraction.adapters), tmp_path,
                   embedder=DeterministicEmbedder(), options=options, ingest_from="memlora")
    partial = parse_config("adapters=extraction,update")
    with pytest.raises(ConfigError, match="limit_sessions"):
        run_config([conversation], partial, make_model(adapters=partial.adapters), tmp_path,
                   embedder=DeterministicEmbedder(), options=RunOptions(progress=False), ingest_from="memlora")
    with pytest.raises(ConfigError, match="no run"):
        run_config([conversation], partial, make_model(adapters=partial.adapters), tmp_path / "elsewhere",
                   embedder=DeterministicEmbedder(), options=options, ingest_from="memlora")
    assert not (tmp_path / "runs" / partial.name / conversation.sample_id / "checkpoint.json").exists()


def test_ingestion_built_with_other_date_anchoring_is_not_taken(tmp_path, first_session_run, make_model):
    conversation = first_session_run
    partial = parse_config("adapters=extraction,update,generation")
    unanchored = RunOptions(progress=False, limit_sessions=1, memory_overrides={"anchor_dates": False})
    with pytest.raises(ConfigError, match="ingests differently.*memory"):
        run_config([conversation], partial, make_model(adapters=partial.adapters), tmp_path,
                   embedder=DeterministicEmbedder(), options=unanchored, ingest_from="memlora")


def test_a_run_cached_under_another_memory_default_is_neither_resumed_nor_taken(tmp_path, first_session_run,
                                                                                make_model):
    # a run written by code whose MemoryConfig defaulted to anchor_dates=False, as before session 15
    conversation = first_session_run
    saved_path = tmp_path / "runs" / "memlora" / "run.json"
    saved = json.loads(saved_path.read_text())
    assert saved["memory"]["anchor_dates"] is True and saved["memory"]["answer_top_k"] == 8
    saved["memory"]["anchor_dates"] = False
    saved_path.write_text(json.dumps(saved))
    options = RunOptions(progress=False, limit_sessions=1)
    full = parse_config("memlora")
    with pytest.raises(ConfigError, match="other settings.*memory"):
        run_config([conversation], full, make_model(adapters=full.adapters), tmp_path,
                   embedder=DeterministicEmbedder(), options=options)
    partial = parse_config("adapters=extraction,update,generation")
    with pytest.raises(ConfigError, match="ingests differently.*memory"):
        run_config([conversation], partial, make_model(adapters=partial.adapters), tmp_path,
                   embedder=DeterministicEmbedder(), options=options, ingest_from="memlora")


def _adapter_dir(path, weights: bytes):
    path.mkdir(parents=True)
    (path / "adapter_config.json").write_text('{"r": 8}')
    (path / "adapter_model.safetensors").write_bytes(weights)
    return path


def test_a_cached_run_of_other_adapter_weights_is_neither_resumed_nor_taken(tmp_path, synthetic_file, make_model):
    conversation = load_locomo(synthetic_file)[0]
    options = RunOptions(progress=False, limit_sessions=1)
    full = parse_config("memlora")
    stages = {stage: _adapter_dir(tmp_path / "a" / stage, stage.encode()) for stage in ("extraction", "update", "generation")}
    run_config([conversation], full, make_model(adapters=full.adapters), tmp_path, embedder=DeterministicEmbedder(),
               options=options, adapters=stages)
    saved = json.loads((tmp_path / "runs" / "memlora" / "run.json").read_text())
    assert set(saved["adapter_weights"]) == {"extraction", "update", "generation"}
    # the same stages on other update weights: the cached run is not resumed
    other_update = {**stages, "update": _adapter_dir(tmp_path / "b" / "update", b"retrained")}
    with pytest.raises(ConfigError, match="other settings.*adapter_weights"):
        run_config([conversation], full, make_model(adapters=full.adapters), tmp_path,
                   embedder=DeterministicEmbedder(), options=options, adapters=other_update)
    # nor is its ingestion taken; another generation adapter may take it
    partial = parse_config("adapters=extraction,update,generation")
    with pytest.raises(ConfigError, match="ingests differently.*adapter_weights"):
        run_config([conversation], partial, make_model(adapters=partial.adapters), tmp_path,
                   embedder=DeterministicEmbedder(), options=options, ingest_from="memlora", adapters=other_update)
    assert not (tmp_path / "runs" / partial.name / "run.json").exists()  # a refused run leaves nothing behind
    other_generation = {**stages, "generation": _adapter_dir(tmp_path / "b" / "generation", b"retrained")}
    result = run_config([conversation], partial, make_model(adapters=partial.adapters), tmp_path,
                        embedder=DeterministicEmbedder(), options=options, ingest_from="memlora",
                        adapters=other_generation)
    assert result["answers"]
    with pytest.raises(ConfigError, match="no adapter_config.json"):
        run_config([conversation], full, make_model(adapters=full.adapters), tmp_path / "c",
                   embedder=DeterministicEmbedder(), options=options, adapters={**stages, "update": tmp_path})


@pytest.mark.parametrize(
    ("argv", "settings"),
    [
        ([], {}),  # nothing given: MemoryConfig's defaults hold
        (["--no-anchor-dates"], {"anchor_dates": False}),
        (["--dated-memories", "--no-speaker-windows"], {"dated_memories": True, "speaker_windows": False}),
        (["--speaker-windows"], {"speaker_windows": True}),
        (["--update-context", "shared", "--no-anchor-dates"], {"anchor_dates": False, "update_context": "shared"}),
        (["--update-min-similarity", "0.2"], {"update_min_similarity": 0.2}),
        (["--unchanged-updates", "ignore"], {"unchanged_updates": "ignore"}),
        (["--short-windows", "all"], {"short_windows": "all"}),
        (["--source-weight", "off", "--update-min-similarity", "0.3"], {"source_weight": None,
                                                                         "update_min_similarity": 0.3}),
        (["--source-weight", "1.5"], {"source_weight": 1.5}),
        (["--answer-lexical-weight", "off"], {"answer_lexical_weight": None}),
        (["--answer-lexical-weight", "0.2", "--source-weight", "0.5"], {"answer_lexical_weight": 0.2,
                                                                        "source_weight": 0.5}),
        (["--update-min-similarity", "off"], {"update_min_similarity": None}),  # off: the check off, not the default
        (["--search-lexical-weight", "off"], {"search_lexical_weight": None}),
        (["--no-date-answers", "--polar-answers"], {"date_answers": False, "polar_answers": True}),
        (["--decline-other-subject", "off", "--decline-other-source", "0.6"], {"decline_other_subject": None,
                                                                              "decline_other_source": 0.6}),
        (["--decline-other-subject", "0.2", "--decline-other-source", "off"], {"decline_other_subject": 0.2,
                                                                              "decline_other_source": None}),
        (["--answer-turns", "0"], {"answer_turns": 0}),
        (["--answer-turns", "2", "--no-polar-answers"], {"answer_turns": 2, "polar_answers": False}),
        (["--no-written-date-answers"], {"written_date_answers": False}),
    ],
)
def test_memory_switches_set_only_the_fields_given(argv, settings):
    import argparse

    from memlora_engine.commands._options import add_memory_switches, memory_switches

    parser = argparse.ArgumentParser()
    add_memory_switches(parser)
    assert memory_switches(parser.parse_args(argv)) == settings
    from memlora_engine import MemoryConfig

    MemoryConfig(**settings)  # each is a MemoryConfig field


def test_memory_events_count_what_was_applied_and_what_the_model_wrote(tmp_path):
    from memlora_engine.evaluation.memory_events import memory_events

    assert memory_events(tmp_path) is None  # nothing ingested yet

    def lines(*records):
        return "".join(json.dumps(r) + "\n" for r in records)

    def update(*ops):
        return {"operation": "update", "output": json.dumps({"memory": [{"id": "0", "event": e} for e in ops]})}

    (tmp_path / "ingest.jsonl").write_text(lines(
        {"results": [{"event": "ADD"}, {"event": "ADD"}]},
        {"results": [{"event": "UPDATE"}, {"event": "DELETE"}]},
        {"results": []},
    ))
    (tmp_path / "calls.jsonl").write_text(lines(
        {"operation": "extraction", "output": '{"facts": []}'},
        update("ADD", "NONE"), update("UPDATE", "DELETE", "NONE", "MERGE"),
        {"operation": "update", "output": "not json"},
        {"operation": "generation", "output": "Oslo"},
    ))
    (tmp_path / "memories.jsonl").write_text(lines({"id": "a"}, {"id": "b"}, {"id": "c"},
                                                   {"id": "d", "superseded_by": "b"}))
    assert memory_events(tmp_path) == {
        "memories": 3,
        "superseded": 1,
        "applied": {"ADD": 2, "UPDATE": 1, "DELETE": 1},
        "decided": {"ADD": 1, "UPDATE": 1, "DELETE": 1, "NONE": 2, "other": 1},
        "decided_share": {"ADD": 0.1667, "UPDATE": 0.1667, "DELETE": 0.1667, "NONE": 0.3333},
        "unparsed": 1,
    }


def test_a_superseded_record_keeps_the_turns_of_the_text_it_keeps(tmp_path, synthetic_file):
    # The update step UPDATEs the cat memory with session 3's news about Miso; the replaced text stays
    # as a superseded record, and retrieval recall credits it with the turns it came from.
    import re

    from memlora_engine.repository import superseded_id, text_hash

    def extract(request):  # each "Name: text" line is a fact, as the shared scripted model reads them
        return json.dumps({"facts": re.findall(r"^\w+: .*$", request.messages[-1]["content"], re.M)})

    def update(request):
        content = request.messages[-1]["content"]
        facts = json.loads(content[content.rfind('["'):content.rfind('"]') + 2])
        listed = dict(re.findall(r'"id": "(\d+)",\s*"text": "([^"]*)"', content))
        cat = next((i for i, text in listed.items() if "adopted a cat" in text), None)
        if cat is not None and "Miso learned" in facts[0]:
            return json.dumps({"memory": [{"id": cat, "text": facts[0], "event": "UPDATE"}]})
        return json.dumps({"memory": [{"id": f"new{i}", "text": f, "event": "ADD"} for i, f in enumerate(facts)]})

    model = ScriptedGenerator({"extraction": extract, "update": update, "generation": lambda request: "Miso"})
    conversation = load_locomo(synthetic_file)[0]
    config = parse_config("memlora")
    run_config([conversation], config, model, tmp_path, embedder=DeterministicEmbedder(),
               options=RunOptions(progress=False, memory_overrides={"update_min_similarity": None}))
    run_dir = tmp_path / "runs" / config.name / conversation.sample_id
    memories = read_jsonl(run_dir / "memories.jsonl")
    (kept,) = [m for m in memories if m.get("superseded_by")]
    assert kept["text"] == "Ana: I adopted a cat named Miso the week before 3 March 2024."  # anchor_dates
    (successor,) = [m for m in memories if m["id"] == kept["superseded_by"]]
    assert successor["text"].startswith("Ana: Miso learned")
    provenance = json.loads((run_dir / "checkpoint.json").read_text())["provenance"]
    assert kept["id"] == superseded_id(successor["id"], text_hash(kept["text"]))
    assert provenance[kept["id"]] == ["D1:1", "D1:2"] and "D3:1" in provenance[successor["id"]]

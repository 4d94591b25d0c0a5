"""``memlora distill``: build (or resume) the cached teacher data for the expert adapters.

Imported by the ``memlora`` command at start-up: argparse-level code only.

Examples::

    memlora distill --data locomo_dev.json --split train,validation
    memlora distill --data locomo_dev.json --split train --teacher-url http://127.0.0.1:8000/v1 \\
        --teacher-model qwen3-8b --teacher-ops extraction,update
    memlora distill --data locomo_dev.json --split train,validation --synthetic-update 1200
    memlora distill --data locomo_dev.json --split train,validation --multi-fact-windows 1500
    memlora distill --data locomo_dev.json --conversations conv-41 --out data-checked \
        --outcome-check results/update_bench/candidate_perfact200
    memlora distill --data locomo_dev.json --split train,validation --unanswerable 250
    memlora distill --data locomo_dev.json --split train,validation --current-state 300
    memlora distill --data locomo_dev.json --split train,validation --chat-windows 1200
    memlora distill --check-labeler tests/training/data/update_cases.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_arguments", "default_data_dir", "run"]


def default_data_dir() -> Path:
    """Where distilled data goes by default: ``<memlora cache>/training/data`` (outside any repository)."""
    from memlora_engine.backbone.models import default_cache_dir

    return default_cache_dir() / "training" / "data"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default=os.environ.get("MEMLORA_LOCOMO_PATH"),
                        help="a LoCoMo-format JSON file ($MEMLORA_LOCOMO_PATH by default)")
    parser.add_argument("--split", default="train,validation",
                        help="comma-separated splits of the dev file (default: train,validation)")
    parser.add_argument("--conversations", help="comma-separated sample ids instead of splits")
    parser.add_argument("--out", help="cache directory (default: <memlora cache>/training/data)")
    parser.add_argument("--embedder", default="minilm", choices=("minilm", "deterministic"),
                        help="memory embedder for the replay (minilm = the engine default; deterministic = fast "
                             "hashed bag-of-words, for smoke runs)")
    parser.add_argument("--teacher-url", help="OpenAI-compatible endpoint of a teacher model")
    parser.add_argument("--teacher-model", help="model name for --teacher-url")
    parser.add_argument("--teacher-ops", default="extraction,update",
                        help="operations the --teacher-url model answers (others keep the LoCoMo signals)")
    parser.add_argument("--limit-sessions", type=int, help="replay only the first K sessions per conversation")
    parser.add_argument("--no-captions", action="store_true", help="leave photo captions out of the turns")
    parser.add_argument("--synthetic-update", type=int, metavar="N", default=0,
                        help="also write N synthetic update conflicts (known ADD/UPDATE/DELETE/NONE labels) from the "
                             "selected training conversations into <out>/update/synthetic-update.jsonl; train on "
                             "them with `memlora train update --with-synthetic` (docs/training.md)")
    parser.add_argument("--synthetic-seed", type=int, default=0,
                        help="seed of the synthetic update, the unanswerable and the current-state examples")
    parser.add_argument("--synthetic-per-fact", action="store_true",
                        help="one new fact per synthetic example, as the engine's update step asks (one call per fact)")
    parser.add_argument("--synthetic-rich", action="store_true",
                        help="the richer synthetic update recipe: more attributes, new facts and stored memories with "
                             "a second clause, calls over one old memory, same-person distractors (docs/training.md)")
    parser.add_argument("--synthetic-twins", type=float, metavar="SHARE", default=0.0,
                        help="with --synthetic-per-fact: this share of the changed values also get an ADD twin, the "
                             "same fact over the listing without the memory it changes (docs/training.md)")
    parser.add_argument("--multi-fact-windows", type=int, metavar="N", default=0,
                        help="also write N multi-fact extraction calls (2-4 consecutive windows of a session, target "
                             "the union of their observation facts) from the selected training conversations into "
                             "<out>/extraction/multi-fact-windows.jsonl; train on them with `memlora train "
                             "extraction --with-multi-fact` (docs/training.md)")
    parser.add_argument("--multi-fact-seed", type=int, default=0, help="seed of the multi-fact extraction calls")
    parser.add_argument("--chat-windows", type=int, metavar="N", default=0,
                        help="also write N chat-shaped extraction calls (one person's turn as the named user's "
                             "message, then a short assistant acknowledgement, no reply, or the other speaker's "
                             "turn as the assistant's; target: that turn's own facts) into "
                             "<out>/extraction/chat-windows.jsonl; train on them with `memlora train extraction "
                             "--with-chat-windows` (docs/training.md)")
    parser.add_argument("--multi-fact-speaker-share", type=float, default=0.25,
                        help="share of multi-fact calls holding one speaker's turns only (default 0.25)")
    parser.add_argument("--outcome-check", metavar="ADAPTER_DIR",
                        help="outcome-checked update labels: put every update call to the rule labeler and to this "
                             "update adapter; where they disagree, keep the decision whose answers (the shipped "
                             "generation expert on the session's LoCoMo questions) score best (docs/training.md)")
    parser.add_argument("--threads", type=int, help="torch threads of the model behind --outcome-check")
    parser.add_argument("--unanswerable", type=int, metavar="N", default=0,
                        help="also write N generation examples whose retrieved memories do not hold the answer, "
                             "target \"No information available.\" (category-5 questions of the training "
                             "conversations and questions asked against another conversation's memory) into "
                             "<out>/generation/unanswerable.jsonl; train on them with "
                             "`memlora train generation --with-unanswerable` (docs/training.md)")
    parser.add_argument("--unanswerable-adversarial-share", type=float, default=0.5, metavar="S",
                        help="share of --unanswerable examples that are category-5 questions (default 0.5)")
    parser.add_argument("--current-state", type=int, metavar="N", default=0,
                        help="also write N generation examples whose answer is an attribute's current value (a memory "
                             "that names an old and a new value, an old memory and a later change, a chain of changes, "
                             "or a value never changed; built from the synthetic update templates with the training "
                             "conversations' observations as distractors) into <out>/generation/current-state.jsonl; "
                             "train on them with `memlora train generation --with-current-state` (docs/training.md)")
    parser.add_argument("--dated-memories", action="store_true",
                        help="generation prompts list each memory with its session date, newest first, as the "
                             "engine does with MemoryConfig.dated_memories (the replay, --unanswerable and "
                             "--current-state); the listing is otherwise MemoryConfig's (its answer_top_k and "
                             "answer_turns), and a cache distilled with another listing is refused: use a fresh --out")
    parser.add_argument("--check-labeler", metavar="CASES",
                        help="only report the update labeler's agreement with hand-labelled JSONL cases")


def _listing(args: argparse.Namespace) -> Any:
    """The engine settings every generation example's memory listing follows: the engine's, dated or not."""
    from memlora_engine.config import MemoryConfig

    return MemoryConfig(dated_memories=args.dated_memories)


def _embedder(name: str) -> Any:
    if name == "deterministic":
        from memlora_engine.embeddings.hashing import HashingEmbedder

        return HashingEmbedder()
    from memlora_engine.embeddings.sentence_transformers import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


def _teachers(args: argparse.Namespace, embedder: Any, out: Path) -> dict[str, Any]:
    from memlora_engine.errors import ConfigError
    from memlora_engine.teachers import CachedTeacher, OpenAICompatibleTeacher
    from memlora_engine.training.signals import ObservationTeacher, ReferenceAnswerTeacher, UpdateLabeler

    teachers: dict[str, Any] = {"extraction": ObservationTeacher(), "update": UpdateLabeler(embedder),
                                "generation": ReferenceAnswerTeacher()}
    if args.teacher_url:
        if not args.teacher_model:
            raise ConfigError("--teacher-url needs --teacher-model")
        remote = CachedTeacher(OpenAICompatibleTeacher(args.teacher_url, args.teacher_model),
                               out / "teacher_cache.jsonl")
        for op in (o.strip() for o in args.teacher_ops.split(",") if o.strip()):
            if op not in teachers:
                raise ConfigError(f"unknown operation {op!r} in --teacher-ops")
            teachers[op] = remote
    if args.outcome_check:
        teachers["update"] = _outcome_checked(args, teachers["update"], embedder)
    return teachers


def _outcome_checked(args: argparse.Namespace, labeler: Any, embedder: Any) -> Any:
    """The labeler and the ``--outcome-check`` adapter, disagreements settled by the generation expert's answers."""
    from memlora_engine.adapters import shipped_adapters
    from memlora_engine.backbone import DEFAULT_MODEL, load_backbone
    from memlora_engine.errors import ConfigError
    from memlora_engine.teachers import GeneratorTeacher
    from memlora_engine.training.outcome import OutcomeCheckedTeacher

    adapter = Path(args.outcome_check)
    if not (adapter / "adapter_config.json").is_file():
        raise ConfigError(f"--outcome-check wants an update adapter directory, got {adapter}")
    adapters: dict[str, Any] = {**shipped_adapters(DEFAULT_MODEL), "update": adapter}
    # the runtime the labels in docs/training.md were made on (a training-data step: transformers, as training)
    backbone = load_backbone(DEFAULT_MODEL, adapters=adapters, num_threads=args.threads, runtime="transformers")
    candidate = GeneratorTeacher(backbone, name=f"update-adapter:{adapter.name}")
    from memlora_engine.evaluation.metrics import locomo_score

    return OutcomeCheckedTeacher([labeler, candidate], backbone, embedder,
                                 lambda answer, qa: locomo_score(answer, qa.answer, qa.category))


def _check_labeler(args: argparse.Namespace) -> int:
    from memlora_engine.training.signals import UpdateLabeler, labeler_agreement

    cases = [json.loads(line) for line in Path(args.check_labeler).read_text(encoding="utf-8").splitlines() if line.strip()]
    report = labeler_agreement(UpdateLabeler(_embedder(args.embedder)), cases)
    print(json.dumps(report, indent=1))
    return 0


def _training_sources(selected: list[Any], option: str, what: str) -> list[Any]:
    """The selected conversations that are not held out (validation and test ones are left out, and said so)."""
    from memlora_engine.data.splits import HELD_OUT
    from memlora_engine.errors import ConfigError

    sources = [c for c in selected if c.sample_id not in HELD_OUT]
    if not sources:
        raise ConfigError(f"{option} needs training conversations (validation and test ones are left out)")
    skipped = [c.sample_id for c in selected if c.sample_id in HELD_OUT]
    if skipped:
        print(f"{what} leave out the held-out conversations {skipped}")
    return sources


def _synthetic(args: argparse.Namespace, selected: list[Any], out: Path) -> None:
    """Synthetic update examples from the selected conversations that are not held out."""
    from memlora_engine.training.synthetic_update import write_synthetic_update

    sources = _training_sources(selected, "--synthetic-update", "synthetic update examples")
    stats = write_synthetic_update(out, sources, args.synthetic_update, seed=args.synthetic_seed,
                                   per_fact=args.synthetic_per_fact, rich=args.synthetic_rich,
                                   twins=args.synthetic_twins)
    shares = ", ".join(f"{k} {v:.0%}" for k, v in stats["synthetic"]["event_shares"].items())
    mix = ", ".join(f"{k} {v:.0%}" for k, v in stats["mix"]["event_shares"].items())
    print(f"synthetic update examples: {stats['count']} ({stats['synthetic']['facts']} facts: {shares})")
    print(f"  events {stats['synthetic']['events']}, edits {stats['synthetic']['edits']}, "
          f"facts per call {stats['synthetic']['facts_per_call']}")
    print(f"  mix with the cached LoCoMo update examples of {[c.sample_id for c in sources]}: {mix}")
    print(f"  statistics: {out / 'update' / 'synthetic-update.stats.json'}")


def _unanswerable(args: argparse.Namespace, selected: list[Any], out: Path, embedder: Any) -> None:
    """Unanswerable generation examples from the selected conversations that are not held out."""
    from memlora_engine.training.unanswerable import write_unanswerable

    sources = _training_sources(selected, "--unanswerable", "unanswerable examples")
    stats = write_unanswerable(out, sources, args.unanswerable, embedder, seed=args.synthetic_seed,
                               adversarial_share=args.unanswerable_adversarial_share,
                               config=_listing(args))
    kinds = ", ".join(f"{k} {v}" for k, v in stats["kinds"].items())
    share = "" if stats["share_of_mix"] is None else f", {stats['share_of_mix']:.0%} of the generation examples"
    print(f"unanswerable examples: {stats['count']} ({kinds}), target {stats['phrase']!r}{share} "
          f"of {stats['conversations']}")
    print(f"  statistics: {out / 'generation' / 'unanswerable.stats.json'}")


def _current_state(args: argparse.Namespace, selected: list[Any], out: Path, embedder: Any) -> None:
    """Current-state generation examples from the selected conversations that are not held out, without a
    value of the consolidation check's histories."""
    from memlora_engine.evaluation.consolidation import load_histories
    from memlora_engine.training.current_state import write_current_state

    sources = _training_sources(selected, "--current-state", "current-state examples")
    # The consolidation check's values stay out of the examples, so that check measures generalisation.
    held_out = {spelling for h in load_histories() for value in h.values for spelling in h.spellings(value)}
    stats = write_current_state(out, sources, args.current_state, embedder, seed=args.synthetic_seed,
                                config=_listing(args), held_out=held_out)
    kinds = ", ".join(f"{k} {v}" for k, v in stats["kinds"].items())
    print(f"current-state examples: {stats['count']} ({kinds}) of {stats['conversations']}")
    print(f"  statistics: {out / 'generation' / 'current-state.stats.json'}")


def _multi_fact(args: argparse.Namespace, selected: list[Any], out: Path) -> None:
    """Multi-fact extraction calls from the selected conversations that are not held out."""
    from memlora_engine.training.multi_fact import write_multi_fact_windows

    sources = _training_sources(selected, "--multi-fact-windows", "multi-fact extraction calls")
    stats = write_multi_fact_windows(out, sources, args.multi_fact_windows, seed=args.multi_fact_seed,
                                     speaker_share=args.multi_fact_speaker_share, captions=not args.no_captions)
    synthetic, mix = stats["synthetic"], stats["mix"]
    print(f"multi-fact extraction calls: {stats['count']} of {stats['requested']} asked "
          f"({stats['candidates']} runs of 2-4 windows; skipped {stats['skipped']})")
    print(f"  variants {stats['variants']}, windows per call {stats['windows_per_call']}, "
          f"speaker calls left out {stats['speaker_dropped_facts']} facts of the other speaker")
    print(f"  facts per call {synthetic['facts_per_call']}: {synthetic['facts']} facts, "
          f"mean {synthetic['mean_facts_per_call']}, empty {synthetic['empty_share']:.0%}")
    print(f"  mix with the cached two-turn extraction examples of {stats['locomo_cached']}: "
          f"{mix['examples']} calls, mean {mix['mean_facts_per_call']} facts, empty {mix['empty_share']:.0%}")
    print(f"  statistics: {out / 'extraction' / 'multi-fact-windows.stats.json'}")


def _chat_windows(args: argparse.Namespace, selected: list[Any], out: Path) -> None:
    """Chat-shaped extraction calls from the selected conversations that are not held out."""
    from memlora_engine.training.chat_windows import write_chat_windows

    sources = _training_sources(selected, "--chat-windows", "chat-window extraction calls")
    stats = write_chat_windows(out, sources, args.chat_windows, seed=args.multi_fact_seed,
                               captions=not args.no_captions)
    facts = stats["facts"]
    print(f"chat-window extraction calls: {stats['count']} of {stats['requested']} asked "
          f"({stats['candidates']} turns; skipped {stats['skipped']})")
    print(f"  kinds {stats['kinds']}, facts per call {facts['facts_per_call']}, empty {facts['empty_share']:.0%}, "
          f"reply turns' facts left out {stats['reply_dropped_facts']}")
    print(f"  statistics: {out / 'extraction' / 'chat-windows.stats.json'}")


def run(args: argparse.Namespace) -> int:
    from memlora_engine.errors import ConfigError, MemLoRAError

    try:
        if args.check_labeler:
            return _check_labeler(args)
        if not args.data:
            raise ConfigError("--data is required (or set MEMLORA_LOCOMO_PATH)")
        from memlora_engine.data.locomo import load_locomo
        from memlora_engine.data.splits import select_conversations
        from memlora_engine.training.data import build_distillation_data

        selected = select_conversations(
            load_locomo(args.data), ids=args.conversations, splits=args.split, source=str(args.data)
        )
        out = Path(args.out) if args.out else default_data_dir()
        embedder = _embedder(args.embedder)
        manifest = build_distillation_data(
            selected, _teachers(args, embedder, out), embedder, out, captions=not args.no_captions,
            limit_sessions=args.limit_sessions, listing=_listing(args),
            progress=lambda line: print(line, flush=True),
        )
        manifest["source"] = Path(args.data).name
        (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
        checked = {k: v["outcome_check"] for k, v in manifest["conversations"].items() if "outcome_check" in v}
        for sample_id, counts in checked.items():
            print(f"outcome check {sample_id}: {counts['changed']} labels changed of {counts['calls']} update calls "
                  f"({counts['disagreements']} disagreements checked, {counts['ties']} ties, "
                  f"{counts['unchecked']} without a question, {counts['questions']} answers)")
        print(f"distilled data: {out}")
        if args.synthetic_update > 0:
            _synthetic(args, selected, out)
        if args.unanswerable > 0:
            _unanswerable(args, selected, out, embedder)
        if args.current_state > 0:
            _current_state(args, selected, out, embedder)
        if args.multi_fact_windows > 0:
            _multi_fact(args, selected, out)
        if args.chat_windows > 0:
            _chat_windows(args, selected, out)
        return 0
    except MemLoRAError as exc:
        print(f"memlora distill: {exc}", file=sys.stderr)
        return 2

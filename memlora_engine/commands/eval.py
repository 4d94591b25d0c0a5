"""``memlora eval``: ``locomo`` runs configurations, ``report DIR...`` re-scores, the VQA extension, ``update``.

``consolidation`` asks for the newest of several contradicting values
(:mod:`memlora_engine.commands.eval_consolidation`); ``retrieval`` measures evidence
recall@k of search settings on a cached memory (:mod:`memlora_engine.commands.eval_retrieval`).

``fetch-images`` fills the LoCoMo photo cache, ``vqa-build`` writes the VQA benchmark
with a teacher VLM, ``vqa`` scores a configuration on it (``docs/vision_benchmark.md``).

Imported by the ``memlora`` command at start-up, so it imports only argparse-level
code; the evaluation machinery loads when a subcommand runs.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from memlora_engine.commands import eval_consolidation, eval_retrieval, eval_update
from memlora_engine.commands._options import (
    add_memory_switches,
    add_runtime_argument,
    chosen_runtime,
    memory_switches,
)

__all__ = ["add_arguments", "run"]


def _default_data() -> str | None:
    return os.environ.get("MEMLORA_LOCOMO_PATH")


def _scoring_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-semantic", action="store_true",
                        help="skip the embedding metrics (BERTScore-MiniLM, SentenceBERT); L then says so")
    parser.add_argument("--judge-url", help="OpenAI-compatible endpoint for J, e.g. http://127.0.0.1:8000/v1")
    parser.add_argument("--judge-model", help="model name for --judge-url")
    parser.add_argument("--no-plots", action="store_true", help="write no PNG plots")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="eval_command", required=True)
    locomo = sub.add_parser("locomo", help="Run configurations on LoCoMo and write a report.",
                            description="Run the memory pipeline on LoCoMo conversations and score the answers.")
    locomo.add_argument("--data", default=_default_data(), required=_default_data() is None,
                        help="a LoCoMo-format JSON file ($MEMLORA_LOCOMO_PATH by default)")
    locomo.add_argument("--config", action="append", dest="configs", metavar="SPEC",
                        help="memlora | mem0-prompts | memlora-prompts-base | full-context | "
                             "adapters=STAGE,STAGE[;base-prompts=mem0]; repeat to compare (default: memlora)")
    locomo.add_argument("--split", default="test", help="train | validation | test | all (default: test)")
    locomo.add_argument("--conversations", help="comma-separated sample ids instead of a split")
    locomo.add_argument("--out", required=True, help="output directory (results.json, report.md, plots)")
    locomo.add_argument("--cache", help="run cache (prompts, outputs, answers: it quotes the data set; keep it out of "
                                        "a repository). Default: OUT/runs")
    locomo.add_argument("--limit-sessions", type=int,
                        help="ingest the first K sessions; keep questions whose evidence lies in them")
    locomo.add_argument("--limit-questions", type=int, help="answer at most N questions per conversation")
    locomo.add_argument("--model", default="gemma-3-270m", help="backbone model (default: gemma-3-270m)")
    locomo.add_argument("--adapters-dir", help="directory with one adapter per stage: extraction/, update/, generation/")
    locomo.add_argument("--adapter", action="append", default=[], metavar="STAGE=PATH", help="one stage's adapter")
    locomo.add_argument("--dtype", default="auto", help="auto | float32 | bfloat16 (the transformers runtime's)")
    locomo.add_argument("--threads", type=int, help="torch (or llama.cpp) threads (default: all usable cores)")
    add_runtime_argument(locomo)
    locomo.add_argument("--no-captions", action="store_true", help="leave photo captions out of the turns")
    locomo.add_argument("--image-dir", help="LoCoMo photo cache (see `memlora eval fetch-images`): a model that takes "
                                            "images sees the photos; missing ones fall back to their captions")
    locomo.add_argument("--context-tokens", type=int, help="full-context prompt budget (default: model context)")
    locomo.add_argument("--answer-top-k", type=int, help="memories given to the generation stage")
    locomo.add_argument("--answer-mmr", type=float, metavar="WEIGHT",
                        help="choose the answer's memories by maximal marginal relevance with this weight on "
                             "similarity to the question (MemoryConfig.answer_mmr; default: off)")
    locomo.add_argument("--search-mode", choices=("vector", "hybrid"),
                        help="how answers retrieve (MemoryConfig.search_mode; default: vector)")
    add_memory_switches(locomo)
    locomo.add_argument("--max-new-tokens", metavar="STAGE=N,...",
                        help="per-stage output caps, e.g. extraction=96,update=160 (default: MemoryConfig's)")
    locomo.add_argument("--ingest-from", metavar="SPEC",
                        help="take the finished ingestion of this configuration (in the same cache) instead of "
                             "ingesting again; it must share the model, options and extraction/update stages")
    locomo.add_argument("--quiet", action="store_true", help="no progress bars")
    _scoring_arguments(locomo)
    report = sub.add_parser("report", help="Re-score cached runs and write one comparison report.",
                            description="Re-score the runs cached in one or more --out directories (no model calls).")
    report.add_argument("dirs", nargs="+", help="--out or --cache directories written by `memlora eval locomo`")
    report.add_argument("--out", help="where to write the report (default: the first directory)")
    report.add_argument("--cache", help="where the re-scored per-question records go (default: OUT/runs)")
    _scoring_arguments(report)
    _vqa_arguments(sub)
    eval_update.add_parser(sub)
    eval_consolidation.add_parser(sub)
    eval_retrieval.add_parser(sub)


def _vqa_arguments(sub: Any) -> None:
    fetch = sub.add_parser("fetch-images", help="Download LoCoMo's shared photos into an image cache.",
                           description="Download every photo URL of the selected conversations that is not cached "
                                       "yet, to DIR/<sha256(url)>.<ext> (needs internet).")
    fetch.add_argument("--data", default=_default_data(), required=_default_data() is None,
                       help="a LoCoMo-format JSON file ($MEMLORA_LOCOMO_PATH by default)")
    fetch.add_argument("--image-dir", required=True, help="the image cache directory (created when missing)")
    fetch.add_argument("--split", default="all", help="train | validation | test | all (default: all)")
    fetch.add_argument("--conversations", help="comma-separated sample ids instead of a split")
    fetch.add_argument("--timeout", type=float, default=30.0, help="seconds per download (default: 30)")
    fetch.add_argument("--workers", type=int, default=4, help="parallel downloads (default: 4)")
    build = sub.add_parser("vqa-build", help="Write the VQA benchmark: a teacher VLM asks one-word questions.",
                           description="For each cached LoCoMo photo, a teacher VLM writes one question with a "
                                       "one-word answer (unusual object / small region's colour / count).")
    build.add_argument("--data", default=_default_data(), required=_default_data() is None,
                       help="a LoCoMo-format JSON file ($MEMLORA_LOCOMO_PATH by default)")
    build.add_argument("--image-dir", required=True, help="the image cache (see fetch-images)")
    build.add_argument("--teacher-url", required=True, help="OpenAI-compatible endpoint of a VLM, e.g. http://127.0.0.1:8000/v1")
    build.add_argument("--teacher-model", help="model name for --teacher-url")
    build.add_argument("--out", required=True, help="the benchmark JSONL to write")
    build.add_argument("--teacher-cache", help="teacher answers cache (default: OUT's stem + .teacher_cache.jsonl)")
    build.add_argument("--splits", help="JSON file {split: [sample ids]} (default: the dev file's train/validation/test)")
    vqa = sub.add_parser("vqa", help="Score a configuration on the VQA benchmark (metric V).",
                         description="Add each record's turn and photo to a fresh memory scope, ask its question, "
                                     "score the answer by exact match (V).")
    vqa.add_argument("--bench", required=True, help="a benchmark JSONL written by vqa-build")
    vqa.add_argument("--split", default="test", help="train | validation | test | all (default: test)")
    vqa.add_argument("--config", default="memlora-v", choices=("memlora-v", "caption"),
                     help="memlora-v: a VLM answers from the photo; caption: a text-only model from the caption")
    vqa.add_argument("--model", required=True, help="backbone model (a VLM for memlora-v, a text model for caption)")
    vqa.add_argument("--adapter", action="append", default=[], metavar="STAGE=PATH",
                     help="one stage's adapter, e.g. vqa=PATH (default: the model's shipped adapters)")
    vqa.add_argument("--image-dir", help="re-resolve photos by URL in this cache (default: the paths in the benchmark)")
    vqa.add_argument("--limit", type=int, help="score the first N records")
    vqa.add_argument("--embedder", default="deterministic", choices=("deterministic", "minilm"),
                     help="memory embedder (each scope holds one turn, so ranking hardly matters; default: deterministic)")
    vqa.add_argument("--dtype", default="auto", help="auto | float32 | bfloat16")
    vqa.add_argument("--threads", type=int, help="torch threads (default: all usable cores)")
    vqa.add_argument("--out", help="write per-record rows (JSONL) here, and the summary next to it (.summary.json)")


def _judge(args: argparse.Namespace) -> Any:
    if not args.judge_url:
        return None
    from memlora_engine.errors import ConfigError
    from memlora_engine.evaluation.judge import OpenAICompatibleJudge

    if not args.judge_model:
        raise ConfigError("--judge-url needs --judge-model")
    return OpenAICompatibleJudge(args.judge_url, args.judge_model)


def _semantic(args: argparse.Namespace) -> Any:
    if args.no_semantic:
        return None
    from memlora_engine.evaluation.semantic import SemanticScorer

    return SemanticScorer()


def _adapter_paths(args: argparse.Namespace) -> dict[str, str]:
    from memlora_engine.errors import ConfigError
    from memlora_engine.operations import PIPELINE_OPERATIONS

    paths: dict[str, str] = {}
    if args.adapters_dir:
        for stage in (op.value for op in PIPELINE_OPERATIONS):
            candidate = Path(args.adapters_dir) / stage
            if candidate.is_dir():
                paths[stage] = str(candidate)
    for item in args.adapter:
        stage, sep, path = item.partition("=")
        if not sep:
            raise ConfigError(f"--adapter wants STAGE=PATH, got {item!r}")
        paths[stage.strip()] = path.strip()
    return paths


def _run_locomo(args: argparse.Namespace) -> int:
    from memlora_engine.data.locomo import load_locomo
    from memlora_engine.data.splits import select_conversations
    from memlora_engine.errors import ConfigError
    from memlora_engine.evaluation.configs import parse_config, parse_token_caps
    from memlora_engine.evaluation.efficiency import model_size_bytes
    from memlora_engine.evaluation.locomo import evaluate_locomo
    from memlora_engine.evaluation.runner import RunOptions

    args.runtime = chosen_runtime(args, dtype=args.dtype)
    configs = [parse_config(spec) for spec in (args.configs or ["memlora"])]
    conversations = select_conversations(
        load_locomo(args.data), ids=args.conversations, splits=args.split, source=str(args.data)
    )
    adapter_paths = _adapter_paths(args)
    for config in configs:
        missing = [op.value for op in config.adapters if op.value not in adapter_paths]
        if missing:
            raise ConfigError(
                f"configuration {config.spec!r} runs {', '.join(missing)} on adapters: give --adapters-dir "
                "(with extraction/, update/, generation/) or --adapter STAGE=PATH"
            )
    loaded: dict[frozenset[Any], Any] = {}

    def generator_factory(config: Any) -> Any:
        from memlora_engine.backbone import load_backbone

        key = config.adapters
        if key not in loaded:
            loaded.clear()  # one model in memory at a time
            adapters = {op.value: adapter_paths[op.value] for op in config.adapters}
            loaded[key] = load_backbone(args.model, adapters=adapters or None, dtype=args.dtype, num_threads=args.threads,
                                        runtime=args.runtime)
        return loaded[key]

    overrides: dict[str, Any] = {"answer_top_k": args.answer_top_k} if args.answer_top_k else {}
    if args.search_mode:
        overrides["search_mode"] = args.search_mode
    if args.answer_mmr is not None:
        overrides["answer_mmr"] = args.answer_mmr
    overrides.update(memory_switches(args))
    caps = parse_token_caps(args.max_new_tokens)
    if caps:
        overrides["max_new_tokens"] = caps
    options = RunOptions(
        limit_sessions=args.limit_sessions, limit_questions=args.limit_questions, captions=not args.no_captions,
        context_tokens=args.context_tokens, memory_overrides=overrides, progress=not args.quiet,
        image_dir=args.image_dir,
    )
    command = "memlora eval " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if len(sys.argv) > 2 else None
    # The model name is in each cached run's fingerprint: a llama.cpp run never resumes a transformers one.
    model_name = args.model if args.runtime == "transformers" else f"{args.model}@{args.runtime}"
    results = evaluate_locomo(
        conversations, configs, generator_factory, args.out, options=options, model_name=model_name,
        model_size=lambda config: model_size_bytes(args.model, {op.value: adapter_paths[op.value] for op in config.adapters}),
        semantic=_semantic(args), judge=_judge(args),
        meta={"command": command, "data": Path(args.data).name, "split": args.conversations or args.split,
              "dtype": args.dtype, "threads": args.threads, "runtime": args.runtime},
        plots=not args.no_plots, cache_dir=args.cache,
        ingest_from=parse_config(args.ingest_from).name if args.ingest_from else None, adapters=adapter_paths,
    )
    _print_summary(results, Path(args.out))
    return 0


def _print_summary(results: dict[str, Any], out: Path) -> None:
    for name, r in results["configs"].items():
        overall = r["scores"]["overall"]
        f1, count = overall.get("locomo_f1"), overall["count"]
        print(f"{name}: LoCoMo F1 {f1:.3f} over {count} questions" if f1 is not None else f"{name}: no scored question")
    for name, counts in (results.get("meta", {}).get("images") or {}).items():
        print(f"{name}: {counts.get('images_sent', 0)} photos sent as images, {counts.get('caption_fallbacks', 0)} "
              "caption fallbacks (photo not cached)" if counts else f"{name}: photos as captions (text-only generator)")
    print(f"report: {out / 'report.md'}")


def _run_report(args: argparse.Namespace) -> int:
    from memlora_engine.evaluation.report import build_report, load_runs

    runs = []
    seen: set[str] = set()
    for directory in args.dirs:
        for run in load_runs(directory):
            if run.name in seen:  # the same configuration in two directories: keep both, named apart
                run.name = f"{run.name}@{Path(directory).name}"
            seen.add(run.name)
            runs.append(run)
    out = Path(args.out or args.dirs[0])
    results = build_report(runs, out, meta={"sources": [str(d) for d in args.dirs]}, semantic=_semantic(args),
                           judge=_judge(args), plots=not args.no_plots, cache_dir=args.cache)
    _print_summary(results, out)
    return 0


def _run_fetch_images(args: argparse.Namespace) -> int:
    from memlora_engine.data.image_cache import fetch_images
    from memlora_engine.data.locomo import load_locomo
    from memlora_engine.data.splits import select_conversations
    from memlora_engine.evaluation.vqa import conversation_images

    conversations = select_conversations(
        load_locomo(args.data), ids=args.conversations, splits=args.split, source=str(args.data)
    )
    urls = [image.url for image in conversation_images(conversations)]
    result = fetch_images(urls, args.image_dir, timeout=args.timeout, workers=args.workers)
    for url, why in result.failed.items():
        print(f"failed: {url}: {why}", file=sys.stderr)
    counts = result.counts()
    print(f"images: {counts['fetched']} fetched, {counts['present']} already cached, {counts['failed']} failed "
          f"-> {args.image_dir}")
    return 0 if not result.failed else 1


def _run_vqa_build(args: argparse.Namespace) -> int:
    import json

    from memlora_engine.data.splits import DEV_SPLITS
    from memlora_engine.errors import ConfigError, InvalidInputError
    from memlora_engine.evaluation.vqa import build_vqa_benchmark
    from memlora_engine.teachers import OpenAICompatibleTeacher

    if not args.teacher_model:  # the same teacher options as `memlora distill`
        raise ConfigError("--teacher-url needs --teacher-model")
    splits: Any = DEV_SPLITS
    if args.splits:
        try:
            splits = json.loads(Path(args.splits).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InvalidInputError(f"cannot read --splits {args.splits}: {exc}") from exc
    summary = build_vqa_benchmark(
        args.data, OpenAICompatibleTeacher(args.teacher_url, args.teacher_model), image_dir=args.image_dir,
        out_path=args.out, splits=splits, cache_path=args.teacher_cache,
    )
    print(json.dumps(summary, indent=1))
    return 0


def _run_vqa(args: argparse.Namespace) -> int:
    import json

    from memlora_engine.backbone import load_backbone
    from memlora_engine.config import MemoryConfig
    from memlora_engine.errors import ConfigError
    from memlora_engine.evaluation.vqa import evaluate_vqa, load_vqa_benchmark
    from memlora_engine.memory import Memory

    records = load_vqa_benchmark(args.bench, None if args.split == "all" else args.split)[: args.limit]
    if not records:
        raise ConfigError(f"no {args.split!r} record in {args.bench}")
    adapters: dict[str, str] = {}
    for item in args.adapter:
        stage, sep, path = item.partition("=")
        if not sep:
            raise ConfigError(f"--adapter wants STAGE=PATH, got {item!r}")
        adapters[stage.strip()] = path.strip()
    generator = load_backbone(args.model, adapters or "shipped", dtype=args.dtype, num_threads=args.threads)
    if args.embedder == "minilm":
        from memlora_engine.embeddings.sentence_transformers import SentenceTransformerEmbedder

        embedder: Any = SentenceTransformerEmbedder()
    else:
        from memlora_engine.embeddings.hashing import HashingEmbedder

        embedder = HashingEmbedder()
    memory = Memory(MemoryConfig(store="memory"), generator=generator, embedder=embedder)
    result = evaluate_vqa(records, memory, config=args.config, image_dir=args.image_dir)
    rows = result.pop("rows")
    summary = {"bench": Path(args.bench).name, "split": args.split, "model": args.model, **result}
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        out.with_name(out.stem + ".summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    print(json.dumps(summary, indent=1))
    return 0


_COMMANDS = {"locomo": _run_locomo, "report": _run_report, "fetch-images": _run_fetch_images,
             "vqa-build": _run_vqa_build, "vqa": _run_vqa, "update": eval_update.run,
             "consolidation": eval_consolidation.run, "retrieval": eval_retrieval.run}


def run(args: argparse.Namespace) -> int:
    from memlora_engine.errors import MemLoRAError

    try:
        return _COMMANDS[args.eval_command](args)
    except MemLoRAError as exc:
        print(f"memlora eval: {exc}", file=sys.stderr)
        return 2

"""One call from LoCoMo data to a report: run each configuration, then score and write the report."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from memlora_engine.data.locomo import Conversation
from memlora_engine.embeddings.base import Embedder
from memlora_engine.evaluation.configs import EvalConfig
from memlora_engine.evaluation.extraction import extraction_coverage
from memlora_engine.evaluation.memory_events import memory_events
from memlora_engine.evaluation.recording import read_jsonl
from memlora_engine.evaluation.report import RunData, build_report
from memlora_engine.evaluation.runner import RunOptions, run_config
from memlora_engine.generator import Generator

__all__ = ["evaluate_locomo"]


def _extraction(
    run_dir: Path, conversations: Sequence[Conversation], embedder: Callable[[], Embedder]
) -> dict[str, Any] | None:
    """Extraction coverage per conversation, also saved as ``extraction.json`` beside its ingestion log."""
    coverage = {}
    for conversation in conversations:
        log = run_dir / conversation.sample_id / "ingest.jsonl"
        if not conversation.observations or not log.exists():
            continue
        coverage[conversation.sample_id] = extraction_coverage(read_jsonl(log), conversation, embedder())
        (log.parent / "extraction.json").write_text(json.dumps(coverage[conversation.sample_id], indent=1),
                                                    encoding="utf-8")
    return coverage or None


def _memory_events(run_dir: Path, conversations: Sequence[Conversation]) -> dict[str, Any] | None:
    """The update step's events and the memory count per conversation (read from the cache each time)."""
    events = {c.sample_id: found for c in conversations if (found := memory_events(run_dir / c.sample_id)) is not None}
    return events or None


def evaluate_locomo(
    conversations: Sequence[Conversation],
    configs: Sequence[EvalConfig],
    generator_factory: Callable[[EvalConfig], Generator],
    out_dir: str | Path,
    *,
    embedder: Embedder | Callable[[], Embedder] | None = None,
    options: RunOptions | None = None,
    model_name: str = "unknown",
    model_size: Callable[[EvalConfig], int | None] | None = None,
    semantic: Any = None,
    judge: Any = None,
    meta: dict[str, Any] | None = None,
    plots: bool = True,
    cache_dir: str | Path | None = None,
    ingest_from: str | None = None,
    adapters: Mapping[str, str | Path] | None = None,
) -> dict[str, Any]:
    """Run (or resume) every configuration and write ``results.json``, ``report.md`` and plots.

    Args:
        generator_factory: builds the model for a configuration (e.g. the backbone with
            that configuration's adapters); called only when uncached work is left.
        model_size: bytes on disk of a configuration's weights, for the efficiency table.
        semantic: a :class:`~memlora_engine.evaluation.semantic.SemanticScorer` (None:
            the embedding parts of L are reported unavailable).
        judge: a :class:`~memlora_engine.evaluation.judge.Judge` (None: J not measured).
        cache_dir: where the per-configuration caches go (default ``<out_dir>/runs``);
            they hold prompts, data and answers, ``out_dir`` only aggregates.
        ingest_from: a configuration name in the cache whose finished ingestion the
            other configurations take instead of ingesting (it may be one of
            ``configs``, listed first; see :func:`~memlora_engine.evaluation.runner.run_config`).
        adapters: each stage's adapter directory, fingerprinted by content
            (:func:`~memlora_engine.evaluation.runner.run_config`).
    """
    options = options or RunOptions()
    out = Path(out_dir)
    cache = Path(cache_dir) if cache_dir is not None else out / "runs"
    runs = []
    images: dict[str, dict[str, int]] = {}
    for config in configs:
        result = run_config(
            conversations, config, functools.partial(generator_factory, config), out,
            embedder=embedder, options=options, model_name=model_name, cache_dir=cache,
            ingest_from=ingest_from if ingest_from != config.name else None, adapters=adapters,
        )
        if options.image_dir is not None:
            images[config.name] = result["images"]
        size_file = cache / config.name / "model_size.json"
        size = model_size(config) if model_size is not None else None
        if size is None and size_file.exists():
            size = json.loads(size_file.read_text())["bytes"]
        elif size is not None:
            size_file.write_text(json.dumps({"bytes": size}))
        extraction = None if config.full_context else _extraction(cache / config.name, conversations, result["embedder"])
        events = None if config.full_context else _memory_events(cache / config.name, conversations)
        runs.append(
            RunData(
                name=config.name, config=config.describe(), answers=result["answers"], stats=result["stats"],
                model_bytes=size, model_calls_this_process=result["model_calls_this_process"], extraction=extraction,
                memory_events=events,
            )
        )
    info = {
        "conversations": [c.sample_id for c in conversations],
        "model": model_name,
        "limit_sessions": options.limit_sessions,
        "limit_questions": options.limit_questions,
        **({"images": images} if options.image_dir is not None else {}),
        **(meta or {}),
    }
    return build_report(runs, out, meta=info, semantic=semantic, judge=judge, plots=plots, cache_dir=cache)

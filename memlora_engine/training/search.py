"""Hyperparameter search with the paper's two tiers (Algorithm B2).

* inner tier: every (learning rate, batch size) candidate trains with early stopping on
  the validation teacher-forcing loss (:func:`~memlora_engine.training.trainer.train_adapter`);
* outer tier: each candidate's best adapter runs the *full pipeline* on the validation
  conversation(s) through the evaluation harness -- that stage on the adapter, the other
  stages on the base model -- and the candidate with the best pipeline metric wins
  (ties and a missing outer tier: the lowest validation loss).

Each stage is searched on its own, so the best combination is the per-stage winners.
Everything is resumable: finished candidates and finished pipeline runs are cached.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from memlora_engine.training.config import TrainConfig
from memlora_engine.training.trainer import TrainResult, train_adapter

__all__ = ["OuterMetric", "candidate_name", "pipeline_metric", "search_stage"]

logger = logging.getLogger(__name__)

OuterMetric = Callable[[str, str], dict[str, Any]]
"""``(operation, adapter_dir) -> {"metric": float, ...}``: higher is better."""


def candidate_name(learning_rate: float, batch_size: int) -> str:
    return f"lr{learning_rate:g}-bs{batch_size}"


def pipeline_metric(
    conversations: Sequence[Any],
    out_dir: str | Path,
    *,
    model: str = "gemma-3-270m",
    embedder: Any = None,
    limit_sessions: int | None = None,
    limit_questions: int | None = None,
    metric: str = "locomo_f1",
    dtype: str = "auto",
    num_threads: int | None = None,
    base_model_factory: Callable[[], Any] | None = None,
    max_new_tokens: dict[str, int] | None = None,
) -> OuterMetric:
    """The outer-tier metric: the harness's overall ``metric`` with one stage on its adapter.

    Args:
        conversations: the validation conversation(s) (:class:`~memlora_engine.evaluation.Conversation`).
        out_dir: the harness cache (one run directory per stage and candidate).
        limit_sessions, limit_questions: the harness's limits (CPU budget).
        max_new_tokens: per-stage token caps (the base-model stages run to the cap).
        base_model_factory: returns a fresh base ``(model, tokenizer)``; by default
            :func:`~memlora_engine.backbone.load_backbone` of ``model``.
    """

    def score(operation: str, adapter_dir: str) -> dict[str, Any]:
        from memlora_engine.backbone import HFBackbone, load_backbone
        from memlora_engine.evaluation.configs import EvalConfig
        from memlora_engine.evaluation.runner import RunOptions, run_config
        from memlora_engine.evaluation.scoring import aggregate, score_answers
        from memlora_engine.types import Operation

        name = f"{operation}-{Path(adapter_dir).parent.name}"
        config = EvalConfig(name=name, spec=f"adapters={operation}", adapters=frozenset({Operation(operation)}))

        def generator() -> Any:
            if base_model_factory is not None:
                base, tokenizer = base_model_factory()
                return HFBackbone(base, tokenizer, adapters={operation: adapter_dir})
            return load_backbone(model, adapters={operation: adapter_dir}, dtype=dtype, num_threads=num_threads)

        result = run_config(conversations, config, generator, out_dir, embedder=embedder, model_name=model,
                            options=RunOptions(limit_sessions=limit_sessions, limit_questions=limit_questions, progress=False,
                                               memory_overrides={"max_new_tokens": dict(max_new_tokens)}
                                               if max_new_tokens else {}))
        summary = aggregate(score_answers(result["answers"]))["overall"]
        return {"metric": summary.get(metric), "metric_name": metric, "overall": summary}

    return score


def search_stage(
    base: TrainConfig,
    learning_rates: Sequence[float],
    batch_sizes: Sequence[int],
    train_examples: Sequence[dict[str, Any]],
    val_examples: Sequence[dict[str, Any]],
    out_dir: str | Path,
    *,
    outer: OuterMetric | None = None,
    model_factory: Callable[[], tuple[Any, Any]] | None = None,
    progress: bool = True,
    max_seconds_per_candidate: float | None = None,
) -> dict[str, Any]:
    """Search one stage; writes and returns ``<out_dir>/search.json`` with the table and the winner.

    Args:
        model_factory: returns a fresh base ``(model, tokenizer)`` per candidate (each
            candidate wraps its own copy in peft); loaded from ``base.model`` when None.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for lr in learning_rates:
        for bs in batch_sizes:
            config = replace(base, learning_rate=float(lr), batch_size=int(bs))
            run_dir = out / candidate_name(lr, bs)
            model = tokenizer = None
            if not (run_dir / "result.json").exists():
                model, tokenizer = model_factory() if model_factory is not None else (None, None)
            result: TrainResult = train_adapter(config, train_examples, val_examples, run_dir, model=model,
                                                tokenizer=tokenizer, progress=progress,
                                                max_seconds=max_seconds_per_candidate)
            row: dict[str, Any] = {
                "candidate": candidate_name(lr, bs), "learning_rate": lr, "batch_size": bs,
                "steps": result.steps, "best_step": result.best_step, "base_val_loss": result.base_val_loss,
                "best_val_loss": result.best_val_loss, "stopped": result.stopped,
                "seconds": result.seconds, "adapter_dir": result.adapter_dir,
            }
            rows.append(row)
    if outer is not None:
        for row in rows:
            cache = Path(row["adapter_dir"]).parent / "outer.json"
            if cache.exists():
                row["outer"] = json.loads(cache.read_text(encoding="utf-8"))
            else:
                row["outer"] = outer(base.operation, row["adapter_dir"])
                cache.write_text(json.dumps(row["outer"], indent=1), encoding="utf-8")

    def key(row: dict[str, Any]) -> tuple[float, float]:
        metric = (row.get("outer") or {}).get("metric")
        return (-(metric if metric is not None else float("-inf")), row["best_val_loss"])

    best = min(rows, key=key)
    summary = {"operation": base.operation, "selection": "outer pipeline metric, then val loss" if outer else
               "validation loss (no outer tier)", "candidates": rows, "best": best["candidate"],
               "best_adapter_dir": best["adapter_dir"]}
    (out / "search.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    return summary

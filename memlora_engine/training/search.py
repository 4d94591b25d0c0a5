"""Hyperparameter search with the paper's two tiers (Algorithm B2).

* inner tier: every (learning rate, batch size) candidate trains with early stopping on
  the validation teacher-forcing loss (:func:`~memlora_engine.training.trainer.train_adapter`);
* outer tier: each candidate's best adapter is scored by an :data:`OuterMetric`, e.g. the
  *full pipeline* on the validation conversation(s) through the evaluation harness --
  that stage on the adapter, the other stages on the base model
  (:func:`memlora_engine.evaluation.pipeline_metric`, which ``memlora train`` passes in
  when it searches) -- and the candidate with the best metric wins (ties and a missing outer
  tier: the lowest validation loss).

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

__all__ = ["OuterMetric", "candidate_name", "search_stage"]

logger = logging.getLogger(__name__)

OuterMetric = Callable[[str, str], dict[str, Any]]
"""``(operation, adapter_dir) -> {"metric": float, ...}``: higher is better."""


def candidate_name(learning_rate: float, batch_size: int) -> str:
    return f"lr{learning_rate:g}-bs{batch_size}"


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

"""The harness around trained adapters: the search's outer-tier metric and the Table-4 pipeline runs.

Training never imports evaluation; these functions close the loop from this side:

* :func:`pipeline_metric` scores one stage's candidate adapter by running the full
  pipeline on validation conversations (the outer tier of
  :func:`memlora_engine.training.search_stage`, which takes it as ``outer``);
* :func:`pipeline_eval` runs one configuration of the paper's Table-4 comparison with
  the adapters of a directory (``python -m memlora_engine.commands.train_report --pipeline``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from memlora_engine.data.locomo import load_locomo
from memlora_engine.data.splits import select_split
from memlora_engine.evaluation.configs import EvalConfig, parse_config
from memlora_engine.evaluation.locomo import evaluate_locomo
from memlora_engine.evaluation.runner import RunOptions, run_config
from memlora_engine.evaluation.scoring import aggregate, score_answers
from memlora_engine.evaluation.semantic import SemanticScorer
from memlora_engine.types import Operation

__all__ = ["pipeline_eval", "pipeline_metric"]


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
) -> Callable[[str, str], dict[str, Any]]:
    """The outer-tier metric of the two-tier search: the harness's overall ``metric`` with one stage on its adapter.

    Pass the result as ``outer`` to :func:`memlora_engine.training.search_stage`.

    Args:
        conversations: the validation conversation(s) (:class:`~memlora_engine.data.Conversation`).
        out_dir: the harness cache (one run directory per stage and candidate).
        limit_sessions, limit_questions: the harness's limits (CPU budget).
        max_new_tokens: per-stage token caps (the base-model stages run to the cap).
        base_model_factory: returns a fresh base ``(model, tokenizer)``; by default
            :func:`~memlora_engine.backbone.load_backbone` of ``model``.
    """

    def score(operation: str, adapter_dir: str) -> dict[str, Any]:
        from memlora_engine.backbone import HFBackbone, load_backbone

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


def pipeline_eval(
    locomo: str | Path,
    spec: str,
    adapters_dir: str | Path,
    eval_dir: str | Path,
    *,
    split: str = "test",
    model: str = "gemma-3-270m",
    limit_sessions: int | None = 1,
    max_new_tokens: Mapping[str, int] | None = None,
    num_threads: int | None = None,
) -> dict[str, Any]:
    """One configuration of the Table-4 comparison through the evaluation harness.

    The run cache goes to ``<eval_dir>/runs/<config>`` (it quotes LoCoMo: keep ``eval_dir``
    out of the repository); combine configurations with ``memlora eval report <eval_dir>/runs``.
    ``max_new_tokens`` caps the stages (the base model runs to the cap on every call).
    """
    from memlora_engine.backbone import load_backbone

    config = parse_config(spec)
    conversations = select_split(load_locomo(locomo), split)
    adapters = {op.value: str(Path(adapters_dir) / op.value) for op in config.adapters}

    def factory(cfg: Any) -> Any:
        return load_backbone(model, adapters=adapters, num_threads=num_threads)  # {} = the base model

    overrides = {"max_new_tokens": dict(max_new_tokens)} if max_new_tokens else {}
    root = Path(eval_dir)
    return evaluate_locomo(
        conversations, [config], factory, root / config.name, cache_dir=root / "runs", model_name=model,
        options=RunOptions(limit_sessions=limit_sessions, memory_overrides=overrides, progress=False),
        semantic=SemanticScorer(), plots=False,
        meta={"split": split, "adapters_dir": str(adapters_dir), "limit_sessions": limit_sessions},
    )

"""Scoring answer records and aggregating them per category.

Per question (categories 1-4): ``locomo_f1`` (the official scorer), ``mem0_f1``,
``bleu1``, ``exact_match``, the L components ``rouge1_f``, ``meteor_exact_stem``,
``bertscore_minilm_f1`` and ``sbert_cosine``, ``L`` (the mean of the components that
could be computed) and ``J`` (1/0 from the judge, when one is configured).
Category 5 (adversarial) has no gold answer: it gets the official refusal score
``adversarial`` only, and is reported apart from the overall numbers, as in Mem0's
evaluation. ``overall`` is the micro-average over categories 1-4.

A metric that cannot be computed is never reported as 0: it is absent from the
records, listed under ``unavailable`` with the reason, and ``L`` says which
components it averages.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from memlora_engine.data.locomo import CATEGORY_NAMES
from memlora_engine.evaluation import metrics as m
from memlora_engine.evaluation.judge import Judge, parse_label

__all__ = ["L_COMPONENTS", "aggregate", "score_answers"]

logger = logging.getLogger(__name__)

L_COMPONENTS = ("rouge1_f", "meteor_exact_stem", "bertscore_minilm_f1", "sbert_cosine")
_LEXICAL = {
    "locomo_f1": lambda p, g, c: m.locomo_score(p, g, c),
    "mem0_f1": lambda p, g, c: m.mem0_f1(p, g),
    "bleu1": lambda p, g, c: m.bleu1(p, g),
    "exact_match": lambda p, g, c: m.exact_match(p, g),
    "rouge1_f": lambda p, g, c: m.rouge1_f(p, g),
    "meteor_exact_stem": lambda p, g, c: m.meteor(p, g),
}
SUMMARY_METRICS = ("locomo_f1", "mem0_f1", "bleu1", "exact_match", *L_COMPONENTS, "L", "J", "evidence_recall",
                   "evidence_hit", "false_refusal")


def _judge_key(record: dict[str, Any], judge_name: str) -> str:
    return json.dumps([record["conversation"], record["question_index"], record["prediction"], judge_name])


def score_answers(
    answers: Sequence[dict[str, Any]],
    *,
    semantic: Any = None,
    judge: Judge | None = None,
    judge_cache: str | Path | None = None,
) -> dict[str, Any]:
    """Score answer records (from :func:`~memlora_engine.evaluation.runner.run_config`).

    Args:
        semantic: a :class:`~memlora_engine.evaluation.semantic.SemanticScorer`, or
            None to leave the embedding metrics unavailable.
        judge: computes J; None leaves J "not measured".
        judge_cache: JSONL file of earlier verdicts (read and appended), so re-scoring
            never asks the judge twice.

    Returns:
        ``{"records": [...with "metrics"], "unavailable": {metric: reason}, "L_components": [...]}``.
    """
    unavailable: dict[str, str] = {}
    records = [dict(a) for a in answers]
    scored = [r for r in records if r["category"] in (1, 2, 3, 4) and r.get("reference") is not None]
    for record in records:
        if record["category"] == 5:
            record["metrics"] = {"adversarial": m.adversarial_score(record["prediction"])}
        else:
            record["metrics"] = {}
    for record in scored:
        pred, gold, cat = record["prediction"], record["reference"], record["category"]
        record["metrics"] = {name: float(fn(pred, gold, cat)) for name, fn in _LEXICAL.items()}
        record["metrics"]["false_refusal"] = m.adversarial_score(pred)  # declined an answerable question
    if semantic is None:
        for name in ("bertscore_minilm_f1", "sbert_cosine"):
            unavailable[name] = "no embedding model configured (--no-semantic)"
    elif scored:
        try:
            values = semantic.score([r["prediction"] for r in scored], [r["reference"] for r in scored])
        except Exception as exc:  # any failure to load/run the encoder: report, never zero
            logger.warning("embedding metrics unavailable: %s", exc)
            for name in ("bertscore_minilm_f1", "sbert_cosine"):
                unavailable[name] = f"embedding model failed: {type(exc).__name__}: {exc}"
        else:
            for record, extra in zip(scored, values):
                record["metrics"].update(extra)
    components = [c for c in L_COMPONENTS if c not in unavailable]
    for record in scored:
        parts = [record["metrics"][c] for c in components if c in record["metrics"]]
        if parts:
            record["metrics"]["L"] = sum(parts) / len(parts)
    if judge is None:
        unavailable["J"] = "not measured: no judge configured"
    else:
        _judge(scored, judge, judge_cache, unavailable)
    for record in records:
        if record.get("evidence_recall") is not None:
            record["metrics"]["evidence_recall"] = record["evidence_recall"]
        if record.get("evidence") and "retrieved_dia_ids" in record:  # recall@k: one evidence turn retrieved
            record["metrics"]["evidence_hit"] = float(bool(set(record["evidence"]) & set(record["retrieved_dia_ids"])))
    return {"records": records, "unavailable": unavailable, "L_components": components}


def _judge(scored: list[dict[str, Any]], judge: Judge, cache_path: str | Path | None, unavailable: dict[str, str]) -> None:
    cache: dict[str, dict[str, Any]] = {}
    path = Path(cache_path) if cache_path is not None else None
    if path is not None and path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                entry = json.loads(line)
                cache[entry["key"]] = entry
    failures = 0
    out = path.open("a", encoding="utf-8") if path is not None else None
    try:
        for record in scored:
            key = _judge_key(record, judge.name)
            entry = cache.get(key)
            if entry is None:
                try:
                    reply = judge.judge(record["question"], str(record["answer"]), record["prediction"])
                except Exception as exc:  # a judge outage leaves J unmeasured for that question
                    failures += 1
                    logger.warning("judge failed on %s #%s: %s", record["conversation"], record["question_index"], exc)
                    continue
                entry = {"key": key, "judge": judge.name, "reply": reply, "label": parse_label(reply)}
                cache[key] = entry
                if out is not None:
                    out.write(json.dumps(entry, ensure_ascii=False) + "\n")
                    out.flush()
            record["judge_reply"] = entry["reply"]
            if entry["label"] is None:
                failures += 1
            else:
                record["metrics"]["J"] = 1.0 if entry["label"] else 0.0
    finally:
        if out is not None:
            out.close()
    if failures:
        unavailable["J_partial"] = f"{failures} question(s) without a usable verdict from {judge.name}; J averages the rest"


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _summary(records: Sequence[dict[str, Any]], names: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"count": len(records)}
    for name in names:
        values = [r["metrics"][name] for r in records if name in r.get("metrics", {})]
        if values:
            out[name] = _mean(values)
            if len(values) != len(records):
                out[f"{name}_count"] = len(values)
    return out


def aggregate(scored: dict[str, Any]) -> dict[str, Any]:
    """Per-category and overall means (overall: categories 1-4; category 5 apart)."""
    records = scored["records"]
    per_category: dict[str, Any] = {}
    for category in sorted({r["category"] for r in records}):
        subset = [r for r in records if r["category"] == category]
        names = ("adversarial", "evidence_recall", "evidence_hit") if category == 5 else SUMMARY_METRICS
        per_category[str(category)] = {"name": CATEGORY_NAMES.get(category, str(category)), **_summary(subset, names)}
    main = [r for r in records if r["category"] in (1, 2, 3, 4)]
    adversarial = [r for r in records if r["category"] == 5]
    return {
        "overall": _summary(main, SUMMARY_METRICS),
        "adversarial": _summary(adversarial, ("adversarial", "evidence_recall", "evidence_hit")),
        "per_category": per_category,
        "L_components": scored["L_components"],
        "unavailable": scored["unavailable"],
    }

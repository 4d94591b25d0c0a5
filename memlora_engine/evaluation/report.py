"""Results JSON, markdown report and plots for one or more evaluated configurations."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memlora_engine.data.locomo import CATEGORY_NAMES
from memlora_engine.evaluation.efficiency import efficiency_summary
from memlora_engine.evaluation.memory_events import memory_events
from memlora_engine.evaluation.recording import read_jsonl
from memlora_engine.evaluation.runner import merge_stats
from memlora_engine.evaluation.scoring import aggregate, score_answers

__all__ = ["METRIC_DEFINITIONS", "RunData", "build_report", "load_runs"]

METRIC_DEFINITIONS = {
    "locomo_f1": "official LoCoMo QA score: stemmed token F1 (cat 1: mean best F1 over ','-parts; cat 3: first ';' alternative)",
    "mem0_f1": "Mem0's set-based token F1",
    "bleu1": "Mem0's BLEU-1 (nltk sentence_bleu, smoothing method 1)",
    "exact_match": "case-insensitive string equality",
    "rouge1_f": "ROUGE-1 F (rouge-score, Porter stemming)",
    "meteor_exact_stem": "METEOR (nltk) with exact+stem matching only: WordNet synonyms unavailable offline",
    "bertscore_minilm_f1": "BERTScore-F1 on all-MiniLM-L6-v2 token embeddings (NOT roberta-large; not comparable with published BERTScore)",
    "sbert_cosine": "cosine of all-MiniLM-L6-v2 sentence embeddings",
    "L": "mean of the available L components (listed per report)",
    "J": "LLM-judge accuracy with Mem0's CORRECT/WRONG prompt",
    "evidence_recall": "share of a question's evidence turns that produced a retrieved memory (full-context: that are in the prompt)",
    "evidence_hit": "evidence recall@k: share of questions where at least one retrieved memory (k = answer_top_k) "
                    "came from an evidence turn (full-context: an evidence turn is in the prompt)",
    "fact_recall": "extraction: share of LoCoMo's observation facts of the ingested sessions matched by an "
                   "extracted fact (embedding cosine >= the threshold given; evaluation/extraction.py)",
    "fact_precision": "extraction: share of extracted facts matching some observation (a lower bound: "
                      "observations are not exhaustive)",
    "adversarial": "category 5: official refusal score ('no information available' / 'not mentioned' in the answer)",
    "false_refusal": "categories 1-4: share of answerable questions declined (the answer holds what category 5's "
                     "refusal score looks for, e.g. NOT_IN_MEMORY = 'No information available.')",
}


@dataclass
class RunData:
    """One configuration's answers and cumulative stats.

    ``extraction`` maps a conversation id to its
    :func:`~memlora_engine.evaluation.extraction.extraction_coverage` (absent when
    the data was not at hand, e.g. a full-context run), ``memory_events`` to its
    :func:`~memlora_engine.evaluation.memory_events.memory_events` (absent for a
    full-context run, which has no memory).
    """

    name: str
    config: dict[str, Any]
    answers: list[dict[str, Any]]
    stats: dict[str, dict[str, float]]
    fingerprint: dict[str, Any] = field(default_factory=dict)
    model_bytes: int | None = None
    model_calls_this_process: int | None = None
    extraction: dict[str, Any] | None = None
    memory_events: dict[str, Any] | None = None


def load_runs(directory: str | Path) -> list[RunData]:
    """Every configuration cached under ``<directory>/runs/`` (or ``directory`` itself, a cache dir)."""
    root = Path(directory) / "runs" if (Path(directory) / "runs").is_dir() else Path(directory)
    runs = []
    for run_dir in sorted(p for p in root.glob("*") if p.is_dir() and (p / "run.json").exists()):
        fingerprint = json.loads((run_dir / "run.json").read_text(encoding="utf-8")) if (run_dir / "run.json").exists() else {}
        answers: list[dict[str, Any]] = []
        stats: dict[str, dict[str, float]] = {}
        extraction: dict[str, Any] = {}
        events: dict[str, Any] = {}
        for conv_dir in sorted(p for p in run_dir.iterdir() if p.is_dir()):
            answers.extend(sorted(read_jsonl(conv_dir / "answers.jsonl"), key=lambda r: r["question_index"]))
            ckpt = conv_dir / "checkpoint.json"
            if ckpt.exists():
                stats = merge_stats(stats, json.loads(ckpt.read_text(encoding="utf-8")).get("stats", {}))
            if (conv_dir / "extraction.json").exists():
                extraction[conv_dir.name] = json.loads((conv_dir / "extraction.json").read_text(encoding="utf-8"))
            if (found := memory_events(conv_dir)) is not None:
                events[conv_dir.name] = found
        saved = run_dir / "model_size.json"
        model_bytes = json.loads(saved.read_text())["bytes"] if saved.exists() else None
        runs.append(RunData(run_dir.name, fingerprint.get("config", {"name": run_dir.name}), answers, stats, fingerprint,
                            model_bytes, extraction=extraction or None, memory_events=events or None))
    return runs


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _plots(results: dict[str, Any], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results["configs"])
    written = []
    categories = sorted({c for r in results["configs"].values() for c in r["scores"]["per_category"]}, key=int)
    if names and categories:
        fig, ax = plt.subplots(figsize=(8, 4))
        width = 0.8 / len(names)
        for i, name in enumerate(names):
            per = results["configs"][name]["scores"]["per_category"]
            values = [
                (per.get(c, {}).get("adversarial") if c == "5" else per.get(c, {}).get("locomo_f1")) or 0.0
                for c in categories
            ]
            ax.bar([j + i * width for j in range(len(categories))], values, width, label=name)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(categories))])
        ax.set_xticklabels([f"{c} {CATEGORY_NAMES.get(int(c), '')}" for c in categories])
        ax.set_ylabel("LoCoMo F1 (cat 5: refusal score)")
        ax.set_ylim(0, 1)
        ax.set_title("Per-category score")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "per_category.png", dpi=120)
        plt.close(fig)
        written.append("per_category.png")
    metric_names = [m for m in ("locomo_f1", "mem0_f1", "bleu1", "L", "J", "evidence_recall")
                    if any(m in r["scores"]["overall"] for r in results["configs"].values())]
    if names and metric_names:
        fig, ax = plt.subplots(figsize=(8, 4))
        width = 0.8 / len(names)
        for i, name in enumerate(names):
            overall = results["configs"][name]["scores"]["overall"]
            values = [overall.get(m) or 0.0 for m in metric_names]
            ax.bar([j + i * width for j in range(len(metric_names))], values, width, label=name)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(metric_names))])
        ax.set_xticklabels(metric_names)
        ax.set_ylim(0, 1)
        ax.set_title("Configurations, overall (categories 1-4)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "configs.png", dpi=120)
        plt.close(fig)
        written.append("configs.png")
    return written


def _retrieval_section(results: dict[str, Any]) -> list[str]:
    """Evidence recall@k per category (categories 1-4 and 5)."""
    cats = sorted({c for r in results["configs"].values() for c in r["scores"]["per_category"]}, key=int)
    lines = ["", "## Retrieval: evidence recall@k per category (k = answer_top_k)", ""]
    header = ["config", "overall 1-4", *[f"{c} {CATEGORY_NAMES.get(int(c), '')}" for c in cats]]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, r in results["configs"].items():
        per = r["scores"]["per_category"]
        cells = [_fmt(per.get(c, {}).get("evidence_hit")) for c in cats]
        lines.append("| " + " | ".join([name, _fmt(r["scores"]["overall"].get("evidence_hit")), *cells]) + " |")
    return lines


def _extraction_section(results: dict[str, Any]) -> list[str]:
    """Fact recall / precision of the extraction stage per session (when the run's data was at hand)."""
    runs = {name: r["extraction"] for name, r in results["configs"].items() if r.get("extraction")}
    if not runs:
        return []
    lines = ["", "## Extraction: fact recall / precision against LoCoMo's observations, per session", ""]
    for name, per_conv in runs.items():
        for conv, coverage in per_conv.items():
            o = coverage["overall"]
            lines += [f"**{name}**, {conv} (cosine >= {coverage['threshold']}): recall {_fmt(o['recall'])} "
                      f"({o['matched_observations']}/{o['observations']} observations), precision "
                      f"{_fmt(o['precision'])} ({o['matched_facts']}/{o['facts']} facts)", "",
                      "| session | observations | facts | recall | precision |", "|---|---|---|---|---|"]
            lines += [f"| {s} | {v['observations']} | {v['facts']} | {_fmt(v['recall'])} | {_fmt(v['precision'])} |"
                      for s, v in coverage["sessions"].items()]
            lines.append("")
    return lines


def _events_section(results: dict[str, Any]) -> list[str]:
    """The memory count and the update step's events per conversation (when the run has a memory)."""
    runs = {name: r["memory_events"] for name, r in results["configs"].items() if r.get("memory_events")}
    if not runs:
        return []
    lines = ["", "## Memory: the update step's events", "",
             "Applied: the events `add` carried out. Written: the ops the update operation wrote (NONE changes "
             "nothing, so it is never applied; \"other\" are unknown events, rejected).", "",
             "| config | conversation | memories (+ superseded) | applied ADD / UPDATE / DELETE | written ADD / UPDATE / "
             "DELETE / NONE / other | share of UPDATE / DELETE / NONE written | unparsed outputs |",
             "|---|---|---|---|---|---|---|"]
    for name, per_conv in runs.items():
        for conv, e in per_conv.items():
            applied, written, share = e["applied"], e["decided"], e["decided_share"]
            lines.append("| " + " | ".join([
                name, conv, _fmt(e["memories"]) + (f" (+ {e['superseded']})" if e.get("superseded") else ""),
                " / ".join(str(applied[k]) for k in ("ADD", "UPDATE", "DELETE")),
                " / ".join(str(written[k]) for k in ("ADD", "UPDATE", "DELETE", "NONE", "other")),
                " / ".join(_fmt(share[k]) for k in ("UPDATE", "DELETE", "NONE")), str(e["unparsed"]),
            ]) + " |")
    return lines


def _markdown(results: dict[str, Any], plots: Sequence[str]) -> str:
    lines = ["# LoCoMo evaluation", ""]
    meta = results["meta"]
    for key in ("command", "data", "split", "conversations", "model", "dtype", "threads", "limit_sessions",
                "limit_questions", "sources"):
        if meta.get(key) is not None:
            value = meta[key]
            lines.append(f"- **{key}**: `{value}`" if key == "command" else f"- **{key}**: {value}")
    for name, counts in (meta.get("images") or {}).items():
        lines.append(f"- **photos ({name})**: {counts.get('images_sent', 0)} sent as images, "
                     f"{counts.get('caption_fallbacks', 0)} of {counts.get('image_turns', 0)} photo turns fell back "
                     "to the caption (not in the image cache)" if counts else
                     f"- **photos ({name})**: captions only (text-only generator)")
    lines += ["", "## Overall (categories 1-4; category 5 apart)", ""]
    header = ["config", "n", "LoCoMo F1", "Mem0 F1", "BLEU-1", "EM", "L", "J", "evidence recall", "evidence recall@k",
              "cat 5 n", "cat 5 refusal", "false refusal 1-4"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, r in results["configs"].items():
        o, a = r["scores"]["overall"], r["scores"]["adversarial"]
        j = _fmt(o.get("J")) if "J" in o else "not measured"
        lines.append("| " + " | ".join([
            name, str(o["count"]), _fmt(o.get("locomo_f1")), _fmt(o.get("mem0_f1")), _fmt(o.get("bleu1")),
            _fmt(o.get("exact_match")), _fmt(o.get("L")), j, _fmt(o.get("evidence_recall")),
            _fmt(o.get("evidence_hit")), str(a["count"]), _fmt(a.get("adversarial")), _fmt(o.get("false_refusal")),
        ]) + " |")
    first = next(iter(results["configs"].values()), None)
    if first is not None:
        comps = first["scores"]["L_components"]
        lines += ["", f"**L** = mean of {', '.join(comps) or 'nothing (no component available)'} "
                  "(the paper's L: ROUGE-1, METEOR, BERTScore-F1, SentenceBERT; see definitions below)."]
        for metric, reason in first["scores"]["unavailable"].items():
            lines.append(f"- `{metric}` unavailable: {reason}")
    lines += ["", "## Per category (LoCoMo F1; category 5: refusal score)", ""]
    cats = sorted({c for r in results["configs"].values() for c in r["scores"]["per_category"]}, key=int)
    header = ["config", *[f"{c} {CATEGORY_NAMES.get(int(c), '')} (n)" for c in cats]]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, r in results["configs"].items():
        per = r["scores"]["per_category"]
        cells = []
        for c in cats:
            entry = per.get(c)
            value = None if entry is None else (entry.get("adversarial") if c == "5" else entry.get("locomo_f1"))
            cells.append(f"{_fmt(value)} ({entry['count'] if entry else 0})")
        lines.append("| " + " | ".join([name, *cells]) + " |")
    lines += _retrieval_section(results)
    lines += _extraction_section(results)
    lines += _events_section(results)
    lines += ["", "## Efficiency (from Memory.stats)", ""]
    header = ["config", "model MB", "output tok/s", "tokens/answer", "s/op (mean of stages)",
              "extraction in/out tok", "update in/out tok", "generation in/out tok", "parse failures", "model calls"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, r in results["configs"].items():
        e = r["efficiency"]
        per = e["per_operation"]

        def io(op: str, per: dict[str, Any] = per) -> str:
            if op not in per:
                return "–"
            return f"{per[op]['input_tokens_mean']:.0f} / {per[op]['output_tokens_mean']:.1f}"

        failures = sum(v["parse_failures"] for v in per.values())
        calls = sum(v["calls"] for v in per.values())
        lines.append("| " + " | ".join([
            name, _fmt(e["model_size_mb"], 1), _fmt(e["output_tok_s"], 1), _fmt(e["tokens_per_answer"], 1),
            _fmt(e["seconds_per_op_mean"], 2), io("extraction"), io("update"), io("generation"), str(failures), str(calls),
        ]) + " |")
    lines += ["", "Output tok/s counts whole calls (prefill included). s/op averages the mean seconds per call of "
              "the stages that ran.", ""]
    for plot in plots:
        lines += [f"![{plot}]({plot})", ""]
    lines += ["## Metric definitions", ""]
    lines += [f"- `{k}`: {v}" for k, v in METRIC_DEFINITIONS.items()]
    return "\n".join(lines) + "\n"


def build_report(
    runs: Sequence[RunData],
    out_dir: str | Path,
    *,
    meta: dict[str, Any] | None = None,
    semantic: Any = None,
    judge: Any = None,
    plots: bool = True,
    cache_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Score every run, write ``results.json``, ``report.md`` and the plots to ``out_dir``.

    Per-question records (``<cache_dir>/<config>/scored.jsonl``) and judge verdicts
    (``<cache_dir>/judgments.jsonl``) go to the cache (default ``<out_dir>/runs``): they
    quote the data set, the files in ``out_dir`` hold aggregates only.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(cache_dir) if cache_dir is not None else out / "runs"
    cache.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"meta": dict(meta or {}), "metric_definitions": METRIC_DEFINITIONS, "configs": {}}
    for run in runs:
        scored = score_answers(run.answers, semantic=semantic, judge=judge, judge_cache=cache / "judgments.jsonl")
        scored_path = cache / run.name / "scored.jsonl"
        scored_path.parent.mkdir(parents=True, exist_ok=True)
        scored_path.write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in scored["records"]), encoding="utf-8"
        )
        results["configs"][run.name] = {
            "config": run.config,
            "scores": aggregate(scored),
            "efficiency": efficiency_summary(run.stats, run.model_bytes),
            "stats": run.stats,
            "model_calls_this_process": run.model_calls_this_process,
            **({"extraction": run.extraction} if run.extraction else {}),
            **({"memory_events": run.memory_events} if run.memory_events else {}),
        }
    written = _plots(results, out) if plots and results["configs"] else []
    results["plots"] = written
    (out / "results.json").write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")
    (out / "report.md").write_text(_markdown(results, written), encoding="utf-8")
    return results

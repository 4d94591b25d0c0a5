"""The training report: search tables, loss curves, held-out losses and the limited pipeline evaluation.

``python -m memlora_engine.training.report`` runs the pieces that need a model (each
resumable/cached) and writes ``results/training/``:

* ``search.md`` / ``search.json`` -- the per-stage search tables (from the run directories);
* ``curves/<stage>-<candidate>.png`` -- validation (and train) loss curves;
* ``heldout_losses.json`` -- teacher-forcing loss per stage on distilled examples of the
  *test* conversation, base model vs adapter (``--heldout N`` examples per stage);
* the Table-4 pipeline runs are made with the evaluation harness (see ``docs/training.md``).

Nothing written here quotes LoCoMo: only numbers, file names and hyperparameters.
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["collect_search", "heldout_losses", "main", "pipeline_eval"]


def collect_search(runs_dir: str | Path, out_dir: str | Path) -> list[dict[str, Any]]:
    """Gather every stage's ``search.json`` under ``runs_dir``; copy the loss curves to ``out_dir/curves``."""
    runs, out = Path(runs_dir), Path(out_dir)
    (out / "curves").mkdir(parents=True, exist_ok=True)
    rows = []
    for search in sorted(runs.glob("*/search.json")):
        summary = json.loads(search.read_text(encoding="utf-8"))
        for row in summary["candidates"]:
            run_dir = Path(row["adapter_dir"]).parent
            result = json.loads((run_dir / "result.json").read_text(encoding="utf-8"))
            png = run_dir / "loss.png"
            if png.exists():
                shutil.copy2(png, out / "curves" / f"{summary['operation']}-{row['candidate']}.png")
            rows.append({
                "operation": summary["operation"], "candidate": row["candidate"],
                "learning_rate": row["learning_rate"], "batch_size": row["batch_size"],
                "steps": row["steps"], "best_step": row["best_step"], "stopped": row.get("stopped"),
                "base_val_loss": row["base_val_loss"], "best_val_loss": row["best_val_loss"],
                "train_seconds": row["seconds"], "train_examples": result["train_examples"],
                "skipped_too_long": result["skipped_too_long"], "selected": row["candidate"] == summary["best"],
                "outer_metric": (row.get("outer") or {}).get("metric"),
            })
    for operation in sorted({r["operation"] for r in rows}):
        _plot_validation(runs / operation, [r["candidate"] for r in rows if r["operation"] == operation],
                         out / "curves" / f"{operation}-validation.png", operation)
    (out / "search.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
    lines = ["| stage | lr | batch | steps (best) | stopped | val loss: base -> best | outer: val pipeline LoCoMo F1 "
             "| train s | selected |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['operation']} | {r['learning_rate']:g} | {r['batch_size']} | {r['steps']} ({r['best_step']}) "
                     f"| {r['stopped']} | {r['base_val_loss']:.3f} -> {r['best_val_loss']:.3f} | "
                     f"{'–' if r['outer_metric'] is None else format(r['outer_metric'], '.3f')} | "
                     f"{r['train_seconds']:.0f} | {'**yes**' if r['selected'] else ''} |")
    (out / "search.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return rows


def _plot_validation(stage_dir: Path, candidates: Sequence[str], png: Path, operation: str) -> None:
    """One stage's validation-loss curves, one line per candidate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for candidate in candidates:
        log = stage_dir / candidate / "log.jsonl"
        points = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
        val = [(p["step"], p["val_loss"]) for p in points if "val_loss" in p]
        if val:
            ax.plot(*zip(*val), marker="o", label=candidate)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("validation loss per target token")
    ax.set_title(f"{operation}: validation loss (step 0 = base model)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def heldout_losses(
    model: str,
    adapters: Mapping[str, str | Path],
    data_dir: str | Path,
    conversations: Sequence[str],
    *,
    examples: int = 16,
    max_length: int = 512,
    dtype: str = "auto",
    num_threads: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Teacher-forcing loss per target token, base model vs adapter, on held-out distilled examples.

    ``examples`` per stage are drawn (seeded) from the given conversations' cache, skipping
    those longer than ``max_length`` tokens.
    """
    import random

    from memlora_engine.backbone import load_backbone
    from memlora_engine.training.data import load_examples
    from memlora_engine.training.trainer import encode_example, evaluate_loss

    backbone = load_backbone(model, adapters=dict(adapters), dtype=dtype, num_threads=num_threads, constrained=False)
    tokenizer = backbone.tokenizer
    pad = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)
    results: dict[str, Any] = {}
    for op in adapters:
        records = load_examples(data_dir, op, conversations)
        random.Random(seed).shuffle(records)
        encoded = [e for e in (encode_example(tokenizer, r["messages"], r["target"]) for r in records)
                   if len(e.input_ids) <= max_length][:examples]
        encoded.sort(key=lambda e: len(e.input_ids))
        with backbone.operation(op) as peft_model:  # the adapter on
            adapter_loss = evaluate_loss(peft_model, encoded, pad)
        with backbone.operation(op) as peft_model, peft_model.disable_adapter():
            base_loss = evaluate_loss(peft_model, encoded, pad)
        results[op] = {"examples": len(encoded), "base": base_loss, "adapter": adapter_loss}
    return results


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
    from memlora_engine.evaluation import RunOptions, evaluate_locomo, load_locomo, parse_config, select_split
    from memlora_engine.evaluation.semantic import SemanticScorer

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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m memlora_engine.training.report")
    parser.add_argument("--runs", help="run directories root (<root>/<stage>/search.json)")
    parser.add_argument("--pipeline", metavar="SPEC", help="run one harness configuration (adapters=..., memlora)")
    parser.add_argument("--locomo", help="LoCoMo file (for --pipeline)")
    parser.add_argument("--eval-dir", help="harness output and cache root (for --pipeline; outside the repository)")
    parser.add_argument("--limit-sessions", type=int, default=1)
    parser.add_argument("--max-new-tokens", default="extraction=96,update=160",
                        help="per-stage caps for --pipeline, e.g. extraction=96,update=160")
    parser.add_argument("--out", default="results/training")
    parser.add_argument("--heldout", type=int, default=0, help="held-out examples per stage (0: skip)")
    parser.add_argument("--data-dir", help="distilled data (for --heldout)")
    parser.add_argument("--conversations", default="conv-26", help="held-out conversation ids")
    parser.add_argument("--adapters-dir", help="<dir>/<stage>/ adapters for --heldout")
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--threads", type=int)
    args = parser.parse_args(argv)
    if args.pipeline:
        from memlora_engine.evaluation.configs import parse_token_caps

        caps = parse_token_caps(args.max_new_tokens)
        result = pipeline_eval(args.locomo, args.pipeline, args.adapters_dir, args.eval_dir, model=args.model,
                               limit_sessions=args.limit_sessions, max_new_tokens=caps, num_threads=args.threads)
        for name, r in result["configs"].items():
            print(name, json.dumps(r["scores"]["overall"]))
        return 0
    if args.runs:
        rows = collect_search(args.runs, args.out)
        print(f"{len(rows)} search rows -> {args.out}/search.md")
    if args.heldout:
        from memlora_engine.operations import PIPELINE_OPERATIONS

        stages = [op.value for op in PIPELINE_OPERATIONS]
        adapters = {op: str(Path(args.adapters_dir) / op) for op in stages
                    if (Path(args.adapters_dir) / op / "adapter_model.safetensors").exists()}
        losses = heldout_losses(args.model, adapters, args.data_dir, args.conversations.split(","),
                                examples=args.heldout, num_threads=args.threads)
        (Path(args.out) / "heldout_losses.json").write_text(json.dumps(losses, indent=1), encoding="utf-8")
        print(json.dumps(losses, indent=1))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

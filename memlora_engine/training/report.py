"""The training report: search tables, loss curves, held-out losses and the limited pipeline evaluation.

``python -m memlora_engine.commands.train_report`` runs the pieces that need a model (each
resumable/cached) and writes ``results/training/``:

* ``search.md`` / ``search.json`` -- the per-stage search tables (from the run directories);
* ``curves/<stage>-<candidate>.png`` -- validation (and train) loss curves;
* ``heldout_losses.json`` -- teacher-forcing loss per stage on distilled examples of the
  *test* conversation, base model vs adapter (``--heldout N`` examples per stage);
* the Table-4 pipeline runs are made with the evaluation harness
  (:func:`memlora_engine.evaluation.pipeline_eval`; see ``docs/training.md``).

Nothing written here quotes LoCoMo: only numbers, file names and hyperparameters.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["collect_search", "heldout_losses"]


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

    backbone = load_backbone(model, adapters=dict(adapters), dtype=dtype, num_threads=num_threads, constrained=False,
                             runtime="transformers")  # the trainer's loss, on the trainer's runtime
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

"""Efficiency numbers of a run (the paper's Tables 3, A6 and A7), from ``Memory.stats``.

* ``model_size_mb`` -- weight files on disk (base model plus the configuration's
  adapters);
* ``output_tok_s`` -- generated tokens per second of model time, all operations
  together. The time includes prefill (the engine times whole calls), so this is
  end-to-end generation throughput, a lower bound on pure decode speed;
* ``tokens_per_answer`` -- mean generated tokens of a generation call;
* ``seconds_per_op_mean`` -- the mean seconds per call of extraction, update and
  generation, averaged over the three stages (stages that never ran are left out);
* ``per_operation`` -- calls, mean input and output tokens and mean seconds per call,
  plus parse failures and rejected operations, for each operation.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from memlora_engine.operations import PIPELINE_OPERATIONS

__all__ = ["directory_size_bytes", "efficiency_summary", "model_size_bytes"]

_STAGES = tuple(op.value for op in PIPELINE_OPERATIONS)
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")


def directory_size_bytes(path: str | os.PathLike[str]) -> int:
    """Bytes of weight files under ``path`` (a file counts itself)."""
    root = Path(path)
    if root.is_file():
        return root.stat().st_size
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and p.suffix in _WEIGHT_SUFFIXES)


def model_size_bytes(model: str, adapters: Mapping[str, str | os.PathLike[str]] | None = None) -> int | None:
    """Size on disk of a backbone's weights (as loaded, i.e. the converted cache) plus adapters; None if unknown."""
    try:
        from memlora_engine.backbone import resolve_model

        resolved = resolve_model(model)
    except Exception:  # unknown model or backbone unavailable: the size is unknown, not 0
        return None
    source = Path(resolved.source)
    if not source.exists():
        return None
    total = directory_size_bytes(source / resolved.gguf_file if resolved.gguf_file else source)
    for path in (adapters or {}).values():
        total += directory_size_bytes(path)
    return total


def efficiency_summary(stats: Mapping[str, Mapping[str, float]], model_bytes: int | None = None) -> dict[str, Any]:
    """Summarise cumulative per-operation stats (``Memory.stats.as_dict()`` shape)."""
    per_op: dict[str, Any] = {}
    for op in _STAGES:
        s = stats.get(op) or {}
        calls = int(s.get("calls", 0))
        if not calls:
            continue
        per_op[op] = {
            "calls": calls,
            "input_tokens_mean": s.get("input_tokens", 0) / calls,
            "output_tokens_mean": s.get("output_tokens", 0) / calls,
            "seconds_mean": s.get("seconds", 0.0) / calls,
            "parse_failures": int(s.get("parse_failures", 0)),
            "rejected_ops": int(s.get("rejected_ops", 0)),
        }
    output_tokens = sum(float((stats.get(op) or {}).get("output_tokens", 0)) for op in _STAGES)
    seconds = sum(float((stats.get(op) or {}).get("seconds", 0.0)) for op in _STAGES)
    return {
        "model_size_mb": round(model_bytes / 2**20, 1) if model_bytes else None,
        "output_tok_s": output_tokens / seconds if seconds > 0 else None,
        "tokens_per_answer": per_op["generation"]["output_tokens_mean"] if "generation" in per_op else None,
        "seconds_per_op_mean": (
            sum(v["seconds_mean"] for v in per_op.values()) / len(per_op) if per_op else None
        ),
        "stages_timed": sorted(per_op),
        "per_operation": per_op,
    }

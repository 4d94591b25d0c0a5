"""The VQA benchmark's records (MemLoRA-V): what a benchmark file holds and how it is read.

:func:`~memlora_engine.evaluation.vqa.build_vqa_benchmark` writes the file and
:func:`~memlora_engine.evaluation.vqa.evaluate_vqa` scores a model on it; training reads
the same records as the ``vqa`` expert's distillation signal
(:func:`~memlora_engine.training.vqa.benchmark_examples`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from memlora_engine.errors import InvalidInputError

__all__ = ["ONE_WORD_HINT", "RECORD_FIELDS", "load_vqa_benchmark"]

ONE_WORD_HINT = "Answer with one word."
"""Appended to every question at evaluation, in both configurations (V is exact match)."""

RECORD_FIELDS = ("id", "conversation", "split", "dia_id", "image", "url", "caption", "speaker", "turn_text", "type",
                 "question", "answer", "reason", "teacher")
"""The keys of every benchmark record."""


def load_vqa_benchmark(path: str | os.PathLike[str], split: str | None = None) -> list[dict[str, Any]]:
    """The records of a benchmark file (only ``split``'s when given).

    Raises:
        InvalidInputError: the file is missing, or a line is not a benchmark record.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InvalidInputError(f"cannot read VQA benchmark {path}: {exc}") from exc
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"{path}:{number} is not JSON: {exc}") from exc
        lacking = [key for key in RECORD_FIELDS if not isinstance(record, dict) or key not in record]
        if lacking:
            raise InvalidInputError(f"{path}:{number} is not a VQA benchmark record (lacks {lacking})")
        if split is None or record["split"] == split:
            records.append(record)
    return records

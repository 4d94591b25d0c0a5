"""A Generator that delegates to another and logs every call to JSONL.

The log keeps each prompt, raw output, token counts and time, tagged with where in
the run it happened (conversation, stage, session, question), so a run can be
inspected and re-scored without running the model again.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from memlora_engine.errors import ConfigError
from memlora_engine.generator import (
    Generation,
    GenerationRequest,
    Generator,
    SupportsAdapters,
    SupportsImages,
    SupportsTokenCount,
)
from memlora_engine.operations import PIPELINE_OPERATIONS
from memlora_engine.types import Operation

__all__ = ["RecordingGenerator"]


class RecordingGenerator(SupportsAdapters, SupportsImages, SupportsTokenCount):
    """Wraps ``inner``; reports exactly ``adapters`` as having an adapter.

    Args:
        inner: the real generator.
        adapters: the stages this configuration runs on adapters. The wrapper checks
            that ``inner`` agrees (a stage the configuration wants on an adapter must
            have one; a stage it wants on the base model must not), since the engine
            picks prompts from ``has_adapter`` and the backbone picks weights from its
            own adapters: a mismatch would pair prompts and weights wrongly.
        log: an open text file the JSONL records are appended to (None: keep none).

    ``context`` (a dict) is merged into each record; the runner sets it.
    """

    def __init__(self, inner: Generator, adapters: Iterable[Operation], log: TextIO | None = None) -> None:
        self.inner = inner
        self.adapters = frozenset(Operation(a) for a in adapters)
        self.log = log
        self.context: dict[str, Any] = {}
        self.calls = 0
        self._lock = threading.Lock()
        for op in PIPELINE_OPERATIONS:
            has = isinstance(inner, SupportsAdapters) and bool(inner.has_adapter(op))
            if has != (op in self.adapters):
                want = "needs" if op in self.adapters else "must run on the base model, but the generator has"
                raise ConfigError(f"this configuration {want} an adapter for {op.value!r} (generator: {inner!r})")

    def has_adapter(self, operation: Operation) -> bool:
        return Operation(operation) in self.adapters

    @property
    def supports_images(self) -> bool:
        """The inner generator's: the engine sends images only to a generator that takes them."""
        return isinstance(self.inner, SupportsImages) and bool(self.inner.supports_images)

    def count_tokens(self, text: str) -> int:
        """The inner generator's token count, else a 4-characters-per-token estimate."""
        if isinstance(self.inner, SupportsTokenCount):
            return int(self.inner.count_tokens(text))
        return max(1, len(text) // 4)

    def generate(self, request: GenerationRequest) -> Generation:
        start = time.perf_counter()
        result = self.inner.generate(request)
        seconds = time.perf_counter() - start
        with self._lock:
            self.calls += 1
            if self.log is not None:
                record = {
                    **self.context,
                    "operation": request.operation.value,
                    "messages": request.messages,
                    "constrained": request.json_schema is not None,
                    "max_new_tokens": request.max_new_tokens,
                    **({"images": len(request.images)} if request.images else {}),
                    "output": result.text,
                    "input_tokens": result.input_tokens,
                    "output_tokens": result.output_tokens,
                    "seconds": round(seconds, 4),
                }
                self.log.write(json.dumps(record, ensure_ascii=False) + "\n")
                self.log.flush()
        return result


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSONL file ([] when missing; a torn last line is ignored)."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # an interrupted write; the runner redoes that step
    return records


def rewrite_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")

"""What the update step did to a run's memory: memories kept, events applied, events the model wrote.

Issue 17 asks for the memory count and the share of UPDATE / DELETE / NONE events beside
a LoCoMo score. Both come from a conversation's cache: ``ingest.jsonl`` holds the events
each ``add`` applied (ADD, UPDATE, DELETE), ``calls.jsonl`` the update operation's raw
outputs, where the model's NONEs live (a NONE changes nothing, so it is never applied),
and ``memories.jsonl`` the memory after the last finished session.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from memlora_engine.errors import ModelOutputError
from memlora_engine.evaluation.recording import read_jsonl
from memlora_engine.parsing import parse_update_ops

__all__ = ["EVENTS", "decided_events", "memory_events"]

EVENTS = ("ADD", "UPDATE", "DELETE", "NONE")


def decided_events(calls: Iterable[Mapping[str, Any]]) -> tuple[dict[str, int], int]:
    """The update operation's events as the model wrote them, and its unparseable outputs.

    ``calls`` are recorded model calls (``operation``, ``output``); the other operations are
    skipped. The counts hold every one of :data:`EVENTS` (NONE included) and ``"other"``:
    events the parser read but the engine does not know (rejected ops).
    """
    counts: Counter[str] = Counter()
    unparsed = 0
    for record in calls:
        if record["operation"] != "update":
            continue
        try:
            ops = parse_update_ops(record["output"])
        except ModelOutputError:
            unparsed += 1
            continue
        counts.update(str(op.event or "?").upper() for op in ops)
    return {e: counts[e] for e in EVENTS} | {"other": sum(counts.values()) - sum(counts[e] for e in EVENTS)}, unparsed


def memory_events(conversation_dir: Path) -> dict[str, Any] | None:
    """The memory count and the update events of one cached conversation (None before any ingestion)."""
    ingest = conversation_dir / "ingest.jsonl"
    if not ingest.exists():
        return None
    applied = Counter(e["event"] for record in read_jsonl(ingest) for e in record["results"])
    calls = conversation_dir / "calls.jsonl"
    decided, unparsed = decided_events(read_jsonl(calls) if calls.exists() else [])
    memories = conversation_dir / "memories.jsonl"
    written = sum(decided.values())
    saved = read_jsonl(memories) if memories.exists() else None
    return {
        # The current memories; an export lists the superseded records (MemoryConfig.keep_superseded) too.
        "memories": sum(not m.get("superseded_by") for m in saved) if saved is not None else None,
        "superseded": sum(bool(m.get("superseded_by")) for m in saved) if saved is not None else None,
        "applied": {e: applied[e] for e in EVENTS if e != "NONE"},
        "decided": decided,
        "decided_share": {e: round(decided[e] / written, 4) if written else None for e in EVENTS},
        "unparsed": unparsed,
    }

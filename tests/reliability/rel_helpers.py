"""Helpers of the reliability suite: trial counts, worker processes, invariants."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from memlora_engine import Memory, MemoryConfig
from memlora_engine.testing import DeterministicEmbedder, ScriptedGenerator

WORKER = Path(__file__).with_name("_worker.py")
ROOT = Path(__file__).resolve().parents[2]


def trials(default: int) -> int:
    """``default``, or ``MEMLORA_RELIABILITY_TRIALS`` for a longer run."""
    return int(os.environ.get("MEMLORA_RELIABILITY_TRIALS") or default)


def open_memory(data_dir: Path, generator: ScriptedGenerator | None = None) -> Memory:
    return Memory(MemoryConfig(data_dir=data_dir), generator=generator or ScriptedGenerator({}),
                  embedder=DeterministicEmbedder(384))


def worker(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``_worker.py`` with ``args`` in a fresh interpreter."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "ANONYMIZED_TELEMETRY": "False", **(env or {})}
    return subprocess.Popen([sys.executable, str(WORKER), *args], env=full_env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def files_containing(root: Path, needle: bytes) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def assert_consistent(memory: Memory) -> int:
    """The store and the audit history agree, scope by scope; returns the memories seen.

    Replaying a scope's history (ADD/UPDATE set the text, DELETE removes) must give
    exactly the stored memories and texts, and no journalled batch may be left.
    """
    assert memory.history_store.pending() == []
    scopes = {s.key: s for s in memory.store.scopes()}
    rows = memory.history_store._db.query("SELECT DISTINCT user_id, agent_id, run_id FROM history")
    from memlora_engine.types import Scope

    for user_id, agent_id, run_id in rows:
        scope = Scope(user_id, agent_id, run_id)
        scopes.setdefault(scope.key, scope)
    total = 0
    for scope in scopes.values():
        expected: dict[str, str] = {}
        for entry in memory.history_store.entries(scope):
            if entry.event == "DELETE":
                assert entry.memory_id in expected, f"DELETE of a memory never added: {entry}"
                expected.pop(entry.memory_id)
            else:
                expected[entry.memory_id] = entry.new_text
        stored = {r.id: r.text for r in memory.store.list(scope)}
        assert stored == expected, f"store and history disagree for {scope}"
        total += len(stored)
    return total

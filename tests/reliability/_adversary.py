"""Processes of the adversarial suite (imported by spawned children; never collected by pytest).

Every function runs in its own spawned process on one data directory, in lock step
with the parent through ``barrier``: round by round, the parent audits between rounds.
"""

from __future__ import annotations

import random
import traceback
from pathlib import Path
from typing import Any

from rel_helpers import open_memory

BARRIER_S = 300


def secret(round_: int) -> str:
    return f"FORGET-ME-{round_:04d}-Zq"


def writer(data_dir: str, name: str, rounds: int, barrier: Any, results: Any) -> None:
    """Adds (one by one and in bulk), updates and deletes in its own scope, every round."""
    rng = random.Random(name)
    added: dict[str, str] = {}
    deleted: list[str] = []
    try:
        memory = open_memory(Path(data_dir))
        for r in range(rounds):
            for i in range(rng.randint(2, 6)):
                (event,) = memory.add(f"{name} round {r} note {i}", user_id=name, infer=False)
                added[event.id] = event.text
            bulk = memory.add_many([f"{name} round {r} bulk {i}" for i in range(rng.randint(5, 40))], user_id=name)
            added.update({e.id: e.text for e in bulk.events})
            live = [i for i in added if i not in deleted]
            for memory_id in rng.sample(live, min(2, len(live))):
                memory.delete(memory_id, user_id=name)
                deleted.append(memory_id)
            memory.search(f"{name} round {r}", user_id=name)
            barrier.wait(timeout=BARRIER_S)  # round done
            barrier.wait(timeout=BARRIER_S)  # parent audited
        results.put((name, {"added": added, "deleted": deleted, "error": None}))
    except BaseException:  # reported to the parent, which fails the test with it
        results.put((name, {"added": added, "deleted": deleted, "error": traceback.format_exc()}))
        barrier.abort()


def forgetter(data_dir: str, rounds: int, barrier: Any, results: Any) -> None:
    """Stores a scope full of one round's secret, reads it, forgets it; every round."""
    try:
        memory = open_memory(Path(data_dir))
        for r in range(rounds):
            memory.add_many([f"{secret(r)} item {i} " + "x" * (i % 300) for i in range(120)], user_id="alice",
                            metadata={"tag": secret(r)})
            memory.search(secret(r), user_id="alice", limit=5)
            memory.get_all(user_id="alice")
            assert memory.delete_all(user_id="alice") == 120
            barrier.wait(timeout=BARRIER_S)
            barrier.wait(timeout=BARRIER_S)
        results.put(("alice", {"error": None}))
    except BaseException:
        results.put(("alice", {"error": traceback.format_exc()}))
        barrier.abort()

"""The adversarial workload of issue #19, with counters (never collected by pytest).

Used by ``test_rel_adversarial.py`` / ``test_rel_forget_and_search.py`` (which assert
every counter is 0) and by ``figures.py`` (which records them over many runs):

* :func:`run_adversary` -- four writer processes and one forgetting process on one
  data directory, spawned, in lock step with this process through a barrier. After
  every round this process checks that the store is not corrupt, that every scope's
  ``get_all`` equals an exhaustive search, and that no file holds a byte of any
  forgotten round; at the end, nothing lost, nothing doubled, store == history.
* :func:`forget_then_touch` -- one byte-scan seed: forget a scope full of a secret,
  then random reads and writes of the other scopes, scanning every file after each.

:func:`writer` and :func:`forgetter` run in the spawned children.
"""

from __future__ import annotations

import multiprocessing
import random
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rel_helpers import assert_consistent, files_containing, open_memory

BARRIER_S = 900
WRITERS = ("w0", "w1", "w2", "w3")
SECRET_PREFIX = b"FORGET-ME-"
# The counters of run_adversary that must stay 0.
FAILURES = ("corrupt", "worker_errors", "lost", "resurrected", "duplicated", "invisible", "byte_hits",
            "forgotten_listed", "store_history_mismatch")


def run_totals(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The totals over finished :func:`run_adversary` runs: runs, rounds, every failure counter, memories, searches."""
    return {
        "runs": len(runs), "rounds": sum(r["rounds_done"] for r in runs),
        **{k: sum(r[k] for r in runs) for k in FAILURES},
        "memories_at_end": sum(r["memories"] for r in runs), "searches": sum(r["searches"] for r in runs),
    }


def secret(round_: int) -> str:
    return f"FORGET-ME-{round_:04d}-Zq"


def writer(data_dir: str, name: str, rounds: int, barrier: Any, results: Any, seed: int = 0) -> None:
    """Adds (one by one and in bulk) and deletes in its own scope, and searches it, every round."""
    rng = random.Random(f"{seed}:{name}")
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
    except BaseException:  # reported to the parent, which counts it
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


def integrity(data_dir: Path) -> str:
    """``PRAGMA integrity_check`` of Chroma's database, from a child process (never this one's SQLite)."""
    code = "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('PRAGMA integrity_check').fetchone()[0])"
    done = subprocess.run([sys.executable, "-c", code, str(data_dir / "chroma" / "chroma.sqlite3")],
                          capture_output=True, text=True, timeout=600, check=False)
    return done.stdout.strip() or done.stderr.strip()


OWN_TEXT_LIMIT = 10
"""The first ``limit`` of the search for a memory's own text (see :func:`audit`)."""


def audit(memory: Any, scope: str, checked: set[str] | frozenset[str] = frozenset()) -> tuple[dict[str, str], list[str], int]:
    """The scope's memories, the ids no search returns, and the searches made.

    Every memory ``get_all`` lists must be in a search with ``limit`` = the scope
    size, and every one not in ``checked`` must also be found by a search for its
    own text: first with ``limit`` :data:`OWN_TEXT_LIMIT` (the index must reach it
    near its own vector), and only where that misses with ``limit`` = the scope size
    (issue #19's definition: invisible when that search misses it too). A search
    with ``limit`` = the scope size returns every memory, so it costs a pass over
    the scope; asking it once per new memory made round ``r`` cost O(r²) and a
    200-round run ~75 min, where the small search finds the memory in a few ms.
    """
    stored = {r.id: r.text for r in memory.get_all(user_id=scope)}
    if not stored:
        return stored, [], 0
    found = {r.id for r in memory.search(f"{scope} round", user_id=scope, limit=len(stored))}
    invisible = set(stored) - found
    searches = 1
    for memory_id in sorted(set(stored) - checked):
        for limit in dict.fromkeys((min(OWN_TEXT_LIMIT, len(stored)), len(stored))):  # once when they are equal
            searches += 1
            if memory_id in {h.id for h in memory.search(stored[memory_id], user_id=scope, limit=limit)}:
                break
        else:
            invisible.add(memory_id)
    return stored, sorted(invisible), searches


def scan(data_dir: Path) -> list[str]:
    """Files of ``data_dir`` holding a byte of any forgotten round (every round's secret shares a prefix)."""
    return files_containing(data_dir, SECRET_PREFIX)


def run_adversary(data_dir: Path, rounds: int, progress: Callable[[dict[str, Any]], None] | None = None,
                  seed: int = 0) -> dict[str, Any]:
    """Four writers + one forgetter for ``rounds`` rounds on ``data_dir``; the counters of what went wrong.

    ``progress`` is called with the counters after every audited round; ``seed``
    chooses the writers' batch sizes and deletions.

    Each memory is searched by its own text once, in the audit after the round that
    wrote it; every memory is in the exhaustive search of every round's audit.
    """
    start = time.monotonic()
    counters: dict[str, Any] = {
        "rounds": rounds, "seed": seed, "rounds_done": 0, "corrupt": 0, "integrity": [], "worker_errors": 0, "errors": {},
        "lost": 0, "resurrected": 0, "duplicated": 0, "invisible": 0, "invisible_ids": [], "byte_hits": 0,
        "byte_hit_files": [], "forgotten_listed": 0, "store_history_mismatch": 0, "searches": 0, "memories": 0,
    }

    def corrupt(stage: str) -> None:
        state = integrity(data_dir)
        if state != "ok":
            counters["corrupt"] += 1
            counters["integrity"].append(f"{stage}: {state}")

    open_memory(data_dir).close()
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(WRITERS) + 2)
    results = ctx.Queue()
    procs = [ctx.Process(target=writer, args=(str(data_dir), name, rounds, barrier, results, seed))
             for name in WRITERS]
    procs.append(ctx.Process(target=forgetter, args=(str(data_dir), rounds, barrier, results)))
    for proc in procs:
        proc.start()
    audited: dict[str, set[str]] = {name: set() for name in WRITERS}
    reports: dict[str, Any] = {}
    try:
        for r in range(rounds):
            try:
                barrier.wait(timeout=BARRIER_S)
            except threading.BrokenBarrierError:
                break  # a child failed; its report says why
            corrupt(f"round {r}")
            memory = open_memory(data_dir)
            for name in WRITERS:  # reads of the other scopes after a forget ...
                stored, invisible, searches = audit(memory, name, audited[name])
                audited[name] = set(stored)
                counters["searches"] += searches
                counters["invisible"] += len(invisible)
                counters["invisible_ids"] += [f"round {r} {name} {i}" for i in invisible]
            counters["forgotten_listed"] += len(memory.get_all(user_id="alice"))
            hits = scan(data_dir)  # ... leave no byte of any forgotten round
            counters["byte_hits"] += len(hits)
            counters["byte_hit_files"] += [f"round {r}: {h}" for h in hits]
            memory.close()
            counters["rounds_done"] = r + 1
            counters["seconds"] = round(time.monotonic() - start, 1)
            if progress is not None:
                progress(counters)
            try:
                barrier.wait(timeout=BARRIER_S)
            except threading.BrokenBarrierError:
                break
        for _ in procs:
            try:
                name, report = results.get(timeout=BARRIER_S)
            except Exception:  # queue.Empty: a child died without a report
                break
            reports[name] = report
    finally:
        for proc in procs:
            proc.join(timeout=BARRIER_S)
            if proc.is_alive():
                proc.kill()
    for name in [*WRITERS, "alice"]:
        error = reports.get(name, {"error": "no report (the process died)"})["error"]
        if error:
            counters["worker_errors"] += 1
            counters["errors"][name] = error
    corrupt("end")
    memory = open_memory(data_dir)
    for name in WRITERS:
        stored, invisible, searches = audit(memory, name, audited[name])
        counters["searches"] += searches
        counters["invisible"] += len(invisible)
        counters["invisible_ids"] += [f"end {name} {i}" for i in invisible]
        counters["memories"] += len(stored)
        report = reports.get(name)
        if report is None:
            continue
        kept = {i: t for i, t in report["added"].items() if i not in report["deleted"]}
        counters["lost"] += len(set(kept) - set(stored)) + sum(stored[i] != t for i, t in kept.items() if i in stored)
        counters["resurrected"] += len(set(stored) - set(kept))
        counters["duplicated"] += sum(n - 1 for n in Counter(stored.values()).values() if n > 1)
    try:
        assert_consistent(memory)
    except AssertionError as exc:
        counters["store_history_mismatch"] += 1
        counters["errors"]["store_vs_history"] = str(exc)
    hits = scan(data_dir)
    counters["byte_hits"] += len(hits)
    counters["byte_hit_files"] += [f"end: {h}" for h in hits]
    memory.close()
    counters["seconds"] = round(time.monotonic() - start, 1)
    return counters


def forget_then_touch(seed: int, data_dir: Path) -> dict[str, Any]:
    """One byte-scan seed: forget a scope of a secret, then random sibling reads/writes, scanning after each.

    Returns the steps run and the hits (``(step, action, file)``); 0 hits is the guarantee.
    """
    rng = random.Random(seed)
    memory = open_memory(data_dir)
    for user in ("bob", "carol"):
        memory.add_many([f"{user} ordinary {i}" for i in range(rng.randint(1, 150))], user_id=user)
    secret_text = f"SECRET-{seed}-Zanzibar"
    memory.add_many([f"{secret_text} item {i} " + "x" * rng.randint(0, 400) for i in range(rng.randint(50, 300))],
                    user_id="alice", metadata={"tag": secret_text})
    memory.get_all(user_id="alice")
    memory.search(secret_text, user_id="alice")
    memory.delete_all(user_id="alice")
    hits = [(-1, "delete_all", f) for f in files_containing(data_dir, secret_text.encode())]
    other = open_memory(data_dir)  # a second handle, as another worker
    actions = []
    for step in range(rng.randint(3, 8)):
        user = rng.choice(["bob", "carol"])
        handle = rng.choice([memory, other])
        action = rng.choice(["get_all", "search", "add_many", "delete_all_scratch"])
        if action == "get_all":
            handle.get_all(user_id=user)
        elif action == "search":
            handle.search("ordinary", user_id=user, limit=rng.randint(1, 500))
        elif action == "add_many":
            handle.add_many([f"{user} later {step} {i}" for i in range(rng.randint(1, 250))], user_id=user)
        else:
            handle.add("scratch", user_id="scratch", infer=False)
            handle.delete_all(user_id="scratch")
        actions.append(action)
        hits += [(step, action, f) for f in files_containing(data_dir, secret_text.encode())]
    return {"seed": seed, "steps": actions, "hits": hits}

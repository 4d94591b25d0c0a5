"""Four writer processes and a forgetting process on one embedded store (issue #19).

After every round the parent checks: the store is not corrupt (``PRAGMA
integrity_check`` from a child process), every scope's ``get_all`` equals an
exhaustive search and every memory is found by a search for its own text, and no
file of the data directory holds a byte of any forgotten round's text, after reads
of the other scopes. ``MEMLORA_RELIABILITY_TRIALS`` sets the rounds (default 2).
"""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
from collections import Counter
from pathlib import Path

from _adversary import BARRIER_S, forgetter, secret, writer
from rel_helpers import assert_consistent, files_containing, open_memory, trials

WRITERS = ("w0", "w1", "w2", "w3")


def integrity(data_dir: Path) -> str:
    """``PRAGMA integrity_check`` of Chroma's database, from a child process (never this one's SQLite)."""
    code = "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('PRAGMA integrity_check').fetchone()[0])"
    done = subprocess.run([sys.executable, "-c", code, str(data_dir / "chroma" / "chroma.sqlite3")],
                          capture_output=True, text=True, timeout=120, check=False)
    return done.stdout.strip() or done.stderr.strip()


def audit(memory, scope: str) -> dict[str, str]:
    """The scope's memories; asserts each is returned by exhaustive searches."""
    stored = {r.id: r.text for r in memory.get_all(user_id=scope)}
    if not stored:
        return stored
    everything = {r.id for r in memory.search(f"{scope} round", user_id=scope, limit=len(stored))}
    assert everything == set(stored), f"{scope}: {len(set(stored) - everything)} memories no search returns"
    for memory_id, text in stored.items():
        hits = memory.search(text, user_id=scope, limit=len(stored))
        assert memory_id in {h.id for h in hits}, f"{scope}: {text!r} not found by its own text"
    return stored


def test_writers_beside_a_forgetter(data_dir: Path) -> None:
    rounds = trials(2)
    open_memory(data_dir).close()
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(WRITERS) + 2)
    results = ctx.Queue()
    procs = [ctx.Process(target=writer, args=(str(data_dir), name, rounds, barrier, results)) for name in WRITERS]
    procs.append(ctx.Process(target=forgetter, args=(str(data_dir), rounds, barrier, results)))
    for proc in procs:
        proc.start()
    try:
        for r in range(rounds):
            barrier.wait(timeout=BARRIER_S)
            assert integrity(data_dir) == "ok"
            memory = open_memory(data_dir)
            for name in WRITERS:  # reads of the other scopes after a forget ...
                audit(memory, name)
            assert memory.get_all(user_id="alice") == []
            for past in range(r + 1):  # ... leave no byte of any forgotten round
                assert files_containing(data_dir, secret(past).encode()) == []
            memory.close()
            barrier.wait(timeout=BARRIER_S)
        reports = dict(results.get(timeout=BARRIER_S) for _ in procs)
    finally:
        for proc in procs:
            proc.join(timeout=BARRIER_S)
            if proc.is_alive():
                proc.kill()
    assert {name: report["error"] for name, report in reports.items() if report["error"]} == {}
    memory = open_memory(data_dir)
    for name in WRITERS:
        stored = audit(memory, name)
        report = reports[name]
        kept = {i: t for i, t in report["added"].items() if i not in report["deleted"]}
        assert stored == kept  # nothing lost, nothing left that was deleted
        assert [t for t, n in Counter(stored.values()).items() if n > 1] == []  # nothing doubled
    assert assert_consistent(memory) == sum(
        len(r["added"]) - len(r["deleted"]) for n, r in reports.items() if n in WRITERS)
    assert integrity(data_dir) == "ok"

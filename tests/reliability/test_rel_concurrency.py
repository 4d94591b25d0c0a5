"""Many threads and several processes on one embedded store: nothing lost, nothing doubled."""

from __future__ import annotations

import json
import random
import threading
from collections import Counter

from rel_helpers import assert_consistent, open_memory, trials, worker

from memlora_engine.errors import MemoryNotFoundError


def test_processes_sharing_one_store(data_dir) -> None:
    count = trials(12)
    open_memory(data_dir).close()  # create the store once, as an app's installer would
    procs = {name: worker("mixed", str(data_dir), name, str(count)) for name in ("wa", "wb", "wc")}
    summaries = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        summaries[name] = json.loads(out.strip().splitlines()[-1])
    memory = open_memory(data_dir)
    shared = {r.id: r.text for r in memory.get_all(user_id="shared")}
    texts = Counter(shared.values())
    assert [t for t, n in texts.items() if n > 1] == []  # no duplicate text, even added by 3 processes at once
    assert {t for t in shared.values() if t.startswith("common")} == {f"common fact {i}" for i in range(min(7, count))}
    for name, summary in summaries.items():
        assert summary["misses"] == 0  # every process's search saw its own write immediately (see _worker.mixed)
        kept = {i: t for i, t in summary["added"].items() if i not in summary["deleted"]}
        assert {i: shared[i] for i in kept} == kept  # no lost write
        assert not set(summary["deleted"]) & set(shared)
        own = {r.id: r.text for r in memory.get_all(user_id=name)}
        assert len(own) == count
        for memory_id, text in summary["updated"].items():
            assert own[memory_id] == text
    # every search sees the other processes' writes too, ranked first for its own text
    # (exhaustive, as in _worker.mixed: at 200 rounds HNSW's greedy top-3 can miss a
    # vector the test embedder made orthogonal to its neighbours; that is index recall)
    for summary in summaries.values():
        for memory_id, text in list(summary["added"].items())[:5]:
            if memory_id not in summary["deleted"]:
                assert memory.search(text, user_id="shared", limit=100_000)[0].id == memory_id
    assert assert_consistent(memory) == len(shared) + 3 * count


def test_threads_hammering_one_memory(data_dir) -> None:
    memory = open_memory(data_dir)
    rounds = trials(20)
    errors: list[BaseException] = []
    added: dict[str, str] = {}
    deleted: set[str] = set()
    guard = threading.Lock()

    def work(n: int) -> None:
        rng = random.Random(n)
        try:
            for i in range(rounds):
                text = f"thread{n} note{i}"
                scope = {"user_id": rng.choice(["alice", "bob"])}
                (event,) = memory.add(text, infer=False, **scope)
                memory.add(f"shared fact {i % 5}", infer=False, **scope)
                with guard:
                    added[event.id] = text
                # exhaustive, as in _worker.mixed: a stale view lacks the memory at any limit
                assert event.id in [h.id for h in memory.search(text, limit=100_000, **scope)]
                if i % 4 == 3:
                    try:
                        memory.update(event.id, text + " v2", **scope)
                        with guard:
                            added[event.id] = text + " v2"
                        memory.delete(event.id, **scope)
                        with guard:
                            deleted.add(event.id)
                    except MemoryNotFoundError:
                        raise
                if i % 10 == 9:
                    memory.add("temp", user_id=f"tmp{n}", infer=False)
                    memory.delete_all(user_id=f"tmp{n}")
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    stored = {r.id: r.text for who in ("alice", "bob") for r in memory.get_all(user_id=who)}
    for memory_id, text in added.items():
        assert stored.get(memory_id) == (None if memory_id in deleted else text)
    for who in ("alice", "bob"):
        texts = Counter(r.text for r in memory.get_all(user_id=who))
        assert max(texts.values()) == 1  # "shared fact k" stored once per scope despite 6 racing threads
    assert assert_consistent(memory) == len(stored)

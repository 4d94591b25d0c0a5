"""Searches after the embedded client is reopened: every stored memory stays findable.

Forgetting a scope reopens the Chroma client (to load the scrubbed index files), and
so does a reload after another process wrote. Chroma 1.5's vector index could come
back without records written before the close: ``get`` returned them, no search did.
The store now has Chroma persist the index at every flush of its write buffer
(``_HNSW_PERSIST`` in memlora_engine/store/chroma.py).
"""

from __future__ import annotations

from rel_helpers import open_memory, trials


def _lost_after_reopens(memory, rounds: int) -> list[tuple[int, int, int]]:
    lost = []
    for i in range(rounds):
        (event,) = memory.add(f"thread1 note{i}", infer=False, user_id="alice")
        memory.add(f"shared fact {i % 5}", infer=False, user_id="alice")
        if i % 4 == 3:
            memory.update(event.id, f"thread1 note{i} v2", user_id="alice")
            memory.delete(event.id, user_id="alice")
        if i % 3 == 2:
            memory.add("temp", user_id="tmp", infer=False)
            memory.delete_all(user_id="tmp")  # purge: the client is closed and reopened
            stored = {r.id for r in memory.get_all(user_id="alice")}
            found = {h.id for h in memory.search("note", limit=100_000, user_id="alice")}
            if stored - found:
                lost.append((i, len(stored - found), len(stored)))
    return lost


def test_every_memory_stays_searchable_across_reopens(data_dir) -> None:
    # 150 rounds: with Chroma's default persistence, 1 to 14 memories went missing
    # in every run of this loop (7 runs)
    assert _lost_after_reopens(open_memory(data_dir), trials(150)) == []

"""Regressions of issue #19 items 1-3 and #21 in the embedded Chroma store."""

from __future__ import annotations

import ctypes
import random
import sys
import warnings
from pathlib import Path

import pytest
from _adversary import forget_then_touch
from rel_helpers import files_containing, open_memory, trials

from memlora_engine.store.chroma import ChromaStore
from memlora_engine.types import Scope

_opened: list[str] = []


def _record_sqlite_opens(event: str, args: tuple) -> None:
    if event == "sqlite3.connect":
        _opened.append(str(args[0]))


sys.addaudithook(_record_sqlite_opens)  # audit hooks cannot be removed; this one only records


def test_a_forget_never_opens_chromas_database_with_a_second_sqlite_library(data_dir: Path) -> None:
    """Python's sqlite3 beside Chroma's own SQLite in one process breaks its POSIX locks (item 1)."""
    memory = open_memory(data_dir)
    memory.add_many([f"alice fact {i}" for i in range(20)], user_id="alice")
    memory.add("bob fact", user_id="bob", infer=False)
    _opened.clear()
    assert memory.delete_all(user_id="alice") == 20
    assert [p for p in _opened if p.endswith("chroma.sqlite3")] == []
    assert files_containing(data_dir, b"alice fact") == []
    assert [r.text for r in memory.get_all(user_id="bob")] == ["bob fact"]


def test_exhaustive_search_returns_every_memory_get_all_lists(data_dir: Path) -> None:
    """HNSW's answer for limit = scope size came back short (5-25 of 520 missing, item 2)."""
    for batch in range(4):  # a new handle per batch, as workers come and go
        memory = open_memory(data_dir)
        memory.add_many([f"carol fact {batch} {i}" for i in range(130)], user_id="carol")
    stored = {r.id: r.text for r in memory.get_all(user_id="carol")}
    assert len(stored) == 520
    assert {r.id for r in memory.search("carol fact", user_id="carol", limit=len(stored))} == set(stored)
    for memory_id, text in random.Random(0).sample(sorted(stored.items()), 40):
        assert memory_id in {r.id for r in memory.search(text, user_id="carol", limit=len(stored))}
    filtered = memory.search("carol fact", user_id="carol", limit=1000, filters={"nothing": "matches"})
    assert filtered == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's M_PERTURB")
def test_memory_freed_before_an_index_is_allocated_never_reaches_it(tmp_path: Path) -> None:
    """Chroma persists HNSW buffers it took from the heap uninitialised (item 3): text freed
    before must not be in them. With the heap hardened, a freed block handed out again is
    a constant byte, whatever it held."""
    ChromaStore.persistent(tmp_path / "store")  # opening a persistent store hardens the heap
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    secret = b"alice's forgotten secret "
    size = 64 * 1024
    leaked = 0
    for _ in range(20):
        block = libc.malloc(size)
        ctypes.memmove(block, secret * (size // len(secret)), size // len(secret) * len(secret))
        libc.free(block)
        again = libc.malloc(size)
        leaked += secret in ctypes.string_at(again, size)
        libc.free(again)
    assert leaked == 0


def test_forgotten_text_stays_gone_after_any_reads_and_writes_of_other_scopes(tmp_path: Path) -> None:
    """Byte scans after forget + random reads/writes of sibling scopes (item 3); seeds: TRIALS."""
    for seed in range(trials(3)):
        assert forget_then_touch(seed, tmp_path / f"seed{seed}")["hits"] == [], seed


def test_collections_log_no_legacy_embedding_function_warning(tmp_path: Path) -> None:
    """Chroma warned 'legacy embedding function config' at every collection load (#21)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        memory = open_memory(tmp_path / "data")
        memory.add("a fact", user_id="u", infer=False)
        memory.search("fact", user_id="u")
        again = open_memory(tmp_path / "data")
        again.get_all(user_id="u")
        again.scopes(user_id="u")
        store = ChromaStore.in_memory()
        store.upsert(Scope("u"), [], [])
        store.count(Scope("u"))
    assert [str(w.message) for w in caught if "legacy embedding function" in str(w.message)] == []

"""The Store port: one contract for ChromaStore (in memory) and the pure-Python InMemoryStore,
and the engine's pipeline over each."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from memlora_engine import Memory, MemoryConfig, Store
from memlora_engine.errors import FilterError, MemoryNotFoundError, StorageError
from memlora_engine.repository import text_hash
from memlora_engine.store.chroma import ChromaStore
from memlora_engine.testing import DeterministicEmbedder, InMemoryStore, ScriptedGenerator
from memlora_engine.types import MemoryRecord, Scope

STORES = {"chroma": ChromaStore.in_memory, "in_memory": InMemoryStore}
ALICE, BOB = Scope("alice"), Scope("bob")
EMBED = DeterministicEmbedder()


@pytest.fixture(params=sorted(STORES))
def store(request) -> Store:
    return STORES[request.param]()


def record(text: str, when: str = "2024-01-01T00:00:00+00:00", scope: Scope = ALICE, **metadata) -> MemoryRecord:
    return MemoryRecord(id=f"id-{text}", text=text, hash=text_hash(text), created_at=when, metadata=metadata,
                        user_id=scope.user_id, agent_id=scope.agent_id, run_id=scope.run_id)


def put(store: Store, *records: MemoryRecord, scope: Scope = ALICE) -> None:
    store.upsert(scope, list(records), EMBED.embed([r.text for r in records]))


def test_both_implement_the_protocol(store) -> None:
    assert isinstance(store, Store)
    assert store.lock_directory is None and store.max_batch_size >= 1
    store.refresh(3)
    store.refresh(4, mine=True)


def test_records_round_trip_and_stay_in_their_scope(store) -> None:
    tea = record("likes green tea", topic="food", score=0.5, pinned=True)
    tea.updated_at = "2024-02-01T00:00:00+00:00"
    tea.source = "Alice: I switched to green tea, no more coffee.\nBob: Good for you!"
    put(store, tea, record("lives in oslo", "2023-06-01T00:00:00+00:00"))
    put(store, record("bob's own", scope=BOB), scope=BOB)
    assert store.fetch(ALICE, ["id-lives in oslo", "missing", "id-likes green tea"]) == [
        record("lives in oslo", "2023-06-01T00:00:00+00:00"), tea]
    assert [r.text for r in store.list(ALICE)] == ["lives in oslo", "likes green tea"]  # oldest first
    assert [r.text for r in store.list(ALICE, limit=1)] == ["lives in oslo"]
    assert store.fetch(BOB, ["id-likes green tea"]) == [] and store.count(BOB) == 1
    assert store.list(Scope("nobody")) == [] and store.count(Scope("nobody")) == 0
    assert {s.key for s in store.scopes()} == {ALICE.key, BOB.key}


def test_upsert_replaces_by_id_and_delete_ignores_unknown_ids(store) -> None:
    put(store, record("a"), record("b"))
    changed = record("a")
    changed.metadata = {"v": 2}
    put(store, changed)
    store.delete(ALICE, ["id-b", "never-there"])
    assert [(r.text, r.metadata) for r in store.list(ALICE)] == [("a", {"v": 2})]


def test_upsert_replaces_the_metadata_it_does_not_merge_it(store) -> None:
    first = record("a", topic="food", pinned=True)
    first.updated_at = "2024-02-01T00:00:00+00:00"
    put(store, first)
    put(store, record("a", topic="drinks"))
    (stored,) = store.fetch(ALICE, ["id-a"])
    assert (stored.metadata, stored.updated_at) == ({"topic": "drinks"}, None)
    assert store.list(ALICE, {"pinned": True}) == []


def test_query_ranks_by_cosine_with_scores(store) -> None:
    put(store, record("tea in the morning"), record("cake"), record("oslo trip"))
    hits = store.query(ALICE, EMBED.embed(["tea in the morning"])[0], 2)
    assert len(hits) == 2 and hits[0].text == "tea in the morning"
    assert hits[0].score == pytest.approx(1.0, abs=1e-4) and hits[0].score >= hits[1].score
    assert store.query(ALICE, EMBED.embed(["tea"])[0], 0) == []
    assert store.query(Scope("nobody"), EMBED.embed(["tea"])[0], 3) == []
    assert len(store.query(ALICE, EMBED.embed(["tea"])[0], 100)) == 3
    assert len(store.query(ALICE, EMBED.embed(["tea"])[0], 2**40)) == 3  # past 32 bits: Chroma's n_results is clamped


FILTER_CASES = [
    ({"topic": "food"}, ["tea", "cake"]),
    ({"topic": {"in": ["travel", "work"]}}, ["oslo"]),
    ({"topic": {"ne": "food"}}, ["oslo", "plain"]),  # a negation also matches a record without the key
    ({"topic": {"$nin": ["food"]}}, ["oslo", "plain"]),
    ({"year": {"gte": 2021, "lt": 2023}}, ["cake", "oslo"]),
    ({"year": 2020.0}, ["tea"]),  # numbers compare as numbers
    ({"pinned": True}, ["cake"]),
    ({"pinned": {"gte": 1}}, []),  # a boolean is not a number
    ({"AND": [{"topic": "food"}, {"year": {"gt": 2021}}]}, ["cake"]),
    ({"OR": [{"topic": "travel"}, {"year": 2020}]}, ["tea", "oslo"]),
    ({"topic": "food", "year": 2020}, ["tea"]),
]


@pytest.mark.parametrize(("filters", "expected"), FILTER_CASES)
def test_filters_mean_the_same_on_every_store(store, filters, expected) -> None:
    put(store, record("tea", topic="food", year=2020), record("cake", topic="food", year=2022, pinned=True),
        record("oslo", topic="travel", year=2021), record("plain"))
    assert sorted(r.text for r in store.list(ALICE, filters)) == sorted(expected)
    assert sorted(r.text for r in store.query(ALICE, EMBED.embed(["tea"])[0], 10, filters)) == sorted(expected)


def test_bad_filters_raise_on_every_store(store) -> None:
    put(store, record("tea"))
    with pytest.raises(FilterError):
        store.list(ALICE, {"year": {"gt": "2020"}})
    with pytest.raises(FilterError):
        store.query(ALICE, EMBED.embed(["tea"])[0], 1, {"_hash": "x"})


def test_hash_lookups_drop_and_reset(store) -> None:
    put(store, record("a"), record("b"))
    put(store, record("c", scope=BOB), scope=BOB)
    assert store.hashes_present(ALICE, [text_hash("a"), text_hash("c"), text_hash("a")]) == {text_hash("a")}
    assert store.ids_with_hash(ALICE, text_hash("b")) == ["id-b"] and store.ids_with_hash(BOB, text_hash("b")) == []
    store.drop(ALICE)
    store.drop(Scope("nobody"))
    assert store.count(ALICE) == 0 and [s.key for s in store.scopes()] == [BOB.key]
    store.reset()
    assert store.scopes() == [] and store.count(BOB) == 0


def superseded(text: str, by: str, when: str = "2023-01-01T00:00:00+00:00") -> MemoryRecord:
    return replace(record(text, when), id=f"old-{text}", superseded_by=by)


def test_superseded_records_are_seen_only_when_asked_for(store) -> None:
    put(store, record("lives in porto"), record("likes tea"), superseded("lives in lisbon", "id-lives in porto"))
    put(store, superseded("bob lived in rome", "id-x"), scope=BOB)
    lisbon = EMBED.embed(["lives in lisbon"])[0]
    # Every read of the current memories leaves it out ...
    assert sorted(r.text for r in store.query(ALICE, lisbon, 3)) == ["likes tea", "lives in porto"]
    assert [r.text for r in store.list(ALICE)] == ["likes tea", "lives in porto"] and store.count(ALICE) == 2
    assert store.fetch(ALICE, ["old-lives in lisbon"]) == []
    assert store.hashes_present(ALICE, [text_hash("lives in lisbon")]) == set()
    assert store.ids_with_hash(ALICE, text_hash("lives in lisbon")) == []
    # ... and a search that asks for it ranks it beside them, with what replaced it named.
    top = store.query(ALICE, lisbon, 2, superseded=True)
    assert (top[0].text, top[0].superseded_by, top[0].score) == ("lives in lisbon", "id-lives in porto",
                                                                 pytest.approx(1.0, abs=1e-4))
    assert len(top) == 2 and top[1].superseded_by is None
    listed = store.list(ALICE, superseded=True)  # current first, then superseded (an import writes them in order)
    assert [(r.text, r.superseded_by) for r in listed] == [
        ("likes tea", None), ("lives in porto", None), ("lives in lisbon", "id-lives in porto")]
    assert listed[-1].created_at == "2023-01-01T00:00:00+00:00"
    assert store.query(BOB, lisbon, 3) == [] and store.count(BOB) == 0
    assert [r.text for r in store.query(BOB, lisbon, 3, superseded=True)] == ["bob lived in rome"]
    assert sorted(s.key for s in store.scopes()) == sorted([ALICE.key, BOB.key])  # so forgetting finds bob's
    store.drop(BOB)
    assert store.query(BOB, lisbon, 3, superseded=True) == [] and [s.key for s in store.scopes()] == [ALICE.key]


def test_deleting_a_memory_deletes_the_records_it_superseded(store) -> None:
    put(store, record("lives in porto"), record("likes tea"), superseded("lives in lisbon", "id-lives in porto"),
        superseded("lives in faro", "id-lives in porto"), superseded("liked coffee", "id-likes tea"))
    store.delete(ALICE, ["id-lives in porto"])
    assert [r.text for r in store.list(ALICE, superseded=True)] == ["likes tea", "liked coffee"]
    store.delete(ALICE, ["old-liked coffee"])  # a superseded record by its own id
    assert [r.text for r in store.list(ALICE, superseded=True)] == ["likes tea"]
    put(store, superseded("liked juice", "id-likes tea"))
    store.drop(ALICE)
    assert store.list(ALICE, superseded=True) == [] and store.query(ALICE, EMBED.embed(["juice"])[0], 5,
                                                                     superseded=True) == []
    assert store.scopes() == []


ECHO = {
    "extraction": lambda request: json.dumps({"facts": [line.split(": ", 1)[1] for line in
                                                         request.messages[-1]["content"].splitlines() if ": " in line]}),
    "update": [json.dumps({"memory": [{"id": "0", "text": "Likes green tea", "event": "UPDATE"}]})],
}


@pytest.mark.parametrize("make_store", [STORES[k] for k in sorted(STORES)], ids=sorted(STORES))
def test_memory_runs_the_same_over_every_store(make_store) -> None:
    memory = Memory(MemoryConfig(store="memory"), store=make_store(), generator=ScriptedGenerator(ECHO),
                    embedder=DeterministicEmbedder())
    (added,) = memory.add("Likes tea", user_id="u")
    (updated,) = memory.add("Likes green tea", user_id="u")
    assert updated.id == added.id and updated.event.value == "UPDATE"
    memory.add("Lives in Oslo", user_id="u", infer=False, metadata={"topic": "travel"})
    assert [r.text for r in memory.search("green tea", user_id="u", limit=1)] == ["Likes green tea"]
    assert [r.text for r in memory.get_all(user_id="u", filters={"topic": "travel"})] == ["Lives in Oslo"]
    memory.update(added.id, "Likes matcha", user_id="u")
    with pytest.raises(MemoryNotFoundError):
        memory.update(added.id, "x", user_id="other")
    memory.delete(added.id, user_id="u")
    trail = [(h.event, h.new_text) for h in memory.history(added.id, user_id="u")]
    assert trail == [("ADD", "Likes tea"), ("UPDATE", "Likes green tea"), ("UPDATE", "Likes matcha"), ("DELETE", None)]
    assert memory.get(added.id, user_id="u") is None
    assert memory.delete_all(user_id="u") == 1 and memory.get_all(user_id="u") == []
    assert memory.history(added.id, user_id="u") == []


def test_a_batch_past_the_store_limit_is_split_into_journalled_batches() -> None:
    memory = Memory(MemoryConfig(store="memory"), store=InMemoryStore(max_batch_size=2),
                    embedder=DeterministicEmbedder())
    result = memory.add_many([f"note {i}" for i in range(5)], user_id="u")
    assert len(result.events) == 5 and len(memory.get_all(user_id="u")) == 5
    assert memory.history_store.pending() == []


def test_a_failed_write_of_the_current_memories_takes_its_superseded_records_back() -> None:
    store = ChromaStore.in_memory()
    put(store, record("lives in porto"))
    # The current memory's vector has the wrong width: Chroma refuses it after the superseded record went in.
    changed, kept = record("lives in faro"), superseded("lives in porto", "id-lives in faro")
    width = len(EMBED.embed(["x"])[0])
    with pytest.raises(StorageError):
        store.upsert(ALICE, [kept, changed], [[0.5] * width, [0.5] * (width + 1)])
    assert store.list(ALICE, superseded=True) == [record("lives in porto")]

"""The LangGraph store contract, run over MemLoRAStore and LangGraph's own InMemoryStore alike.

Neither langgraph nor langchain_tests ships contract tests for ``langgraph.store.base.BaseStore``
(langchain_tests' ``BaseStoreSyncTests`` is for the unrelated ``langchain_core.stores.BaseStore``),
so this suite writes down the behaviour of LangGraph's ``InMemoryStore`` and checks both
stores against it. Both embed with the same offline embedder, so semantic rankings agree.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime

import pytest
from langgraph.store.base import (
    GetOp,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    MatchCondition,
    PutOp,
    SearchItem,
    SearchOp,
)
from langgraph.store.memory import InMemoryStore

from memlora_engine.testing import DeterministicEmbedder
from memlora_integrations.langgraph import MemLoRAStore

EMBED = DeterministicEmbedder()


def _memlora(fakes):
    return MemLoRAStore(fakes.build_memory())


def _in_memory(fakes):
    return InMemoryStore(index={"dims": 64, "embed": EMBED.embed, "fields": ["text"]})


STORES = {"memlora": _memlora, "langgraph_in_memory": _in_memory}


@pytest.fixture(params=sorted(STORES))
def store(request, lg_fakes):
    return STORES[request.param](lg_fakes)


ALICE = ("memories", "alice")
BOB = ("memories", "bob")


def keys(items):
    return sorted((item.namespace, item.key) for item in items)


def fill(store) -> None:
    store.put(ALICE, "tea", {"text": "likes green tea", "kind": "food", "stars": 4, "tags": ["a", "b"],
                             "where": {"city": "oslo"}})
    store.put(ALICE, "job", {"text": "works as a nurse", "kind": "work", "stars": 2})
    store.put(BOB, "tea", {"text": "hates tea", "kind": "food", "stars": 1})
    store.put(("notes",), "n1", {"text": "buy milk", "kind": "todo", "stars": 3})


def test_put_then_get_round_trips_the_item(store) -> None:
    value = {"text": "likes green tea", "n": 3, "ok": True, "nested": {"a": [1, 2]}, "none": None}
    store.put(ALICE, "tea", value)
    item = store.get(ALICE, "tea")
    assert isinstance(item, Item)
    assert (item.namespace, item.key, item.value) == (ALICE, "tea", value)
    assert isinstance(item.created_at, datetime) and isinstance(item.updated_at, datetime)
    assert item.created_at.tzinfo is not None and item.updated_at >= item.created_at
    assert json.loads(json.dumps(item.dict()))["value"] == value


def test_get_of_a_missing_key_or_namespace_is_none(store) -> None:
    store.put(ALICE, "tea", {"text": "likes tea"})
    assert store.get(ALICE, "coffee") is None
    assert store.get(BOB, "tea") is None


def test_put_replaces_the_value_of_a_key(store) -> None:
    store.put(ALICE, "tea", {"text": "likes green tea", "old": 1})
    first = store.get(ALICE, "tea")
    store.put(ALICE, "tea", {"text": "likes black tea"})
    again = store.get(ALICE, "tea")
    assert again.value == {"text": "likes black tea"}
    assert again.updated_at >= first.updated_at
    assert keys(store.search(ALICE)) == [(ALICE, "tea")]


def test_the_same_value_under_two_keys_is_two_items(store) -> None:
    store.put(ALICE, "a", {"text": "same words"})
    store.put(ALICE, "b", {"text": "same words"})
    assert keys(store.search(ALICE)) == [(ALICE, "a"), (ALICE, "b")]


def test_delete_removes_and_deleting_a_missing_key_is_a_no_op(store) -> None:
    fill(store)
    store.delete(ALICE, "tea")
    store.delete(ALICE, "never-there")
    assert store.get(ALICE, "tea") is None
    assert store.get(BOB, "tea") is not None  # the same key in another namespace stays
    assert keys(store.search(ALICE)) == [(ALICE, "job")]


def test_search_covers_the_namespace_prefix(store) -> None:
    fill(store)
    assert keys(store.search(("memories",))) == [(ALICE, "job"), (ALICE, "tea"), (BOB, "tea")]
    assert keys(store.search(BOB)) == [(BOB, "tea")]
    assert len(store.search(())) == 4
    assert store.search(("mem",)) == []  # a prefix is whole labels
    assert store.search(("memories", "alice", "deeper")) == []
    assert all(isinstance(item, SearchItem) and item.score is None for item in store.search(()))


@pytest.mark.parametrize(
    ("filter_", "expected"),
    [
        ({"kind": "food"}, [(ALICE, "tea"), (BOB, "tea")]),
        ({"kind": "food", "stars": 4}, [(ALICE, "tea")]),
        ({"stars": {"$gt": 2}}, [(ALICE, "tea"), (("notes",), "n1")]),
        ({"stars": {"$gte": 2, "$lt": 4}}, [(ALICE, "job"), (("notes",), "n1")]),
        ({"stars": {"$lte": 1}}, [(BOB, "tea")]),
        ({"kind": {"$ne": "food"}}, [(ALICE, "job"), (("notes",), "n1")]),
        ({"kind": {"$eq": "todo"}}, [(("notes",), "n1")]),
        ({"where": {"city": "oslo"}}, [(ALICE, "tea")]),
        ({"tags": ["a", "b"]}, [(ALICE, "tea")]),
        ({"tags": ["a"]}, []),
        ({"kind": "nothing"}, []),
    ],
)
def test_search_filters_on_the_value(store, filter_, expected) -> None:
    fill(store)
    assert keys(store.search((), filter=filter_, limit=100)) == sorted(expected)


def test_search_pages_with_limit_and_offset(store) -> None:
    fill(store)
    every = store.search((), limit=100)
    pages = [store.search((), limit=2, offset=offset) for offset in (0, 2, 4)]
    assert [len(p) for p in pages] == [2, 2, 0]
    assert [i.key for p in pages for i in p] == [i.key for i in every]
    assert keys(pages[0] + pages[1]) == keys(every)
    assert len(store.search((), limit=1)) == 1


def test_semantic_search_ranks_by_similarity_with_scores(store) -> None:
    fill(store)
    hits = store.search((), query="likes green tea", limit=10)
    assert (hits[0].namespace, hits[0].key) == (ALICE, "tea")
    scores = [h.score for h in hits]
    assert all(isinstance(s, float) for s in scores) and scores == sorted(scores, reverse=True)
    assert hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert len(hits) == 4
    top = store.search((), query="likes green tea", limit=1, offset=1)
    assert [(h.namespace, h.key) for h in top] == [(hits[1].namespace, hits[1].key)]


def test_semantic_search_with_a_filter_and_a_prefix(store) -> None:
    fill(store)
    hits = store.search(("memories",), query="tea", filter={"kind": "food"})
    assert keys(hits) == [(ALICE, "tea"), (BOB, "tea")]
    assert hits[0].key == "tea" and hits[0].score >= hits[1].score
    assert store.search(("memories",), query="tea", filter={"kind": "todo"}) == []


def test_list_namespaces(store) -> None:
    fill(store)
    store.put(("memories", "alice", "travel"), "t", {"text": "went to rome"})
    store.put(("docs", "v1"), "d", {"text": "a doc"})
    every = [("docs", "v1"), ALICE, ("memories", "alice", "travel"), BOB, ("notes",)]
    assert store.list_namespaces() == every
    assert store.list_namespaces(prefix=("memories",)) == [ALICE, ("memories", "alice", "travel"), BOB]
    assert store.list_namespaces(suffix=("alice",)) == [ALICE]
    assert store.list_namespaces(prefix=("memories", "*")) == [ALICE, ("memories", "alice", "travel"), BOB]
    assert store.list_namespaces(suffix=("*", "travel")) == [("memories", "alice", "travel")]
    assert store.list_namespaces(prefix=("memories",), suffix=("bob",)) == [BOB]
    assert store.list_namespaces(max_depth=1) == [("docs",), ("memories",), ("notes",)]
    assert store.list_namespaces(prefix=("memories",), max_depth=2) == [ALICE, BOB]
    assert store.list_namespaces(limit=2) == every[:2]
    assert store.list_namespaces(limit=2, offset=3) == every[3:5]
    assert store.list_namespaces(prefix=("nothing",)) == []


def test_batch_answers_each_operation_in_order(store) -> None:
    assert store.batch([PutOp(ALICE, "tea", {"text": "likes tea"}), PutOp(BOB, "job", {"text": "a nurse"})]) == [
        None, None]
    got, missing, found, listed = store.batch([
        GetOp(ALICE, "tea"),
        GetOp(ALICE, "job"),
        SearchOp(("memories",), limit=10),
        ListNamespacesOp(match_conditions=(MatchCondition("prefix", ("memories",)),)),
    ])
    assert got.value == {"text": "likes tea"} and missing is None
    assert keys(found) == [(ALICE, "tea"), (BOB, "job")]
    assert listed == [ALICE, BOB]


@pytest.mark.parametrize("namespace", [(), ("memories", ""), ("memories", "a.b"), ("langgraph", "x")])
def test_bad_namespaces_are_refused_on_put(store, namespace) -> None:
    with pytest.raises(InvalidNamespaceError):
        store.put(namespace, "k", {"text": "x"})


def test_async_methods_match_the_sync_ones(store) -> None:
    async def scenario():
        await store.aput(ALICE, "tea", {"text": "likes green tea", "kind": "food"})
        await store.aput(BOB, "tea", {"text": "hates tea", "kind": "food"})
        item = await store.aget(ALICE, "tea")
        hits, listed = await asyncio.gather(
            store.asearch(("memories",), query="likes green tea", filter={"kind": "food"}),
            store.alist_namespaces(prefix=("memories",)),
        )
        await store.adelete(BOB, "tea")
        batched = await store.abatch([GetOp(BOB, "tea"), GetOp(ALICE, "tea")])
        return item, hits, listed, batched

    item, hits, listed, batched = asyncio.run(scenario())
    assert item.value == {"text": "likes green tea", "kind": "food"}
    assert [(h.namespace, h.key) for h in hits] == [(ALICE, "tea"), (BOB, "tea")] and hits[0].score > hits[1].score
    assert listed == [ALICE, BOB]
    assert batched[0] is None and batched[1].key == "tea"


def test_ttl_is_not_supported(store) -> None:
    assert store.supports_ttl is False
    with pytest.raises(NotImplementedError):
        store.put(ALICE, "k", {"text": "x"}, ttl=5)

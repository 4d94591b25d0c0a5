"""What MemLoRAStore adds to the LangGraph contract: namespaces as scopes, the memory's text, ingestion."""

from __future__ import annotations

import asyncio
import json

import pytest
from langgraph.store.base import BaseStore, InvalidNamespaceError

import memlora_integrations.langgraph as lg
from memlora_engine import AsyncMemory, ConfigError, InvalidInputError, ScopeError
from memlora_engine.testing import ScriptedGenerator
from memlora_integrations.langgraph import MemLoRAStore, NamespaceError

ALICE = ("memories", "alice")


def test_exports() -> None:
    assert lg.__all__ == sorted(lg.__all__) == ["MemLoRAStore", "NamespaceError"]
    assert issubclass(MemLoRAStore, BaseStore)
    assert issubclass(NamespaceError, ScopeError) and issubclass(NamespaceError, InvalidNamespaceError)


def test_by_default_a_namespace_is_the_dotted_user_scope(lg_memory) -> None:
    store = MemLoRAStore(lg_memory)
    store.put(ALICE, "diet", {"text": "Alice is vegetarian"})
    (record,) = lg_memory.get_all(user_id="memories.alice")
    assert (record.id, record.text) == ("diet", "Alice is vegetarian")
    lg_memory.add("a memory of another scope kind", agent_id="helper", infer=False)
    assert store.list_namespaces() == [ALICE]  # an agent scope is no namespace of the dotted mapping


def test_templates_put_a_namespace_in_the_scope_the_other_integrations_use(lg_memory) -> None:
    store = MemLoRAStore(lg_memory, namespaces=[("memories", "{user_id}"), ("{user_id}", "agents", "{agent_id}")])
    store.put(ALICE, "diet", {"text": "Alice is vegetarian"})
    store.put(("alice", "agents", "travel"), "trip", {"text": "Alice flies to Rome"})
    assert [r.text for r in lg_memory.get_all(user_id="alice")] == ["Alice is vegetarian"]
    assert [r.text for r in lg_memory.get_all(user_id="alice", agent_id="travel")] == ["Alice flies to Rome"]
    # what the engine (or the middleware) remembers for alice is an item of her namespace
    (event,) = lg_memory.add("I have a dog called Rex", user_id="alice")
    assert store.get(ALICE, event.id).value == {"text": "I have a dog called Rex"}
    assert store.search(ALICE, query="dog", limit=1)[0].key == event.id
    assert store.list_namespaces() == [("alice", "agents", "travel"), ALICE]
    lg_memory.add("an id with a dot", user_id="a.b", infer=False)
    assert store.list_namespaces() == [("alice", "agents", "travel"), ALICE]  # no namespace has a label 'a.b'


@pytest.mark.parametrize("namespace", [("notes", "alice"), ("memories", "alice", "extra"), ("memories",)])
def test_a_namespace_no_template_fits_is_refused_clearly(lg_memory, namespace) -> None:
    store = MemLoRAStore(lg_memory, namespaces=[("memories", "{user_id}")])
    for call in (lambda: store.put(namespace, "k", {"text": "x"}), lambda: store.get(namespace, "k")):
        with pytest.raises(NamespaceError, match="fits none of this store's namespace templates"):
            call()


def test_a_namespace_too_long_for_a_scope_id_is_refused(lg_memory) -> None:
    with pytest.raises(NamespaceError, match="maps to no MemLoRA scope"):
        MemLoRAStore(lg_memory).put(("x" * 200, "y" * 100), "k", {"text": "x"})


@pytest.mark.parametrize(
    "templates",
    [
        [("memories", "alice")],  # no placeholder
        [("{user_id}", "{user_id}")],
        [("memories", "{user_id}"), ("profile", "{user_id}")],  # the same scope twice
        [("a.b", "{user_id}")],
        [],
        ("memories", "{user_id}"),  # one template, not a list of them
    ],
)
def test_bad_templates_are_refused(lg_memory, templates) -> None:
    with pytest.raises(ConfigError):
        MemLoRAStore(lg_memory, namespaces=templates)


def test_the_memory_text_comes_from_the_index_fields_or_text_or_json(lg_memory) -> None:
    store = MemLoRAStore(lg_memory, index={"dims": 64, "fields": ["title", "body"]})
    store.put(ALICE, "a", {"title": "Trip", "body": "Rome in May", "id": 7})
    store.put(ALICE, "b", {"text": "ignored here", "note": "kept"}, index=["note"])
    plain = MemLoRAStore(lg_memory)
    plain.put(ALICE, "c", {"text": "  Alice is vegetarian "})
    plain.put(ALICE, "d", {"memory": "no text field", "n": 1})
    plain.put(ALICE, "e", {"text": "   "})
    texts = {r.id: r.text for r in lg_memory.get_all(user_id="memories.alice")}
    assert texts == {"a": "Trip\nRome in May", "b": "kept", "c": "Alice is vegetarian",
                     "d": json.dumps({"memory": "no text field", "n": 1}), "e": json.dumps({"text": "   "})}
    assert plain.get(ALICE, "c").value == {"text": "  Alice is vegetarian "}  # the value itself is kept exactly


def test_an_index_with_its_own_embedder_is_refused(lg_memory) -> None:
    with pytest.raises(ConfigError, match="engine's embedder"):
        MemLoRAStore(lg_memory, index={"dims": 3, "embed": lambda texts: [[0.0] * 3 for _ in texts]})


def test_a_value_that_is_not_json_is_refused(lg_memory) -> None:
    with pytest.raises(InvalidInputError, match="JSON"):
        MemLoRAStore(lg_memory).put(ALICE, "k", {"when": object()})


def test_ingest_runs_extraction_and_update(lg_fakes) -> None:
    memory = lg_fakes.build_memory()
    store = MemLoRAStore(memory, namespaces=[("memories", "{user_id}")])
    result = store.ingest(ALICE, [{"role": "user", "content": "I live in Oslo"},
                                  {"role": "assistant", "content": "Nice city!"}], metadata={"source": "chat"})
    (event,) = result.events
    assert store.get(ALICE, event.id).value == {"text": "I live in Oslo", "metadata": {"source": "chat"}}
    assert store.ingest(ALICE, "I live in Oslo").events == []  # the engine keeps one copy


def test_an_item_rewritten_by_the_update_step_shows_the_new_text(lg_memory) -> None:
    rewrite = ScriptedGenerator({
        "extraction": ['{"facts": ["Lives in Bergen"]}'],
        "update": ['{"memory": [{"id": "0", "text": "Lives in Bergen", "event": "UPDATE"}]}'],
    })
    store = MemLoRAStore(lg_memory)
    store.put(ALICE, "home", {"text": "Lives in Oslo", "source": "form"})
    lg_memory.generator = rewrite
    store.ingest(ALICE, "I moved to Bergen")
    assert store.get(ALICE, "home").value == {"text": "Lives in Bergen", "source": "form"}


def test_a_store_over_an_async_engine_and_async_ingest(lg_memory) -> None:
    store = MemLoRAStore(AsyncMemory(memory=lg_memory))
    assert store.memory is lg_memory
    result = asyncio.run(store.aingest(ALICE, "I like tea"))
    assert [i.value["text"] for i in store.search(ALICE)] == ["I like tea"] and result.ok


def test_items_survive_a_new_engine_on_the_same_directory(tmp_path, lg_fakes) -> None:
    MemLoRAStore(lg_fakes.build_memory(tmp_path)).put(ALICE, "diet", {"text": "Alice is vegetarian", "n": 1})
    again = MemLoRAStore(lg_fakes.build_memory(tmp_path))
    assert again.get(ALICE, "diet").value == {"text": "Alice is vegetarian", "n": 1}
    assert again.search((), query="vegetarian")[0].key == "diet"

"""Storage on real Chroma: scopes, filters, history, export/import, persistence, forgetting."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from memlora_engine import AsyncMemory, Memory, MemoryConfig
from memlora_engine.errors import FilterError, InvalidInputError, MemoryNotFoundError, ScopeError
from memlora_engine.testing import DeterministicEmbedder, ScriptedGenerator
from memlora_engine.types import Scope


def echo_facts(request) -> str:
    """Extraction that turns each user line into one fact (the text after 'user: ')."""
    lines = request.messages[-1]["content"].splitlines()
    return json.dumps({"facts": [line.split(": ", 1)[1] for line in lines if ": " in line]})


ECHO = {"extraction": echo_facts, "update": ['{"memory": []}']}


def test_scopes_are_separate_collections(make_memory) -> None:
    memory = make_memory(ECHO)
    (alice,) = memory.add("Alice's pin is 1234", user_id="alice")
    (bob,) = memory.add("Bob's pin is 9876", user_id="bob")
    (session,) = memory.add("Alice's session note", user_id="alice", run_id="r1")
    assert [r.text for r in memory.search("pin", user_id="bob", limit=10)] == ["Bob's pin is 9876"]
    assert [r.text for r in memory.get_all(user_id="alice")] == ["Alice's pin is 1234"]
    assert [r.text for r in memory.get_all(user_id="alice", run_id="r1")] == ["Alice's session note"]
    # ids do not cross scopes: another scope's id is simply not there
    assert memory.get(alice.id, user_id="bob") is None
    with pytest.raises(MemoryNotFoundError):
        memory.update(alice.id, "hacked", user_id="bob")
    with pytest.raises(MemoryNotFoundError):
        memory.delete(alice.id, user_id="bob")
    assert memory.get(alice.id, user_id="alice").text == "Alice's pin is 1234"
    names = {memory.store.collection_name(s) for s in memory.store.scopes()}
    assert len(names) == 3
    assert bob.id and session.id


def test_scope_keys_cannot_be_forged() -> None:
    from memlora_engine import Scope

    assert Scope(user_id="a|b").key != Scope(user_id="a", agent_id="b").key
    assert Scope(user_id="1:a").key != Scope(user_id="a").key


FILTER_CASES = [
    ({"topic": "food"}, ["tea", "cake"]),
    ({"topic": {"in": ["travel", "work"]}}, ["oslo"]),
    ({"topic": {"$nin": ["food"]}}, ["oslo"]),
    ({"year": {"gte": 2021, "lt": 2023}}, ["cake", "oslo"]),
    ({"AND": [{"topic": "food"}, {"year": {"gt": 2021}}]}, ["cake"]),
    ({"OR": [{"topic": "travel"}, {"year": 2020}]}, ["tea", "oslo"]),
    ({"topic": "food", "year": 2020}, ["tea"]),
]


@pytest.mark.parametrize(("filters", "expected"), FILTER_CASES)
def test_metadata_filters(make_memory, filters, expected) -> None:
    memory = make_memory(ECHO)
    for text, meta in [("tea", {"topic": "food", "year": 2020}), ("cake", {"topic": "food", "year": 2022}),
                       ("oslo", {"topic": "travel", "year": 2021})]:
        memory.add(text, user_id="u", infer=False, metadata=meta)
    assert sorted(r.text for r in memory.get_all(user_id="u", filters=filters)) == sorted(expected)
    assert sorted(r.text for r in memory.search("tea cake oslo", user_id="u", filters=filters)) == sorted(expected)


@pytest.mark.parametrize(
    "filters",
    [{"topic": {"like": "x"}}, {"year": {"gt": "2020"}}, {"topic": {"in": []}}, {"AND": []}, {"_hash": "x"}, ["x"],
     {"topic": {"eq": {"a": 1}}}],
)
def test_bad_filters_raise(make_memory, filters) -> None:
    memory = make_memory(ECHO)
    memory.add("tea", user_id="u", infer=False)
    with pytest.raises(FilterError):
        memory.get_all(user_id="u", filters=filters)


def test_history_records_every_mutation(make_memory) -> None:
    memory = make_memory({
        "extraction": [json.dumps({"facts": ["Likes tea"]}), json.dumps({"facts": ["Likes green tea"]})],
        "update": [json.dumps({"memory": [{"id": "0", "text": "Likes green tea", "event": "UPDATE"}]})],
    })
    (added,) = memory.add("tea", user_id="u")
    memory.add("green tea", user_id="u")
    memory.update(added.id, "Likes matcha", user_id="u")
    memory.delete(added.id, user_id="u")
    trail = [(h.event, h.old_text, h.new_text) for h in memory.history(added.id, user_id="u")]
    assert trail == [
        ("ADD", None, "Likes tea"),
        ("UPDATE", "Likes tea", "Likes green tea"),
        ("UPDATE", "Likes green tea", "Likes matcha"),
        ("DELETE", "Likes matcha", None),
    ]
    assert memory.history(added.id, user_id="other") == []


def test_export_import_round_trip_is_exact(make_memory, tmp_path) -> None:
    memory = make_memory(ECHO, persistent=True)
    memory.add("Likes tea", user_id="u", metadata={"topic": "food", "score": 0.5, "pinned": True})
    memory.add([{"role": "user", "content": "Lives in Oslo"}], user_id="u", infer=False,
               timestamp="2023-01-02T03:04:05+00:00")
    memory.update(memory.get_all(user_id="u")[0].id, "Likes green tea", user_id="u")
    before = memory.get_all(user_id="u")
    path = tmp_path / "u.jsonl"
    assert memory.export(path, user_id="u") == 2
    assert memory.delete_all(user_id="u") == 2 and memory.get_all(user_id="u") == []
    assert memory.import_(path, keep_scopes=True) == 2
    assert memory.get_all(user_id="u") == before
    # into another scope, from a stream
    buffer = io.StringIO()
    memory.export(buffer, user_id="u")
    memory.import_(io.StringIO(buffer.getvalue()), user_id="copy")
    copied = memory.get_all(user_id="copy")
    assert [(r.id, r.text, r.metadata, r.created_at) for r in copied] == [
        (r.id, r.text, r.metadata, r.created_at) for r in before
    ]
    assert all(r.user_id == "copy" for r in copied)


def test_import_rejects_malformed_lines(make_memory) -> None:
    from memlora_engine.errors import InvalidInputError

    memory = make_memory(ECHO)
    with pytest.raises(InvalidInputError, match="line 2"):
        memory.import_(['{"id": "1", "text": "a", "created_at": "x", "user_id": "u"}', "{not json"], user_id="u")


def test_a_file_never_chooses_whose_memories_it_writes(make_memory) -> None:
    from memlora_engine.errors import InvalidInputError

    memory = make_memory(ECHO)
    (victim,) = memory.add("Alice's own memory", user_id="alice", infer=False)
    forged = json.dumps({"id": victim.id, "text": "planted", "created_at": "2024-01-01T00:00:00+00:00",
                         "user_id": "alice"})
    with pytest.raises(InvalidInputError, match="keep_scopes"):
        memory.import_([forged])
    with pytest.raises(InvalidInputError, match="keep_scopes"):
        memory.import_([forged], user_id="mallory", keep_scopes=True)
    assert [r.text for r in memory.get_all(user_id="alice")] == ["Alice's own memory"]
    assert memory.import_([forged], user_id="mallory") == 1  # into the caller's own scope
    assert [r.text for r in memory.get_all(user_id="alice")] == ["Alice's own memory"]
    # An operator's restore replaces by id, and the history says so.
    assert memory.import_([forged], keep_scopes=True) == 1
    assert [(h.event, h.old_text, h.new_text) for h in memory.history(victim.id, user_id="alice")][-1] == (
        "UPDATE", "Alice's own memory", "planted")


def _run(code: str, data_dir: Path) -> str:
    script = textwrap.dedent(
        f"""
        import json, sys
        from memlora_engine import Memory, MemoryConfig
        from memlora_engine.testing import DeterministicEmbedder, ScriptedGenerator
        memory = Memory(MemoryConfig(data_dir={str(data_dir)!r}), generator=ScriptedGenerator({{}}),
                        embedder=DeterministicEmbedder())
        """
    ) + textwrap.dedent(code)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_memories_survive_a_process_restart(tmp_path) -> None:
    data_dir = tmp_path / "store"
    _run("memory.add('Lives in Oslo', user_id='alice', infer=False)", data_dir)
    memory = Memory(MemoryConfig(data_dir=data_dir), generator=ScriptedGenerator({}), embedder=DeterministicEmbedder())
    (record,) = memory.get_all(user_id="alice")
    assert record.text == "Lives in Oslo"
    assert memory.search("Oslo", user_id="alice")[0].id == record.id
    assert [h.event for h in memory.history(record.id, user_id="alice")] == ["ADD"]
    memory.update(record.id, "Lives in Bergen", user_id="alice")
    out = _run("print(json.dumps([r.text for r in memory.get_all(user_id='alice')]))", data_dir)
    assert json.loads(out) == ["Lives in Bergen"]


def _files_containing(root: Path, needle: bytes) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_delete_all_leaves_no_text_on_disk(make_memory, tmp_path) -> None:
    memory = make_memory(ECHO, data_dir=tmp_path / "store")
    secret = "Zanzibar-7731 is Alice's secret"
    (event,) = memory.add(secret, user_id="alice")
    memory.update(event.id, secret + " (updated)", user_id="alice")
    memory.append_chat("s1", [{"role": "user", "content": secret}], user_id="alice")
    memory.add("Bob keeps Kilimanjaro-4410", user_id="bob", infer=False)
    assert _files_containing(tmp_path / "store", b"Zanzibar-7731")  # it really was written
    assert memory.delete_all(user_id="alice") == 1
    assert _files_containing(tmp_path / "store", b"Zanzibar-7731") == []
    assert memory.get_all(user_id="alice") == [] and memory.history(event.id, user_id="alice") == []
    assert memory.chat_messages("s1", user_id="alice") == []
    assert [r.text for r in memory.get_all(user_id="bob")] == ["Bob keeps Kilimanjaro-4410"]
    assert _files_containing(tmp_path / "store", b"Kilimanjaro-4410")


def test_a_superseded_text_leaves_disk_when_its_user_is_forgotten(make_memory, tmp_path) -> None:
    # The model UPDATEs the secret away; its text stays, as a superseded record in a second collection.
    secret, later = "Alice hid the key at Zanzibar-7731.", "Alice moved the key to the shed."
    script = {"extraction": echo_facts, "update": [json.dumps({"memory": [{"id": "0", "text": later,
                                                                            "event": "UPDATE"}]})]}
    memory = make_memory(script, data_dir=tmp_path / "store")
    memory.add(secret, user_id="alice")
    (event,) = memory.add(later, user_id="alice")
    memory.add("Bob keeps Kilimanjaro-4410", user_id="bob", infer=False)
    assert event.event.value == "UPDATE" and [r.text for r in memory.get_all(user_id="alice")] == [later]
    assert [r.text for r in memory.store.list(Scope("alice"), superseded=True)] == [later, secret]
    assert memory.forget(user_id="alice") == 1
    assert _files_containing(tmp_path / "store", b"Zanzibar-7731") == []
    assert memory.store.list(Scope("alice"), superseded=True) == []
    assert [s.key for s in memory.scopes()] == [Scope("bob").key]


def test_reset_forgets_every_scope(make_memory) -> None:
    memory = make_memory(ECHO)
    memory.add("a", user_id="u1", infer=False)
    memory.add("b", agent_id="agent", infer=False)
    memory.reset()
    assert memory.get_all(user_id="u1") == [] and memory.get_all(agent_id="agent") == []


def test_two_in_memory_stores_do_not_share(embedder) -> None:
    first = Memory(MemoryConfig(store="memory"), embedder=embedder)
    second = Memory(MemoryConfig(store="memory"), embedder=embedder)
    first.add("only in the first", user_id="u", infer=False)
    assert second.get_all(user_id="u") == []


async def test_async_twin_delegates(make_memory) -> None:
    memory = AsyncMemory(memory=make_memory({**ECHO, "generation": ["Oslo"]}))
    (event,) = await memory.add("Lives in Oslo", user_id="u")
    assert (await memory.get(event.id, user_id="u")).text == "Lives in Oslo"
    assert [r.id for r in await memory.search("Oslo", user_id="u")] == [event.id]
    assert (await memory.answer("Where?", user_id="u")).text == "Oslo"
    assert await memory.delete_all(user_id="u") == 1
    assert AsyncMemory.add.__doc__ == Memory.add.__doc__


def test_chat_sessions_are_scoped_and_persisted(make_memory, tmp_path) -> None:
    memory = make_memory(ECHO, data_dir=tmp_path / "store")
    memory.append_chat("s", [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}], user_id="a")
    again = Memory(memory.config, generator=ScriptedGenerator({}), embedder=DeterministicEmbedder())
    assert [m["content"] for m in again.chat_messages("s", user_id="a")] == ["hi", "hello"]
    assert again.chat_messages("s", user_id="b") == []
    assert [m["content"] for m in again.chat_messages("s", user_id="a", limit=1)] == ["hello"]


def test_unused_vector_index_capacity_is_scrubbed(tmp_path) -> None:
    """Chroma persists its whole preallocated HNSW buffer; slots past the count are heap garbage."""
    import struct

    from memlora_engine.store._chroma_disk import scrub_hnsw as _scrub_hnsw

    capacity, count, width = 4, 1, 16
    header = struct.pack("<I", 1) + struct.pack("<QQQQ", 0, capacity, count, width) + bytes(64)
    (tmp_path / "header.bin").write_bytes(header)
    live = b"L" * width
    garbage = (b"alice's secret.." * capacity)[: (capacity - count) * width]
    (tmp_path / "data_level0.bin").write_bytes(live + garbage)
    (tmp_path / "length.bin").write_bytes(b"\x01\x00\x00\x00" + b"SECRET" * 2)
    _scrub_hnsw(tmp_path)
    assert (tmp_path / "data_level0.bin").read_bytes() == live + bytes((capacity - count) * width)
    assert (tmp_path / "length.bin").read_bytes() == b"\x01\x00\x00\x00" + bytes(12)
    (tmp_path / "header.bin").write_bytes(struct.pack("<I", 2) + bytes(96))  # unknown format: untouched
    (tmp_path / "data_level0.bin").write_bytes(live + garbage)
    _scrub_hnsw(tmp_path)
    assert (tmp_path / "data_level0.bin").read_bytes() == live + garbage


def test_the_test_embedder_never_cancels_a_text_to_the_zero_vector() -> None:
    # With signed hashing "thread2" and "note178" share a bucket with opposite signs;
    # a zero vector would make the memory unfindable by any search.
    from memlora_engine.testing import DeterministicEmbedder

    embedder = DeterministicEmbedder(384)
    for text in ("thread2 note178", "wb item122 markerwb122"):
        (vector,) = embedder.embed([text])
        assert sum(v != 0 for v in vector) == len(text.split())
        assert abs(sum(v * v for v in vector) - 1.0) < 1e-9


def test_vector_index_is_persisted_at_every_buffer_flush(tmp_path) -> None:
    # Chroma's default (persist every 1000 records) lost searchable records across
    # reopens; see tests/reliability/test_rel_reopen.py. Old collections are upgraded.
    memory = Memory(MemoryConfig(data_dir=tmp_path), generator=ScriptedGenerator({}), embedder=DeterministicEmbedder())
    memory.add("Lives in Oslo", user_id="alice", infer=False)
    store = memory.store
    col = store._collection(Scope("alice"), create=False)
    assert col.configuration["hnsw"]["sync_threshold"] == 100
    col.modify(configuration={"hnsw": {"sync_threshold": 1000}})  # as created by an older release
    reopened = Memory(MemoryConfig(data_dir=tmp_path), generator=ScriptedGenerator({}), embedder=DeterministicEmbedder())
    reopened.store._collections.clear()
    assert reopened.search("Oslo", user_id="alice")[0].text == "Lives in Oslo"
    col = reopened.store._client.get_collection(store.collection_name(Scope("alice")), embedding_function=None)
    assert col.configuration["hnsw"]["sync_threshold"] == 100


@pytest.mark.parametrize(
    "scope",
    [Scope("alice"), Scope(None, "agent"), Scope(None, None, "run"), Scope("a|b", "1:2", "-"), Scope("-", None, "|x|")],
    ids=["user", "agent", "run", "separators", "dashes"],
)
def test_scope_keys_parse_back(scope) -> None:
    assert Scope.from_key(scope.key) == scope


@pytest.mark.parametrize("key", ["", "5:ab|-|-", "-|-", "-|-|-|", "x|-|-"])
def test_malformed_scope_keys_are_refused(key) -> None:
    from memlora_engine.errors import ScopeError

    with pytest.raises(ScopeError):
        Scope.from_key(key)


def test_forget_reaches_every_scope_of_a_user(make_memory) -> None:
    memory = make_memory({"extraction": ['{"facts": []}']})
    alice = [{"user_id": "alice"}, {"user_id": "alice", "agent_id": "travel"}, {"user_id": "alice", "run_id": "r1"}]
    for scope in alice:
        memory.add("Alice's secret", infer=False, **scope)
    memory.append_chat("s", {"role": "user", "content": "chat only"}, user_id="alice", agent_id="chat-only")
    memory.add("Bob's note", infer=False, user_id="bob")
    memory.add("agent-wide note", infer=False, agent_id="travel")
    assert [s.as_dict() for s in memory.scopes(user_id="alice")] == sorted(
        [*alice, {"user_id": "alice", "agent_id": "chat-only"}], key=lambda d: Scope(**d).key)
    assert memory.delete_all(user_id="alice") == 1  # the exact scope only
    assert len(memory.scopes(user_id="alice")) == 3
    assert memory.forget(user_id="alice") == 2
    assert memory.scopes(user_id="alice") == []
    for scope in alice:
        assert memory.get_all(**scope) == [] and memory.history_store.scopes().isdisjoint({Scope(**scope)})
    assert memory.chat_messages("s", user_id="alice", agent_id="chat-only") == []
    assert [r.text for r in memory.get_all(user_id="bob")] == ["Bob's note"]
    assert [r.text for r in memory.get_all(agent_id="travel")] == ["agent-wide note"]
    with pytest.raises(ScopeError):
        memory.forget()


def test_put_writes_under_the_callers_id_and_replaces_it(make_memory) -> None:
    memory = make_memory()
    added = memory.put("prefs", "Likes green tea", user_id="u", metadata={"topic": "food", "old": True})
    assert (added.id, added.event.value) == ("prefs", "ADD")
    memory.put("twin", "Likes green tea", user_id="u")  # a keyed write: the same text twice is kept
    first = memory.get("prefs", user_id="u")
    changed = memory.put("prefs", "Likes black coffee", user_id="u", metadata={"topic": "drinks"})
    assert (changed.event.value, changed.old_memory) == ("UPDATE", "Likes green tea")
    now = memory.get("prefs", user_id="u")
    assert now.text == "Likes black coffee"
    assert now.metadata == {"topic": "drinks"}  # replaced, not merged
    assert now.created_at == first.created_at and now.updated_at is not None
    assert sorted(r.id for r in memory.get_all(user_id="u")) == ["prefs", "twin"]
    assert [r.id for r in memory.search("black coffee", user_id="u", limit=1)] == ["prefs"]
    assert [h.event for h in memory.history("prefs", user_id="u")] == ["ADD", "UPDATE"]
    assert memory.get("prefs", user_id="other") is None


@pytest.mark.parametrize(("memory_id", "text"), [("", "text"), ("k", "  "), ("k", 3)])
def test_put_refuses_an_empty_id_or_text(make_memory, memory_id, text) -> None:
    with pytest.raises(InvalidInputError):
        make_memory().put(memory_id, text, user_id="u")


async def test_async_put_delegates(make_memory) -> None:
    memory = AsyncMemory(memory=make_memory())
    assert (await memory.put("k", "Lives in Oslo", user_id="u")).event.value == "ADD"
    assert (await memory.get("k", user_id="u")).text == "Lives in Oslo"
    assert AsyncMemory.put.__doc__ == Memory.put.__doc__


def test_new_memory_ids_follow_scope_and_text_and_never_overwrite_an_updated_memory(make_memory) -> None:
    from memlora_engine.repository import new_memory_id, text_hash

    memory = make_memory()
    (first,) = memory.add("Likes tea", user_id="alice", infer=False)
    assert first.id == new_memory_id(Scope("alice"), text_hash("Likes tea"))
    (other,) = memory.add("Likes tea", user_id="bob", infer=False)
    assert other.id != first.id  # the scope is part of the id
    memory.update(first.id, "Likes coffee", user_id="alice")
    (again,) = memory.add("Likes tea", user_id="alice", infer=False)
    assert again.id != first.id  # that id now holds "Likes coffee", which stays
    assert sorted(r.text for r in memory.get_all(user_id="alice")) == ["Likes coffee", "Likes tea"]

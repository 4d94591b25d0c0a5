"""Everything shared in server mode: a real ``chroma run`` and a real PostgreSQL, workers in separate processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from memlora_engine import Memory, MemoryConfig
from memlora_engine.commands._loopback import ChromaServer
from memlora_engine.errors import ConfigError, StorageError
from memlora_engine.history import HistoryStore
from memlora_engine.sessions import SessionStore
from memlora_engine.testing import DeterministicEmbedder, ScriptedGenerator
from memlora_engine.types import HistoryEntry, Scope

pytestmark = pytest.mark.server

_WORKER = Path(__file__).with_name("_shared_worker.py")
_ROOT = Path(__file__).parent.parent


def _config(port: int, namespace: str, database_url: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"store": "http", "chroma_host": "127.0.0.1", "chroma_port": port, "namespace": namespace,
            "database_url": database_url, **extra}


def _memory(config: dict[str, Any], **script: Any) -> Memory:
    return Memory(MemoryConfig.from_dict(config), generator=ScriptedGenerator(script), embedder=DeterministicEmbedder())


def _worker(config: dict[str, Any], *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(_ROOT)}
    return subprocess.Popen([sys.executable, str(_WORKER), json.dumps(config), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=_ROOT, env=env)


def _result(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def test_a_worker_sees_chat_and_history_written_by_another(chroma_server, postgres, tmp_path) -> None:
    config = _config(chroma_server, "share1", postgres.url)
    memory_id = _result(_worker(config, "write"))["id"]
    seen_by_b = _result(_worker(config, "update", memory_id))
    assert [m["content"] for m in seen_by_b["chat"]] == ["hi from A"]
    # A third process (this one) sees both workers' history of the memory, and its current text.
    memory = _memory(config)
    assert [(e.event, e.new_text) for e in memory.history(memory_id, user_id="alice")] == [
        ("ADD", "Lives in Oslo"), ("UPDATE", "Lives in Bergen")]
    assert memory.get(memory_id, user_id="alice").text == "Lives in Bergen"
    assert memory.chat_messages("s1", user_id="bob") == []
    # Forgetting alice forgets her rows on the server, for every worker.
    memory.delete_all(user_id="alice")
    assert memory.history(memory_id, user_id="alice") == [] and memory.chat_messages("s1", user_id="alice") == []
    memory.close()


@pytest.mark.parametrize("shared_database", [True, False], ids=["postgres", "local-sqlite"])
def test_concurrent_duplicate_adds_store_each_fact_once(chroma_server, postgres, tmp_path, shared_database) -> None:
    """Four workers add the same facts to one scope at the same moment: each is stored once.

    With PostgreSQL the workers take the scope lock in turn (advisory locks); with
    only their own SQLite files nothing serialises them, and the deterministic ids
    (scope + text hash) make their writes land on one record.
    """
    namespace = f"dup{int(shared_database)}"
    start_at = f"{time.time() + 15:.3f}"  # every worker imported and connected by then
    procs = []
    for n in range(4):
        config = _config(chroma_server, namespace, postgres.url if shared_database else None,
                         data_dir=None if shared_database else str(tmp_path / f"w{n}"))
        procs.append(_worker(config, "dup", start_at, "6"))
    events = [_result(p)["events"] for p in procs]
    memory = _memory(_config(chroma_server, namespace, postgres.url if shared_database else None,
                             data_dir=None if shared_database else str(tmp_path / "reader")))
    texts = sorted(r.text for r in memory.get_all(user_id="dup"))
    assert texts == [f"Shared fact number {i}" for i in range(6)]
    assert sum(len(e) for e in events) >= 6  # the facts were written by someone
    if shared_database:  # serialised: exactly one ADD per fact in the whole shared history
        history = [e for r in memory.get_all(user_id="dup") for e in memory.history(r.id, user_id="dup")]
        assert [e.event for e in history] == ["ADD"] * 6
    memory.close()


def test_chroma_server_loss_is_a_storage_error_and_its_restart_is_picked_up(postgres, tmp_path) -> None:
    server = ChromaServer.launch(tmp_path / "chroma")
    try:
        memory = _memory(_config(server.port, "restart", postgres.url), extraction=['{"facts": ["Likes tea"]}'])
        (event,) = memory.add("I like tea", user_id="carol")
        server.stop()
        with pytest.raises(StorageError, match="Chroma"):
            memory.search("tea", user_id="carol")
        with pytest.raises(StorageError, match="Chroma"):
            memory.add("note", user_id="carol", infer=False)
        server.start()  # same port, same data: the worker goes on without a restart
        assert [r.id for r in memory.search("tea", user_id="carol")] == [event.id]
        memory.add("note", user_id="carol", infer=False)
        assert len(memory.get_all(user_id="carol")) == 2
        memory.close()
    finally:
        server.stop()


def test_postgres_loss_is_a_storage_error_and_its_restart_is_picked_up(chroma_server, postgres) -> None:
    memory = _memory(_config(chroma_server, "pgrestart", postgres.url))
    memory.append_chat("s", "before", user_id="dave")
    postgres.stop()
    try:
        with pytest.raises(StorageError, match="database"):
            memory.chat_messages("s", user_id="dave")
        with pytest.raises(StorageError, match="database"):
            memory.add("a note", user_id="dave", infer=False)
    finally:
        postgres.start()
    memory.append_chat("s", "after", user_id="dave")
    assert [m["content"] for m in memory.chat_messages("s", user_id="dave")] == ["before", "after"]
    memory.add("a note", user_id="dave", infer=False)
    assert [r.text for r in memory.get_all(user_id="dave")] == ["a note"]
    memory.close()


def test_history_and_sessions_on_postgres_keep_the_sqlite_contract(postgres) -> None:
    history, sessions = HistoryStore(postgres.url), SessionStore(postgres.url)
    alice, bob = Scope("pg-alice"), Scope("pg-bob")
    first = history.begin(alice, [], [], [HistoryEntry("m1", "ADD", None, "x", "2026-01-01")])
    second = history.begin(bob, [], [], [HistoryEntry("m2", "ADD", None, "y", "2026-01-01")])
    assert [b.batch_id for b in history.pending() if b.batch_id in (first, second)] == [first, second]
    generation = history.generation()
    history.commit(first)
    history.commit(first)  # a second commit of the same batch writes nothing
    history.abort(second)
    assert history.generation() == generation + 1
    assert [(e.memory_id, e.event, e.user_id) for e in history.entries(alice)] == [("m1", "ADD", "pg-alice")]
    assert history.entries(bob) == []
    sessions.append(alice, "s", [{"role": "user", "content": "hi", "extra": {"k": 1}}], "2026-01-01")
    sessions.append(alice, "s", [{"role": "assistant", "content": "hello", "name": "bot"}], "2026-01-02")
    assert sessions.messages(alice, "s", limit=1) == [
        {"role": "assistant", "content": "hello", "name": "bot", "created_at": "2026-01-02"}]
    assert sessions.messages(alice, "s")[0]["extra"] == {"k": 1}
    assert alice in sessions.scopes() and alice in history.scopes()
    assert history.forget(alice) == 1 and sessions.clear(alice) == 2
    assert history.entries(alice) == [] and sessions.messages(alice, "s") == []
    history.close()
    sessions.close()


def test_server_mode_writes_nothing_under_home(chroma_server, postgres, tmp_path, monkeypatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    with _memory(_config(chroma_server, "nohome", postgres.url)) as memory:
        memory.add("a note", user_id="erin", infer=False)
        memory.append_chat("s", "hi", user_id="erin")
    with pytest.warns(UserWarning, match="database_url"), _memory(_config(chroma_server, "nohome")) as memory:
        memory.add("a note", user_id="erin", infer=False)
        assert memory.history_store.path == ":memory:"
    assert list(home.iterdir()) == []


def test_database_url_is_checked() -> None:
    with pytest.raises(ConfigError, match="database_url"):
        MemoryConfig(database_url="mysql://localhost/x")
    assert MemoryConfig(database_url="postgresql://u@h/db").database_url == "postgresql://u@h/db"

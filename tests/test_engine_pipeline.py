"""The add pipeline on real Chroma with scripted model output.

Every test runs twice: with the scripted generator in process, and with the same
script served by ``memlora serve``'s app on loopback and reached through
:class:`~memlora_engine.remote.OpenAICompatibleGenerator` (a remote expert behaves
like the local one).
"""

from __future__ import annotations

import json

import pytest

from memlora_engine import Event, Memory, MemoryConfig
from memlora_engine.answering import superseded_listing
from memlora_engine.errors import ConfigError, GeneratorError, InvalidInputError, MetadataError, ScopeError
from memlora_engine.generator import GenerationRequest
from memlora_engine.testing import DeterministicEmbedder, ScriptedGenerator
from memlora_engine.types import MemoryRecord, Scope

serve_helpers = pytest.importorskip("serve_helpers")


@pytest.fixture(scope="module")
def scripted_server():
    """One loopback server for the module; each test plugs its own script into the switchboard."""
    pytest.importorskip("starlette")
    pytest.importorskip("uvicorn")
    from memlora_engine.serving import create_app

    switchboard = serve_helpers.Switchboard()
    with serve_helpers.LoopbackServer(create_app(switchboard, models=serve_helpers.ALL_MODELS)) as server:
        yield switchboard, server.url


@pytest.fixture(params=["in-process", "remote"])
def make_memory(request, make_memory):
    """The conftest's ``make_memory``; for "remote", its generator is served over HTTP."""
    if request.param == "in-process":
        return make_memory
    switchboard, url = request.getfixturevalue("scripted_server")

    def build(script=None, **kwargs) -> Memory:
        memory = make_memory(script, **kwargs)
        switchboard.current = memory.generator
        memory.generator = serve_helpers.ScriptedRemote(url, memory.generator, max_retries=0)
        return memory

    return build


def facts(*items: str) -> str:
    return json.dumps({"facts": list(items)})


def ops(*items: dict) -> str:
    return json.dumps({"memory": list(items)})


def seeded(make_memory, update_output: str, *, extra_facts=("Likes green tea",),
           **config) -> tuple[Memory, dict[str, str]]:
    """A memory holding 'Likes tea' and 'Lives in Oslo'; the next add gets ``update_output``."""
    memory = make_memory({
        "extraction": [facts("Likes tea", "Lives in Oslo"), facts(*extra_facts)],
        "update": [update_output],
    }, **config)
    ids = {e.text: e.id for e in memory.add("I like tea and live in Oslo", user_id="alice")}
    return memory, ids


def test_first_add_stores_facts_without_an_update_call(make_memory) -> None:
    memory = make_memory({"extraction": [facts("Likes tea", "Lives in Oslo")]})
    result = memory.add("I like tea and I live in Oslo", user_id="alice")
    assert [(e.event, e.text) for e in result] == [(Event.ADD, "Likes tea"), (Event.ADD, "Lives in Oslo")]
    assert sorted(r.text for r in memory.get_all(user_id="alice")) == ["Likes tea", "Lives in Oslo"]
    assert [c.operation.value for c in memory.generator.calls] == ["extraction"]


@pytest.mark.parametrize(
    ("update_output", "expected_events", "expected_texts"),
    [
        (
            ops({"id": "0", "text": "Likes green tea", "event": "UPDATE", "old_memory": "Likes tea"}),
            [(Event.UPDATE, "Likes green tea", "Likes tea")],
            ["Likes green tea", "Lives in Oslo"],
        ),
        (
            ops({"id": "0", "text": "Likes tea", "event": "DELETE"}),
            [(Event.DELETE, "Likes tea", "Likes tea")],
            ["Lives in Oslo"],
        ),
        (
            ops({"id": "0", "text": "Likes tea", "event": "NONE"}, {"id": "1", "text": "Lives in Oslo", "event": "NONE"}),
            [],
            ["Likes tea", "Lives in Oslo"],
        ),
        (
            ops({"id": "2", "text": "Likes green tea", "event": "ADD"}),
            [(Event.ADD, "Likes green tea", None)],
            ["Likes green tea", "Likes tea", "Lives in Oslo"],
        ),
    ],
    ids=["update", "delete", "none", "add"],
)
def test_update_events_are_applied(make_memory, update_output, expected_events, expected_texts) -> None:
    memory, _ = seeded(make_memory, update_output)
    result = memory.add("Actually I like green tea", user_id="alice")
    assert [(e.event, e.text, e.old_memory) for e in result] == expected_events
    assert sorted(r.text for r in memory.get_all(user_id="alice")) == expected_texts


def test_model_sees_small_ids_and_events_carry_real_ids(make_memory) -> None:
    memory, ids = seeded(make_memory, ops({"id": "0", "text": "Likes green tea", "event": "UPDATE"}))
    result = memory.add("Actually I like green tea", user_id="alice")
    update_prompt = memory.generator.calls[-1].messages[-1]["content"]
    for real_id in ids.values():
        assert real_id not in update_prompt
    assert '"id": "0"' in update_prompt
    (event,) = result.events
    assert event.id == ids["Likes tea"]  # "0" mapped back to the real id
    assert memory.get(event.id, user_id="alice").text == "Likes green tea"


@pytest.mark.parametrize(
    ("bad_op", "reason"),
    [
        ({"id": "7", "text": "x", "event": "UPDATE"}, "unknown_id"),
        ({"id": "0", "event": "UPDATE"}, "missing_text"),
        ({"id": "0", "text": "x", "event": "OVERWRITE"}, "unknown_event"),
    ],
)
def test_invalid_ops_are_rejected_counted_and_not_applied(make_memory, bad_op, reason) -> None:
    # "ignore": the fact the rejected op spoke of is not kept either (the "add" policy is tested below).
    # The DELETE of Oslo for a fact about tea is what the masked update check refuses; it is off here,
    # where the valid op must apply beside the invalid one.
    memory, _ = seeded(make_memory, ops(bad_op, {"id": "1", "text": "Lives in Oslo", "event": "DELETE"}),
                       uncovered_facts="ignore", update_min_similarity=None)
    result = memory.add("Actually I like green tea", user_id="alice")
    assert [r["reason"] for r in result.rejected] == [reason]
    assert [(e.event, e.text) for e in result] == [(Event.DELETE, "Lives in Oslo")]  # the valid op still applies
    assert [r.text for r in memory.get_all(user_id="alice")] == ["Likes tea"]
    assert memory.stats["update"].rejected_ops == 1


@pytest.mark.parametrize(
    ("new_facts", "update_output", "policy", "expected_events", "uncovered", "duplicates"),
    [
        # The update output re-adds an old memory and says nothing of the new fact.
        (["Has a dog named Rex"], ops({"id": "2", "text": "Likes tea", "event": "ADD"}), "add",
         [(Event.ADD, "Has a dog named Rex")], 1, 1),
        (["Has a dog named Rex"], ops({"id": "2", "text": "Likes tea", "event": "ADD"}), "ignore", [], 1, 1),
        # An empty decision list leaves every fact undecided.
        (["Has a dog named Rex", "Plays chess"], ops(), "add",
         [(Event.ADD, "Has a dog named Rex"), (Event.ADD, "Plays chess")], 2, 0),
        # A rejected op decides nothing: its fact is kept by the "add" policy.
        (["Likes green tea"], ops({"id": "9", "text": "Likes green tea", "event": "UPDATE"}), "add",
         [(Event.ADD, "Likes green tea")], 1, 0),
        # Decided facts: a merged UPDATE, a DELETE naming only its id, a NONE.
        (["Likes green tea"], ops({"id": "0", "text": "Likes green tea", "event": "UPDATE"}), "add",
         [(Event.UPDATE, "Likes green tea")], 0, 0),
        (["No longer lives in Oslo"], ops({"id": "0", "event": "DELETE"}), "add",
         [(Event.DELETE, "Lives in Oslo")], 0, 0),
        (["Lives in Oslo"], ops({"id": "0", "text": "Lives in Oslo", "event": "NONE"}), "add", [], 0, 0),
        # An UPDATE that rewrites a memory to its own text changes nothing: it decides a
        # repeat (a changed value "updated" into its old value's memory: test_unchanged_updates).
        (["Lives in Oslo"], ops({"id": "0", "text": "Lives in Oslo", "event": "UPDATE"}), "add", [], 0, 0),
        # An ADD of the fact that is already stored is a NONE, counted.
        (["Likes tea"], ops({"id": "2", "text": "Likes tea", "event": "ADD"}), "add", [], 0, 1),
        # The same new text twice in one output is stored once (plan_operations drops the repeat).
        (["Plays chess"], ops({"id": "2", "text": "Plays chess", "event": "ADD"},
                              {"id": "3", "text": "Plays chess", "event": "ADD"}), "add",
         [(Event.ADD, "Plays chess")], 0, 0),
    ],
    ids=["readd-old-add", "readd-old-ignore", "empty-output", "rejected-op", "update", "delete-by-id", "none",
         "unchanged-update-of-a-repeat", "duplicate-of-stored", "duplicate-in-output"],
)
def test_no_fact_is_lost_silently(make_memory, new_facts, update_output, policy, expected_events, uncovered,
                                  duplicates) -> None:
    memory, _ = seeded(make_memory, update_output, extra_facts=new_facts, uncovered_facts=policy)
    result = memory.add("news", user_id="alice")
    assert [(e.event, e.text) for e in result] == expected_events
    stats = memory.stats["update"]
    assert (stats.uncovered_facts, stats.duplicate_adds) == (uncovered, duplicates)
    assert len(memory.get_all(user_id="alice")) == len({r.text for r in memory.get_all(user_id="alice")})


@pytest.mark.parametrize(
    ("old_fact", "new_fact", "setting", "expected_events", "kept", "uncovered", "unchanged"),
    [
        # The model names the memory the fact changes and copies its text: read as the UPDATE with the fact.
        ("Omar lives in Ghent.", "Omar moved to Valencia.", "fact", [(Event.UPDATE, "Omar moved to Valencia.")],
         ["Omar moved to Valencia."], 0, 1),
        # Read as it was written, it changes nothing: the fact is undecided and ADDed beside the old value.
        ("Omar lives in Ghent.", "Omar moved to Valencia.", "ignore", [(Event.ADD, "Omar moved to Valencia.")],
         ["Omar lives in Ghent.", "Omar moved to Valencia."], 1, 0),
        # The rewritten UPDATE is checked like any other: a fact about something else never overwrites the memory.
        ("Omar likes watching horror films.", "Omar's sister became a pilot.", "fact",
         [(Event.ADD, "Omar's sister became a pilot.")],
         ["Omar likes watching horror films.", "Omar's sister became a pilot."], 1, 1),
    ],
    ids=["change-read-as-update", "change-ignored", "unrelated-refused"],
)
def test_unchanged_updates(tmp_path, minilm, old_fact, new_fact, setting, expected_events, kept, uncovered,
                           unchanged) -> None:
    # One old memory (listed as "0"), which the update output "updates" to its own text; the real
    # embedder, since the rewritten UPDATE meets the masked check (update_min_similarity).
    generator = ScriptedGenerator({"extraction": [facts(old_fact), facts(new_fact)],
                                   "update": [ops({"id": "0", "text": old_fact, "event": "UPDATE"})]})
    memory = Memory(MemoryConfig(store="memory", data_dir=tmp_path, unchanged_updates=setting),
                    generator=generator, embedder=minilm)
    memory.add("first", user_id="omar")
    result = memory.add("news", user_id="omar")
    assert [(e.event, e.text) for e in result] == expected_events
    assert sorted(r.text for r in memory.get_all(user_id="omar")) == kept
    stats = memory.stats["update"]
    assert (stats.uncovered_facts, stats.unchanged_updates) == (uncovered, unchanged)


@pytest.mark.parametrize(
    ("new_fact", "none_id", "threshold", "expected_events", "rejected"),
    [
        # The NONE names the memory that says the fact: believed, nothing changes.
        ("Lives in Oslo", "0", 0.75, [], []),
        # The NONE calls a changed value known, naming the old value's memory: without
        # the check the new city is dropped with nothing counted; with it, it is kept.
        ("Lives in Bergen now", "0", 0.75, [(Event.ADD, "Lives in Bergen now")], ["unsupported_none"]),
        ("Lives in Bergen now", "0", None, [], []),
    ],
    ids=["none-names-the-fact", "none-names-another-memory", "check-off"],
)
def test_a_none_must_name_a_memory_that_says_the_fact(make_memory, new_fact, none_id, threshold, expected_events,
                                                       rejected) -> None:
    memory, _ = seeded(make_memory, ops({"id": none_id, "text": new_fact, "event": "NONE"}), extra_facts=(new_fact,),
                       none_min_similarity=threshold)
    result = memory.add("news", user_id="alice")
    update_prompt = memory.generator.calls[-1].messages[-1]["content"]
    assert '"id": "0",\n    "text": "Lives in Oslo"' in update_prompt  # the NONE names the Oslo memory
    assert [(e.event, e.text) for e in result] == expected_events
    assert [r["reason"] for r in result.rejected] == rejected
    stats = memory.stats["update"]
    assert (stats.rejected_ops, stats.uncovered_facts) == (len(rejected), len(rejected))


@pytest.mark.parametrize(
    ("old_fact", "new_fact", "threshold", "expected_events", "kept"),
    [
        # The UPDATE puts another attribute of the same person over the memory: rejected,
        # the memory kept and the fact ADDed as undecided.
        ("Omar likes watching horror films.", "Omar's sister became a pilot.", 0.15,
         [(Event.ADD, "Omar's sister became a pilot.")],
         ["Omar likes watching horror films.", "Omar's sister became a pilot."]),
        # Without the check the horror films are overwritten and lost.
        ("Omar likes watching horror films.", "Omar's sister became a pilot.", None,
         [(Event.UPDATE, "Omar's sister became a pilot.")], ["Omar's sister became a pilot."]),
        # A changed value of the memory's own attribute passes.
        ("Omar lives in Ghent.", "Omar moved to Valencia.", 0.15, [(Event.UPDATE, "Omar moved to Valencia.")],
         ["Omar moved to Valencia."]),
    ],
    ids=["other-attribute", "check-off", "same-attribute"],
)
def test_an_update_must_change_what_its_memory_is_about(tmp_path, minilm, old_fact, new_fact, threshold,
                                                         expected_events, kept) -> None:
    generator = ScriptedGenerator({
        "extraction": [facts(old_fact), facts(new_fact)],
        "update": [ops({"id": "0", "text": new_fact, "event": "UPDATE"})],
    })
    memory = Memory(MemoryConfig(store="memory", data_dir=tmp_path, update_min_similarity=threshold),
                    generator=generator, embedder=minilm)
    memory.add("first", user_id="omar")
    result = memory.add("news", user_id="omar")
    assert [(e.event, e.text) for e in result] == expected_events
    assert sorted(r.text for r in memory.get_all(user_id="omar")) == sorted(kept)
    rejected = ["unrelated_change"] if len(kept) == 2 else []
    assert [r["reason"] for r in result.rejected] == rejected
    stats = memory.stats["update"]
    assert (stats.rejected_ops, stats.uncovered_facts) == (len(rejected), len(rejected))


def test_none_min_similarity_is_checked() -> None:
    from memlora_engine import MemoryConfig
    from memlora_engine.errors import ConfigError

    for name in ("none_min_similarity", "update_min_similarity"):
        for bad in (1.5, True, "0.8"):
            with pytest.raises(ConfigError, match=name):
                MemoryConfig(store="memory", **{name: bad})


def test_garbled_update_output_applies_nothing_and_decides_no_fact(make_memory) -> None:
    memory, _ = seeded(make_memory, "not json at all", extra_facts=("Has a dog named Rex",))
    result = memory.add("news", user_id="alice")
    assert result.events == [] and not result.ok
    assert sorted(r.text for r in memory.get_all(user_id="alice")) == ["Likes tea", "Lives in Oslo"]
    stats = memory.stats["update"]
    assert (stats.parse_failures, stats.uncovered_facts, stats.duplicate_adds) == (1, 0, 0)


def test_uncovered_fact_policy_is_checked() -> None:
    from memlora_engine import MemoryConfig
    from memlora_engine.errors import ConfigError

    with pytest.raises(ConfigError, match="uncovered_facts"):
        MemoryConfig(store="memory", uncovered_facts="keep")


def test_op_naming_another_scopes_real_id_is_rejected(make_memory) -> None:
    bob_ids: list[str] = []
    memory = make_memory({
        "extraction": [facts("Bob secret"), facts("Likes tea"), facts("Likes coffee")],
        "update": lambda request: ops(
            {"id": bob_ids[0], "text": "pwned", "event": "UPDATE"}, {"id": bob_ids[0], "event": "DELETE"}
        ),
    })
    (bob_event,) = memory.add("secret", user_id="bob")
    bob_ids.append(bob_event.id)
    memory.add("tea", user_id="alice")
    result = memory.add("coffee", user_id="alice")
    assert {r["reason"] for r in result.rejected} == {"unknown_id"}
    assert memory.get(bob_event.id, user_id="bob").text == "Bob secret"


@pytest.mark.parametrize(
    ("stage", "garbage"),
    [("extraction", "I am a small model and I forgot the format"), ("update", "DELETE EVERYTHING")],
)
def test_unparseable_output_applies_nothing_and_is_counted(make_memory, stage, garbage) -> None:
    script = {"extraction": [facts("Likes tea", "Lives in Oslo"), facts("Likes green tea")], "update": [garbage]}
    if stage == "extraction":
        script["extraction"][1] = garbage
    memory = make_memory(script)
    memory.add("I like tea and live in Oslo", user_id="alice")
    before = memory.get_all(user_id="alice")
    result = memory.add("Actually I like green tea", user_id="alice")  # returns normally
    assert not result.ok and result.events == []
    assert memory.get_all(user_id="alice") == before
    assert memory.stats[stage].parse_failures == 1
    assert memory.stats.recent_failures[-1] == (stage, garbage)


def test_exact_duplicates_are_stored_once(make_memory) -> None:
    memory = make_memory({
        "extraction": [facts("Likes tea", "Likes  tea"), facts("Likes tea")],
        "update": [ops({"id": "9", "text": "Likes tea", "event": "ADD"})],
    })
    memory.add("tea", user_id="alice")
    memory.add("tea again", user_id="alice")
    assert [r.text for r in memory.get_all(user_id="alice")] == ["Likes tea"]


def test_infer_false_stores_raw_text_without_a_model_call(make_memory) -> None:
    memory = make_memory()
    result = memory.add(
        [{"role": "system", "content": "be nice"}, {"role": "user", "content": "Remember my locker is 42"}],
        user_id="alice", infer=False, metadata={"source": "note"},
    )
    assert [e.text for e in result] == ["Remember my locker is 42"]
    assert memory.generator.calls == []
    (record,) = memory.get_all(user_id="alice")
    assert record.metadata == {"source": "note"}


def test_prompts_get_the_session_date_and_style_follows_adapters(make_memory) -> None:
    generator = ScriptedGenerator({"extraction": [facts("Likes tea")]}, adapters=[])
    memory = make_memory(generator)
    memory.add([{"role": "user", "content": "I like tea", "name": "Caroline"}], user_id="a", timestamp="2023-05-08T13:56:00")
    system, user = generator.calls[0].messages
    assert "Today's date is 2023-05-08" in system["content"]  # base model -> Mem0's long prompt
    assert "Personal Information Organizer" in system["content"]
    assert user["content"].endswith("Caroline: I like tea")
    assert memory.get_all(user_id="a")[0].created_at.startswith("2023-05-08T13:56")
    assert generator.calls[0].json_schema is not None


def test_memlora_prompts_for_adapter_operations(make_memory) -> None:
    memory = make_memory({"extraction": [facts("Likes tea")]})
    memory.add("I like tea", user_id="a", timestamp="2024-01-02T00:00:00")
    system = memory.generator.calls[0].messages[0]["content"]
    assert "Today is 2024-01-02" in system and "Personal Information Organizer" not in system


def test_answer_uses_retrieved_memories(make_memory) -> None:
    seen: list[GenerationRequest] = []

    def answer(request: GenerationRequest) -> str:
        seen.append(request)
        return " Oslo \n"

    memory = make_memory({"extraction": [facts("Lives in Oslo", "Likes tea")], "generation": answer})
    memory.add("I live in Oslo", user_id="alice")
    result = memory.answer("Does she live in Oslo?", user_id="alice", limit=1)
    assert result.text == "Oslo"
    assert [m.text for m in result.memories] == ["Lives in Oslo"]
    assert "- Lives in Oslo" in seen[0].messages[-1]["content"]
    assert memory.stats["generation"].calls == 1


@pytest.mark.parametrize(("weight", "listed"), [
    (None, ["Lives in Oslo", "Lives in Oslo now", "Works in Oslo"]),  # plain similarity order
    (1.0, ["Lives in Oslo", "Lives in Oslo now", "Works in Oslo"]),  # all weight on similarity: the same
    (0.5, ["Lives in Oslo", "Works in Oslo", "Has a cat in Oslo"]),  # the near-copy gives way
])
def test_answer_mmr_keeps_near_copies_from_filling_the_listing(make_memory, weight, listed) -> None:
    memory = make_memory({"generation": ["Oslo"]}, answer_mmr=weight)
    memory.add_many(["Lives in Oslo", "Lives in Oslo now", "Works in Oslo", "Has a cat in Oslo", "Likes tea"],
                    user_id="alice")
    assert [m.text for m in memory.answer("Lives in Oslo?", user_id="alice", limit=3).memories] == listed


def test_max_marginal_relevance_picks_relevant_then_different() -> None:
    from memlora_engine.embeddings.base import max_marginal_relevance

    vectors = [[1.0, 0.0], [0.99, 0.14], [0.0, 1.0]]
    assert max_marginal_relevance([0.9, 0.89, 0.5], vectors, 2, 1.0) == [0, 1]
    assert max_marginal_relevance([0.9, 0.89, 0.5], vectors, 2, 0.5) == [0, 2]
    assert max_marginal_relevance([0.9, 0.89, 0.5], vectors, 5, 0.5) == [0, 2, 1]  # never more than there are
    assert max_marginal_relevance([], [], 3, 0.5) == []


def test_answer_mmr_is_checked() -> None:
    with pytest.raises(ConfigError, match="answer_mmr"):
        MemoryConfig(store="memory", answer_mmr=1.5)


def test_a_looping_answer_is_cut_back_to_its_items_and_counted(make_memory) -> None:
    loop = "fish, chicken, " * 12 + "fi"
    memory = make_memory({"extraction": [facts("Eats fish", "Eats chicken")], "generation": [loop, "fish"]})
    memory.add("I eat fish and chicken", user_id="alice")
    assert memory.answer("What does she eat?", user_id="alice").text == "fish, chicken"
    assert memory.answer("What does she eat?", user_id="alice").text == "fish"
    assert memory.stats["generation"].collapsed_loops == 1


def test_stats_count_tokens_and_time(make_memory) -> None:
    memory = make_memory({"extraction": [facts("Likes tea")]})
    memory.add("I like tea", user_id="alice")
    stats = memory.stats["extraction"]
    assert stats.calls == 1 and stats.input_tokens > 10 and stats.output_tokens == 3 and stats.seconds >= 0


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda m: m.add("hi"), ScopeError),
        (lambda m: m.search("hi"), ScopeError),
        (lambda m: m.get_all(), ScopeError),
        (lambda m: m.add("hi", user_id=""), ScopeError),
        (lambda m: m.add("hi", user_id=42), ScopeError),
        (lambda m: m.add(42, user_id="a"), InvalidInputError),
        (lambda m: m.add({"role": "wizard", "content": "x"}, user_id="a"), InvalidInputError),
        (lambda m: m.add("hi", user_id="a", metadata={"nested": {"x": 1}}), MetadataError),
        (lambda m: m.add("hi", user_id="a", metadata={"_hash": "x"}), MetadataError),
        (lambda m: m.search("hi", user_id="a", limit=0), InvalidInputError),
        (lambda m: m.add("hi", user_id="a", timestamp="yesterday"), InvalidInputError),
    ],
)
def test_bad_input_gets_a_clear_error(make_memory, call, error) -> None:
    with pytest.raises(error):
        call(make_memory({"extraction": [facts("x")]}))


def test_no_generator_is_a_clear_error(make_memory, embedder) -> None:
    memory = Memory(make_memory().config, embedder=embedder)
    with pytest.raises(GeneratorError, match="no generator configured"):
        memory.add("I like tea", user_id="a")
    assert memory.add("I like tea", user_id="a", infer=False).events  # raw storage needs no model


def replaced_event(tmp_path, minilm, **config) -> tuple[Memory, str]:
    """Caroline's support group, UPDATEd by the model into a pride parade (as small models do): one memory id."""
    old, new = "Caroline went to a support group on 7 May 2023.", "Caroline went to a pride parade on 2 July 2023."
    generator = ScriptedGenerator({"extraction": [facts(old), facts(new)],
                                   "update": [ops({"id": "0", "text": new, "event": "UPDATE"})],
                                   "generation": lambda request: "ok"})
    memory = Memory(MemoryConfig(store="memory", data_dir=tmp_path, **config), generator=generator, embedder=minilm)
    (added,) = memory.add("first", user_id="caro", timestamp="2023-05-08")
    (updated,) = memory.add("news", user_id="caro", timestamp="2023-07-03")
    assert (updated.event, updated.id) == (Event.UPDATE, added.id)
    return memory, added.id


@pytest.mark.parametrize(
    ("rule", "limit", "listed"),
    [
        # Both retrieved: the memory that replaced it answers; the replaced text is not listed.
        ("unless_successor", 10, ["Caroline went to a pride parade on 2 July 2023."]),
        # Only the replaced text retrieved (the question is about it): it is listed.
        ("unless_successor", 1, ["Caroline went to a support group on 7 May 2023."]),
        # It ranks above what replaced it: listed, in its place.
        ("below_successor", 10, ["Caroline went to a support group on 7 May 2023.",
                                 "Caroline went to a pride parade on 2 July 2023."]),
        ("off", 1, ["Caroline went to a pride parade on 2 July 2023."]),
    ],
    ids=["successor-retrieved", "alone", "below-successor", "off"],
)
def test_answer_lists_a_superseded_text_by_rule(tmp_path, minilm, rule, limit, listed) -> None:
    memory, memory_id = replaced_event(tmp_path, minilm, answer_superseded=rule)
    answer = memory.answer("When did Caroline go to the support group?", user_id="caro", limit=limit)
    assert [m.text for m in answer.memories] == listed
    prompt = memory.generator.calls[-1].messages[-1]["content"]
    assert all(text in prompt for text in listed)
    kept = [m for m in answer.memories if m.superseded_by is not None]
    assert all((m.superseded_by, m.created_at[:10]) == (memory_id, "2023-05-08") for m in kept)


def test_a_superseded_text_is_hidden_from_every_other_read(tmp_path, minilm) -> None:
    memory, memory_id = replaced_event(tmp_path, minilm)
    current = ["Caroline went to a pride parade on 2 July 2023."]
    assert [r.text for r in memory.get_all(user_id="caro")] == current
    assert [r.text for r in memory.search("support group", user_id="caro")] == current
    assert memory.store.count(memory.get_all(user_id="caro")[0].scope) == 1
    # The same text stored again is a new memory, not a duplicate of the superseded record.
    (again,) = memory.add("Caroline went to a support group on 7 May 2023.", user_id="caro", infer=False)
    assert again.event is Event.ADD and len(memory.get_all(user_id="caro")) == 2


@pytest.mark.parametrize("how", ["keep_superseded=False", "direct update", "delete", "forget"])
def test_superseded_texts_are_not_kept_or_go_with_their_memory(tmp_path, minilm, how) -> None:
    memory, memory_id = replaced_event(tmp_path, minilm, keep_superseded=how != "keep_superseded=False")
    if how == "direct update":
        memory.update(memory_id, "Caroline went to a poetry reading.", user_id="caro")
    elif how == "delete":
        memory.delete(memory_id, user_id="caro")
    elif how == "forget":
        memory.forget(user_id="caro")
    scope = Scope("caro")
    left = [r.text for r in memory.store.list(scope, superseded=True) if r.superseded_by is not None]
    expected = ["Caroline went to a support group on 7 May 2023."] if how == "direct update" else []
    assert left == expected  # a direct update keeps nothing of its own; the model's UPDATE before it stays


def test_export_and_import_carry_superseded_records(tmp_path, minilm) -> None:
    memory, memory_id = replaced_event(tmp_path, minilm)
    path = tmp_path / "caro.jsonl"
    assert memory.export(path, user_id="caro") == 2
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [line.get("superseded_by") for line in lines] == [None, memory_id]
    assert memory.import_(path, user_id="copy") == 2
    assert [r.text for r in memory.get_all(user_id="copy")] == ["Caroline went to a pride parade on 2 July 2023."]
    answer = memory.answer("When did Caroline go to the support group?", user_id="copy", limit=1)
    assert [(m.text, m.superseded_by) for m in answer.memories] == [
        ("Caroline went to a support group on 7 May 2023.", memory_id)]
    assert [h.event for h in memory.history(memory_id, user_id="copy")] == ["ADD"]  # no entry of its own
    with pytest.raises(InvalidInputError, match="superseded_by"):
        memory.import_([json.dumps({**lines[1], "superseded_by": 7})], user_id="bad")


def _ranked(*names: str) -> list[MemoryRecord]:
    """Candidates best first: "p<m" is a superseded record that memory "m" replaced."""
    return [MemoryRecord(id=n.split("<")[0], text=n, hash=n, created_at="2023-01-01",
                         superseded_by=n.split("<")[1] if "<" in n else None) for n in names]


@pytest.mark.parametrize(
    ("rule", "k", "candidates", "listed"),
    [
        # The memory that replaced it is listed: dropped, and the next candidate takes its place.
        ("unless_successor", 3, ["p<m", "m", "x", "y"], ["m", "x", "y"]),
        # Not among the k listed (ranked fourth): kept, in its place.
        ("unless_successor", 3, ["p<m", "x", "y", "m"], ["p<m", "x", "y"]),
        # A refill brings in another superseded record, kept while its successor is not listed.
        ("unless_successor", 2, ["q<m", "m", "r<x", "x", "y"], ["m", "r<x"]),
        ("unless_successor", 3, ["p<m", "m"], ["m"]),
        ("below_successor", 3, ["p<m", "m", "x"], ["p<m", "m", "x"]),
        ("below_successor", 3, ["m", "p<m", "x", "y"], ["m", "x", "y"]),
        ("off", 2, ["p<m", "m", "x"], ["m", "x"]),
    ],
    ids=["successor-listed", "successor-not-listed", "refill", "few-candidates", "below-kept", "below-dropped",
         "off"],
)
def test_superseded_listing(rule, k, candidates, listed) -> None:
    assert [m.text for m in superseded_listing(_ranked(*candidates), rule, k)] == listed


def _camping_memory(tmp_path, minilm, weight) -> Memory:
    """Cleo's meteor-shower memory, whose text says little of the turn it came from, beside a camping one."""
    generator = ScriptedGenerator({"extraction": [facts("Cleo saw the Perseids in 2022."),
                                                  facts("Cleo went camping by the lake.")],
                                   "update": [ops({"id": "new", "text": "Cleo went camping by the lake.",
                                                   "event": "ADD"})]})
    memory = Memory(MemoryConfig(store="memory", data_dir=tmp_path, source_weight=weight), generator=generator,
                    embedder=minilm)
    for turn in ("Best camping memory: lying by the lake watching the meteor shower in 2022, I felt tiny in the "
                 "universe.", "We went camping by the lake last week."):
        memory.add([{"role": "user", "name": "Cleo", "content": turn},
                    {"role": "assistant", "name": "Dev", "content": "Wow."}], user_id="u")  # "Wow." is not read alone
    return memory


def test_a_memory_is_found_by_the_conversation_it_was_extracted_from(tmp_path, minilm) -> None:
    question = "How did Cleo feel watching the meteor shower?"
    scores = {}
    for weight in (0.7, None):
        memory = _camping_memory(tmp_path / str(weight), minilm, weight)
        hits = memory.search(question, user_id="u")
        assert [h.text for h in hits] == ["Cleo saw the Perseids in 2022.", "Cleo went camping by the lake."]
        scores[weight] = hits[0].score
        # the window is kept with the memory either way: the weight decides only how it is searched
        assert hits[0].source == ("Cleo: Best camping memory: lying by the lake watching the meteor shower in 2022, I "
                                  "felt tiny in the universe.\nDev: Wow.")
    assert scores[0.7] > scores[None] + 0.1  # 0.627 vs 0.487 with all-MiniLM-L6-v2


def test_export_and_import_keep_a_memorys_source_and_how_it_is_found(tmp_path, minilm) -> None:
    memory = _camping_memory(tmp_path / "a", minilm, 0.7)
    question = "How did Cleo feel watching the meteor shower?"
    before = [(h.text, h.source, h.score) for h in memory.search(question, user_id="u")]
    exported = tmp_path / "memories.jsonl"
    memory.export(exported, user_id="u")
    restored = Memory(MemoryConfig(store="memory", data_dir=tmp_path / "b"), embedder=minilm)
    assert restored.import_(exported, user_id="u") == 2
    after = [(h.text, h.source, h.score) for h in restored.search(question, user_id="u")]
    assert [(t, s) for t, s, _ in after] == [(t, s) for t, s, _ in before]
    line = json.loads(exported.read_text(encoding="utf-8").splitlines()[0])
    for bad in ("", 7):
        with pytest.raises(InvalidInputError, match="'source' must be"):
            restored.import_([json.dumps({**line, "source": bad})], user_id="bad")
    assert [sc for *_, sc in after] == pytest.approx([sc for *_, sc in before], abs=1e-6)
    # a text written as given has no source: it is found by its own words
    first = restored.search(question, user_id="u")[0]
    restored.update(first.id, "Cleo watched the Perseid meteor shower in 2022.", user_id="u")
    assert restored.get(first.id, user_id="u").source is None


def test_an_answer_and_a_search_list_the_memory_whose_conversation_shares_the_questions_words(tmp_path,
                                                                                               minilm) -> None:
    question = "Is Cleo happy with the Marley flooring?"
    listed, searched = {}, {}
    for weight in (0.4, None):
        generator = ScriptedGenerator({"extraction": [facts("Cleo finished renovating her studio."),
                                                      facts("Cleo wants a new floor for her kitchen.")],
                                       "update": [ops({"id": "new", "text": "Cleo wants a new floor for her kitchen.",
                                                       "event": "ADD"})],
                                       "generation": ["yes"]})
        # source_weight off: the stored vectors are the texts', so only the re-ranking reads the window
        config = MemoryConfig(store="memory", data_dir=tmp_path / str(weight), answer_top_k=1, source_weight=None,
                              answer_lexical_weight=weight, search_lexical_weight=weight)
        memory = Memory(config, generator=generator, embedder=minilm)
        for turn in ("We went with Marley flooring in the end, it's perfect for dancing.",
                     "Our kitchen floor is so old, I want a new one."):
            memory.add([{"role": "user", "name": "Cleo", "content": turn},
                        {"role": "assistant", "name": "Dev", "content": "Wow."}], user_id="u")
        # the vector order puts the kitchen first (0.507 vs 0.350 with all-MiniLM-L6-v2)
        searched[weight] = [(m.text, round(m.score or 0.0, 3)) for m in memory.search(question, user_id="u")]
        listed[weight] = [m.text for m in memory.answer(question, user_id="u").memories]
    assert listed == {0.4: ["Cleo finished renovating her studio."], None: ["Cleo wants a new floor for her kitchen."]}
    # search re-orders the same way, and its scores stay the cosines
    assert searched[0.4] == searched[None][::-1] and searched[None][0][0] == "Cleo wants a new floor for her kitchen."


@pytest.mark.parametrize("settings", [
    {},  # the defaults: found by its source's vector (source_weight) and words (the lexical weights)
    # by its source's words alone: stored under the texts' vectors, a heavy re-ordering lifts it
    {"source_weight": None, "answer_lexical_weight": 2.0, "search_lexical_weight": 2.0},
], ids=["defaults", "words_only"])
def test_a_date_answer_comes_from_the_first_listed_memory_that_states_one(tmp_path, settings) -> None:
    # Bag-of-words vectors: the activist memory's source repeats the question's words, its text does not.
    # Its date is another event's, and still the answer: the listing order, found by sources and words,
    # picks the right date more often than the texts' own cosine (LoCoMo validation conversation,
    # results/answers/README.md, "Session 31"); this is the case that order gets wrong.
    embedder = DeterministicEmbedder(1024)
    generator = ScriptedGenerator({"extraction": [facts("Cleo went to a support group on 7 May 2023."),
                                                  facts("Cleo joined activists on 18 July 2023.")],
                                   "update": [ops({"id": "new", "text": "Cleo joined activists on 18 July 2023.",
                                                   "event": "ADD"})]})
    memory = Memory(MemoryConfig(store="memory", data_dir=tmp_path, **settings), generator=generator,
                    embedder=embedder)
    for turn in ("Busy day, 7 May 2023.",
                 "When did I go to the support group? Long ago! I joined activists on 18 July 2023."):
        memory.add([{"role": "user", "name": "Cleo", "content": turn},
                    {"role": "assistant", "name": "Dev", "content": "Wow."}], user_id="u")
    question = "When did Cleo go to the support group?"
    assert memory.search(question, user_id="u")[0].text == "Cleo joined activists on 18 July 2023."  # by its source
    answer = memory.answer(question, user_id="u")
    assert answer.memories[0].text == "Cleo joined activists on 18 July 2023."  # the listing keeps the search order
    assert (answer.text, answer.operation) == ("18 July 2023", "date")
    assert memory.stats["generation"].calls == 0

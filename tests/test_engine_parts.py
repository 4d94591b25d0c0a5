"""The parts under Memory, each on its own: the model steps, the fault hook, chat sessions, AsyncMemory."""

from __future__ import annotations

import inspect
import json
import warnings

import pytest

from memlora_engine import AsyncMemory, Memory, MemoryConfig
from memlora_engine.errors import ModelOutputError
from memlora_engine.ops import PlannedOp
from memlora_engine.repository import FAULT_POINTS, text_hash
from memlora_engine.stats import Stats
from memlora_engine.steps import ModelCaller, UpdatePlan, decide_updates, extract_facts, extraction_conversations
from memlora_engine.testing import DeterministicEmbedder, InMemoryStore, ScriptedGenerator
from memlora_engine.types import Event, MemoryRecord, Operation, Scope


def old(text: str) -> MemoryRecord:
    return MemoryRecord(id=f"real-{text}", text=text, hash=text_hash(text), created_at="2024-01-01T00:00:00+00:00",
                        user_id="u")


def test_the_update_step_runs_without_a_store() -> None:
    gen = ScriptedGenerator({"update": [json.dumps({"memory": [
        {"id": "0", "text": "Lives in Bergen", "event": "UPDATE"},
        {"id": "1", "text": "", "event": "DELETE"},
        {"id": "7", "text": "", "event": "DELETE"},
        {"id": "new", "text": "Has a cat", "event": "ADD"},
    ]})]})
    caller = ModelCaller(MemoryConfig(store="memory", update_calls="batch"), gen, Stats())
    records = [old("Lives in Oslo"), old("Has no pets")]
    plan = decide_updates(caller, records, ["Moved to Bergen", "Has a cat"], date="2024-05-01")
    assert plan.planned == [PlannedOp(Event.UPDATE, "Lives in Bergen", records[0]), PlannedOp(Event.DELETE, "Has no pets", records[1]),
                       PlannedOp(Event.ADD, "Has a cat")]
    assert [r.reason for r in plan.rejected] == ["unknown_id"]
    assert plan.uncovered == [] and plan.duplicates == 0
    prompt = gen.calls[0].messages[-1]["content"]
    assert '"Lives in Oslo"' in prompt and "Moved to Bergen" in prompt and "real-" not in prompt
    assert caller.stats[Operation.UPDATE].calls == 1


def _ops(*ops: dict[str, str]) -> str:
    return json.dumps({"memory": list(ops)})


@pytest.mark.parametrize(
    ("outputs", "expected", "rejected", "uncovered"),
    [
        # Each fact gets its own call and its own decision.
        ([_ops({"id": "0", "text": "Lives in Bergen", "event": "UPDATE"}),
          _ops({"id": "2", "text": "Has a cat", "event": "ADD"})],
         [(Event.UPDATE, "Lives in Bergen"), (Event.ADD, "Has a cat")], [], []),
        # A NONE and a DELETE: only the DELETE changes anything.
        ([_ops({"id": "0", "text": "Moved to Bergen", "event": "NONE"}),
          _ops({"id": "1", "text": "", "event": "DELETE"})],
         [(Event.DELETE, "Has no pets")], [], []),
        # Two facts changing one memory: the later op is a conflict, its fact is undecided and ADDed.
        ([_ops({"id": "0", "text": "Lives in Bergen", "event": "UPDATE"}),
          _ops({"id": "0", "text": "Has a cat in Oslo", "event": "UPDATE"})],
         [(Event.UPDATE, "Lives in Bergen"), (Event.ADD, "Has a cat")], ["conflicting_op"], ["Has a cat"]),
        # A call that decides nothing leaves its own fact undecided, not the other one.
        ([_ops({"id": "0", "text": "Lives in Bergen", "event": "UPDATE"}), _ops()],
         [(Event.UPDATE, "Lives in Bergen"), (Event.ADD, "Has a cat")], [], ["Has a cat"]),
    ],
    ids=["update-and-add", "none-and-delete", "two-facts-one-memory", "silent-second-call"],
)
def test_the_update_step_asks_one_fact_per_call(outputs, expected, rejected, uncovered) -> None:
    gen = ScriptedGenerator({"update": outputs}, strict=True)
    caller = ModelCaller(MemoryConfig(store="memory"), gen, Stats())
    records = [old("Lives in Oslo"), old("Has no pets")]
    plan = decide_updates(caller, records, ["Moved to Bergen", "Has a cat"], date="2024-05-01")
    assert [(op.event, op.text) for op in plan.planned] == expected
    assert [r.reason for r in plan.rejected] == rejected
    assert plan.uncovered == uncovered
    prompts = [call.messages[-1]["content"] for call in gen.calls]
    assert len(prompts) == 2 and caller.stats[Operation.UPDATE].calls == 2
    for prompt, fact, other in zip(prompts, ["Moved to Bergen", "Has a cat"], ["Has a cat", "Moved to Bergen"]):
        assert fact in prompt and other not in prompt  # one fact per call
        assert '"id": "0",\n    "text": "Lives in Oslo"' in prompt  # the same ids in every call


def _listed(prompt: str) -> list[str]:
    """The old memory texts an update prompt lists, in order (their ids are their positions)."""
    listing = prompt.split("Existing memories:\n", 1)[1].split("\n\nNew facts:", 1)[0]
    return [item["text"] for item in json.loads(listing)]


# "Lives in Oslo" is nearest the move, "Has no pets" the cat; each fact's call lists its own.
_OSLO, _PETS = old("Lives in Oslo"), old("Has no pets")
_NEAREST = {"Moved to Bergen": [_OSLO], "Has a cat": [_PETS, _OSLO]}


@pytest.mark.parametrize(
    ("outputs", "expected", "rejected"),
    [
        # Each call's "0" is its own nearest memory.
        ([_ops({"id": "0", "text": "Lives in Bergen", "event": "UPDATE"}),
          _ops({"id": "0", "text": "", "event": "DELETE"})],
         [(Event.UPDATE, "Lives in Bergen", _OSLO), (Event.DELETE, "Has no pets", _PETS)], []),
        # Two facts changing one memory under different ids still conflict; the later fact is ADDed.
        ([_ops({"id": "0", "text": "Lives in Bergen", "event": "UPDATE"}),
          _ops({"id": "1", "text": "Has a cat in Oslo", "event": "UPDATE"})],
         [(Event.UPDATE, "Lives in Bergen", _OSLO), (Event.ADD, "Has a cat", None)],
         [{"id": "1", "text": "Has a cat in Oslo", "event": "UPDATE", "old_memory": None, "reason": "conflicting_op"}]),
        # An id the call did not list is unknown, reported as written.
        ([_ops({"id": "0", "text": "Moved to Bergen", "event": "NONE"}),
          _ops({"id": "2", "text": "", "event": "DELETE"})],
         [(Event.ADD, "Has a cat", None)],
         [{"id": "2", "text": "", "event": "DELETE", "old_memory": None, "reason": "unknown_id"}]),
    ],
    ids=["own-ids", "one-memory-two-listings", "id-not-listed"],
)
def test_each_per_fact_call_lists_its_own_nearest_memories(outputs, expected, rejected) -> None:
    gen = ScriptedGenerator({"update": outputs}, strict=True)
    caller = ModelCaller(MemoryConfig(store="memory"), gen, Stats())
    plan = decide_updates(caller, [_OSLO, _PETS], list(_NEAREST), date="2024-05-01", nearest=_NEAREST)
    assert [(op.event, op.text, op.target) for op in plan.planned] == expected
    assert [r.to_dict() for r in plan.rejected] == rejected
    assert [_listed(call.messages[-1]["content"]) for call in gen.calls] == [["Lives in Oslo"],
                                                                              ["Has no pets", "Lives in Oslo"]]


@pytest.mark.parametrize(("config", "listed"), [
    ({"update_context": "shared"}, [["Lives in Oslo", "Has no pets"]] * 2),
    ({"update_calls": "batch"}, [["Lives in Oslo", "Has no pets"]]),
])
def test_shared_and_batch_calls_list_every_retrieved_memory(config, listed) -> None:
    gen = ScriptedGenerator({"update": [_ops()] * len(listed)}, strict=True)
    caller = ModelCaller(MemoryConfig(store="memory", **config), gen, Stats())
    decide_updates(caller, [_OSLO, _PETS], list(_NEAREST), date="2024-05-01", nearest=_NEAREST)
    assert [_listed(call.messages[-1]["content"]) for call in gen.calls] == listed


@pytest.mark.parametrize(("field", "value"), [("update_context", "mine"), ("short_windows", "mine"),
                                            ("source_weight", -0.1), ("source_weight", "0.7"),
                                            ("source_weight", float("nan")), ("answer_lexical_weight", -1),
                                            ("answer_lexical_weight", True), ("search_lexical_weight", 11.0),
                                            ("answer_top_k", 0), ("answer_turns", -1), ("answer_turns", True),
                                            ("answer_turns", 1.5)])
def test_config_fields_are_checked(field, value) -> None:
    from memlora_engine.errors import ConfigError

    with pytest.raises(ConfigError, match=field):
        MemoryConfig(store="memory", **{field: value})


def test_a_garbled_answer_to_any_per_fact_call_applies_nothing() -> None:
    gen = ScriptedGenerator({"update": [_ops({"id": "0", "text": "Lives in Bergen", "event": "UPDATE"}), "no json"]},
                            strict=True)
    caller = ModelCaller(MemoryConfig(store="memory"), gen, Stats())
    with pytest.raises(ModelOutputError):
        decide_updates(caller, [old("Lives in Oslo")], ["Moved to Bergen", "Has a cat"], date="2024-05-01")


def test_update_calls_is_checked() -> None:
    from memlora_engine.errors import ConfigError

    with pytest.raises(ConfigError, match="update_calls"):
        MemoryConfig(store="memory", update_calls="each")


def test_the_update_step_skips_the_model_with_nothing_old() -> None:
    caller = ModelCaller(MemoryConfig(store="memory"), ScriptedGenerator({}, strict=True), Stats())
    assert decide_updates(caller, [], ["a", "b"], date="2024-05-01") == UpdatePlan(
        [PlannedOp(Event.ADD, "a"), PlannedOp(Event.ADD, "b")])


def test_the_extraction_step_parses_or_raises_with_the_raw_text() -> None:
    gen = ScriptedGenerator({"extraction": ['{"facts": ["Likes tea"]}', "not json"]}, strict=True)
    caller = ModelCaller(MemoryConfig(store="memory"), gen, Stats())
    assert extract_facts(caller, "user: I like tea", date="2024-05-01") == ["Likes tea"]
    assert "2024-05-01" in json.dumps(gen.calls[0].messages)
    with pytest.raises(ModelOutputError) as caught:
        extract_facts(caller, "user: hm", date="2024-05-01")
    assert caught.value.raw == "not json"


def test_every_write_step_reaches_the_fault_hook_in_order() -> None:
    reached: list[str] = []
    memory = Memory(MemoryConfig(store="memory"), store=InMemoryStore(), embedder=DeterministicEmbedder(),
                    faults=reached.append)
    memory.add("Likes tea", user_id="u", infer=False)
    assert reached == ["journalled", "upserted", "applied", "committed"]
    reached.clear()
    memory.delete_all(user_id="u")
    assert reached == ["dropped", "sessions_cleared"]
    assert set(FAULT_POINTS) == {"journalled", "upserted", "applied", "committed", "dropped", "sessions_cleared"}


def test_a_chat_session_handle_is_one_scope_and_session() -> None:
    memory = Memory(MemoryConfig(store="memory"), store=InMemoryStore(), embedder=DeterministicEmbedder())
    chat = memory.chats.session(Scope("u"), "s1")
    chat.append([{"role": "user", "content": "hi", "extra": {"k": 1}}], timestamp="2024-05-01T10:00:00+00:00")
    memory.append_chat("s1", "hello", user_id="u")
    assert [m["content"] for m in chat.messages()] == ["hi", "hello"]
    assert memory.chat_messages("s1", user_id="u", limit=1)[0]["content"] == "hello"
    assert chat.messages()[0]["extra"] == {"k": 1} and chat.messages()[0]["created_at"] == "2024-05-01T10:00:00+00:00"
    assert memory.chats.messages(Scope("other"), "s1") == []
    assert chat.clear() == 2 and memory.chat_messages("s1", user_id="u") == []


def test_async_memory_mirrors_every_public_method() -> None:
    public = [n for n, f in inspect.getmembers(Memory, inspect.isfunction) if not n.startswith("_")]
    assert public  # add, search, ... (properties aside)
    for name in public:
        coroutine = getattr(AsyncMemory, name)
        assert inspect.iscoroutinefunction(coroutine), name
        assert inspect.signature(coroutine) == inspect.signature(getattr(Memory, name)), name
        assert coroutine.__doc__ == getattr(Memory, name).__doc__


class _BatchingScript(ScriptedGenerator):
    """The scripted fake, declaring batches: each batch's requests are recorded, then answered in order."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.batches: list[int] = []

    @property
    def supports_batch_generation(self) -> bool:
        return True

    def generate_batch(self, requests):
        self.batches.append(len(requests))
        return [self.generate(r) for r in requests]


def test_a_generator_that_runs_batches_gets_the_per_fact_calls_in_one_batch() -> None:
    from memlora_engine.generator import SupportsBatchGeneration

    outputs = [_ops({"id": "0", "text": "Lives in Bergen", "event": "UPDATE"}), _ops({"id": "2", "text": "Has a cat", "event": "ADD"})]
    plans = []
    for gen in (_BatchingScript({"update": outputs}, strict=True), ScriptedGenerator({"update": outputs}, strict=True)):
        caller = ModelCaller(MemoryConfig(store="memory"), gen, Stats())
        plans.append(decide_updates(caller, [old("Lives in Oslo"), old("Has no pets")], ["Moved to Bergen", "Has a cat"],
                                    date="2024-05-01"))
        assert caller.stats[Operation.UPDATE].calls == 2
    batching = _BatchingScript({"update": outputs})
    assert isinstance(batching, SupportsBatchGeneration) and not isinstance(ScriptedGenerator({}), SupportsBatchGeneration)
    assert plans[0] == plans[1]
    caller = ModelCaller(MemoryConfig(store="memory"), batching, Stats())
    decide_updates(caller, [old("Lives in Oslo")], ["Moved to Bergen", "Has a cat"], date="2024-05-01")
    assert batching.batches == [2]


_TURNS = [{"role": "user", "content": "u1"}, {"role": "assistant", "content": "a1"},
          {"role": "system", "content": "s"}, {"role": "user", "content": "u2"}, {"role": "assistant", "content": " "},
          {"role": "user", "content": "u3", "name": "Ana"}]


@pytest.mark.parametrize(
    ("window", "budget", "expected"),
    [
        (None, None, ["user: u1\nassistant: a1\nuser: u2\nAna: u3"]),
        (2, None, ["user: u1\nassistant: a1", "assistant: a1\nuser: u2", "user: u2\nAna: u3"]),
        (3, None, ["user: u1\nassistant: a1\nuser: u2", "assistant: a1\nuser: u2\nAna: u3"]),
        (4, None, ["user: u1\nassistant: a1\nuser: u2\nAna: u3"]),  # no more messages than the window
        (2, 30, ["assistant: a1\nuser: u2", "user: u2\nAna: u3"]),  # the latest windows whose messages fit
        (2, 28, ["user: u2\nAna: u3"]),
        (2, 5, ["user: u2\nAna: u3"[-5:]]),  # one window longer than the budget: cut, as one call is
    ],
)
def test_extraction_reads_overlapping_windows(window, budget, expected) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the cut's warning is checked in tests/reliability
        assert extraction_conversations(_TURNS, window, budget) == expected
    assert extraction_conversations([{"role": "system", "content": "s"}], window, budget) == []


_NAMED = [{"role": "user", "content": "c1", "name": "Cleo"}, {"role": "assistant", "content": "d1", "name": "Dev"},
          {"role": "user", "content": "c2", "name": "Cleo"}]


@pytest.mark.parametrize(
    ("messages", "window", "budget", "expected"),
    [
        (_NAMED[:2], 2, None, ["Cleo: c1\nDev: d1", "Dev: d1"]),  # the reply leads a window too
        (_NAMED, 2, None, ["Cleo: c1\nDev: d1", "Dev: d1\nCleo: c2", "Cleo: c2"]),
        (_NAMED, 3, None, ["Cleo: c1\nDev: d1\nCleo: c2", "Dev: d1\nCleo: c2", "Cleo: c2"]),
        (_NAMED, 2, 16, ["Dev: d1\nCleo: c2", "Cleo: c2"]),  # a cut keeps the latest windows
        (_NAMED, None, None, ["Cleo: c1\nDev: d1\nCleo: c2"]),  # one call: nothing to lead
        (_NAMED[:1], 2, None, ["Cleo: c1"]),
        (_TURNS, 2, None, ["user: u1\nassistant: a1", "assistant: a1\nuser: u2", "user: u2\nAna: u3"]),  # one name
    ],
)
def test_every_turn_leads_a_window_between_named_speakers(messages, window, budget, expected) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert extraction_conversations(messages, window, budget, every_turn_leads=True) == expected


@pytest.mark.parametrize(
    ("reply", "read_alone"),
    [
        ("I won it!", True),
        ("We ran it together.", True),
        ("my knee hurts, i'm out", True),
        ("Me too.", True),
        ("Our club won.", True),
        ("Congrats, you did great!", False),  # about the listener: the pairwise window reads it
        ("Wow, that's so cool!", False),
        ("Is the medal yours?", False),
        ("Irish weather, right?", False),  # "I" only inside a word
    ],
)
def test_a_short_window_is_read_when_its_turn_speaks_in_the_first_person(reply, read_alone) -> None:
    messages = [{"role": "user", "content": "I ran the race.", "name": "Cleo"},
                {"role": "assistant", "content": reply, "name": "Dev"}]
    pair = f"Cleo: I ran the race.\nDev: {reply}"
    assert extraction_conversations(messages, 2, None, every_turn_leads=True, short_windows="first_person") == (
        [pair, f"Dev: {reply}"] if read_alone else [pair])
    assert extraction_conversations(messages, 2, None, every_turn_leads=True, short_windows="all") == [
        pair, f"Dev: {reply}"]
    # windows of the full length are read whatever they say
    assert extraction_conversations(messages * 2, 2, None, every_turn_leads=True, short_windows="first_person")[:3] == [
        pair, f"Dev: {reply}\nCleo: I ran the race.", pair]


@pytest.mark.parametrize("on", [True, False])
def test_add_reads_the_second_speakers_turn_on_its_own(on) -> None:
    generator = ScriptedGenerator({"extraction": ['{"facts": []}']})
    memory = Memory(MemoryConfig(store="memory", speaker_windows=on), generator=generator,
                    embedder=DeterministicEmbedder(384))
    memory.add([{"role": "user", "content": "How was the race?", "name": "Cleo"},
                {"role": "assistant", "content": "I won it!", "name": "Dev"}], user_id="u")
    memory.add([{"role": "user", "content": "How was the race?"}, {"role": "assistant", "content": "Fine."}],
               user_id="u")  # no names: one call either way
    prompts = [call.messages[-1]["content"] for call in generator.calls]
    assert prompts == ["Cleo: How was the race?\nDev: I won it!", *(["Dev: I won it!"] if on else []),
                       "user: How was the race?\nassistant: Fine."]


@pytest.mark.parametrize(("short_windows", "calls"), [("first_person", 1), ("all", 2)])
def test_add_skips_a_turn_read_alone_that_says_nothing_of_its_speaker(short_windows, calls) -> None:
    generator = ScriptedGenerator({"extraction": ['{"facts": []}']})
    memory = Memory(MemoryConfig(store="memory", short_windows=short_windows), generator=generator,
                    embedder=DeterministicEmbedder(384))
    memory.add([{"role": "user", "content": "I won the race!", "name": "Cleo"},
                {"role": "assistant", "content": "You'd make a great coach!", "name": "Dev"}], user_id="u")
    assert len(generator.calls) == calls


@pytest.mark.parametrize(("context", "listed"), [
    ("own", [["Ana lives in Oslo."], ["Ana has no pets."]]),
    ("shared", [["Ana lives in Oslo.", "Ana has no pets."]] * 2),
])
def test_add_lists_each_facts_own_nearest_memories(context, listed) -> None:
    generator = ScriptedGenerator({"extraction": ['{"facts": ["Ana lives in Bergen now.", "Ana has pets now."]}'],
                                   "update": ['{"memory": []}'] * 2}, strict=True)
    memory = Memory(MemoryConfig(store="memory", update_top_k=1, update_context=context), generator=generator,
                    embedder=DeterministicEmbedder(384))
    memory.add(["Ana lives in Oslo.", "Ana has no pets."], user_id="ana", infer=False)
    memory.add("I moved to Bergen and got a cat.", user_id="ana")
    assert [_listed(call.messages[-1]["content"]) for call in generator.calls[1:]] == listed


def test_add_unites_the_windows_facts_and_counts_a_garbled_window() -> None:
    generator = ScriptedGenerator({"extraction": ['{"facts": ["Ana lives in Oslo."]}', "not json",
                                                 '{"facts": ["Ana lives in Oslo.", "Ana has a cat."]}']},
                                  strict=True)
    memory = Memory(MemoryConfig(store="memory"), generator=generator, embedder=DeterministicEmbedder(384))
    messages = [{"role": "user", "content": "I live in Oslo.", "name": "Ana"}, {"role": "assistant", "content": "Nice."},
                {"role": "user", "content": "Also I have a cat.", "name": "Ana"}, {"role": "assistant", "content": "Ok."}]
    result = memory.add(messages, user_id="ana")
    assert [c.operation for c in generator.calls] == [Operation.EXTRACTION] * 3  # first facts: no update call
    assert result.facts == ["Ana lives in Oslo.", "Ana has a cat."]  # in order, a fact once
    assert sorted(r.text for r in memory.get_all(user_id="ana")) == ["Ana has a cat.", "Ana lives in Oslo."]
    assert len(result.failures) == 1 and memory.stats["extraction"].parse_failures == 1


@pytest.mark.parametrize(
    ("group", "op", "rejected"),
    [
        # A per-fact call: the NONE's fact is the call's fact, whatever text the NONE carries.
        (["Lives in Bergen now"], {"id": "0", "text": "Lives in Oslo", "event": "NONE"}, True),
        (["Lives in Oslo"], {"id": "0", "text": "", "event": "none"}, False),
        # A call about several facts: the NONE's own text is its fact.
        (["Lives in Oslo", "Has a cat"], {"id": "0", "text": "Lives in Oslo", "event": "NONE"}, False),
        (["Lives in Bergen now", "Has a cat"], {"id": "0", "text": "Lives in Bergen now", "event": "NONE"}, True),
        (["Lives in Bergen now", "Has a cat"], {"id": "0", "event": "NONE"}, False),  # no fact to check
        # Only NONEs naming a retrieved memory are checked (the others are other checks' business).
        (["Lives in Bergen now"], {"id": "7", "text": "x", "event": "NONE"}, False),
        (["Lives in Bergen now"], {"id": "0", "text": "Lives in Bergen now", "event": "UPDATE"}, False),
    ],
    ids=["per-fact-other-memory", "per-fact-same", "batch-same", "batch-other", "batch-no-text", "unknown-id",
         "not-a-none"],
)
def test_unsupported_nones(group, op, rejected) -> None:
    from memlora_engine.ops import unsupported_nones
    from memlora_engine.parsing import parse_update_ops

    (raw_op,) = parse_update_ops(_ops(op))
    found = unsupported_nones([(group, [raw_op])], {"0": old("Lives in Oslo")}, DeterministicEmbedder(), 0.75)
    assert [(r.op, r.reason) for r in found] == ([(raw_op, "unsupported_none")] if rejected else [])


@pytest.mark.parametrize(
    ("fact", "memory", "event", "rejected"),
    [
        # One attribute changed or ended: with the name masked the texts still share it.
        ("Teodora moved to Valencia.", "Teodora lives in Ghent.", "UPDATE", False),
        ("Bruno now works as a firefighter.", "Bruno works as an accountant in Porto.", "UPDATE", False),
        ("Bruno quit his job at the accounting firm.", "Bruno works as an accountant in Porto.", "DELETE", False),
        ("Omar is dating Lina.", "Omar is dating Sara.", "UPDATE", False),
        ("Lena's cat Pepper died in March.", "Lena has a cat named Pepper.", "DELETE", False),
        # Another memory of the same person: only the name is shared (unmasked, both pass 0.4).
        ("Omar's sister turned thirty this year.", "Omar likes watching horror films.", "UPDATE", True),
        ("Omar started learning the cello.", "Omar is allergic to peanuts.", "DELETE", True),
        # Another person's name on each side is masked too.
        ("Sara started learning the cello.", "Omar is allergic to peanuts.", "UPDATE", True),
        # Only UPDATE and DELETE are checked.
        ("Omar started learning the cello.", "Omar is allergic to peanuts.", "NONE", False),
    ],
    ids=["city", "job", "job-ended", "partner", "pet-died", "other-attribute", "other-attribute-delete",
         "other-person", "not-a-change"],
)
def test_unrelated_changes(minilm, fact, memory, event, rejected) -> None:
    from memlora_engine.embeddings.base import cosine
    from memlora_engine.ops import unrelated_changes
    from memlora_engine.parsing import parse_update_ops
    from memlora_engine.subjects import subject_of

    (raw_op,) = parse_update_ops(_ops({"id": "0", "text": fact, "event": event}))
    found = unrelated_changes([([fact], [raw_op])], {"0": old(memory)}, minilm, 0.15)
    assert [(r.op, r.reason) for r in found] == ([(raw_op, "unrelated_change")] if rejected else [])
    if rejected and subject_of(fact) == subject_of(memory):  # what the masking is for: the name makes them close
        assert cosine(*minilm.embed([fact, memory])) > 0.4


@pytest.mark.parametrize(
    ("fact", "listing", "named", "rejected"),
    [
        # The change names the listed memory its fact is most about: kept.
        ("Gina taught her first contemporary dance class at the new studio.",
         ["Gina teaches contemporary dance to teenagers.", "Gina lost her job at the bank and wants to open a studio."],
         "0", False),
        # It names a neighbour (masked cosine 0.44, over the threshold) while a memory at 0.68 is listed: rejected.
        ("Gina taught her first contemporary dance class at the new studio.",
         ["Gina teaches contemporary dance to teenagers.", "Gina lost her job at the bank and wants to open a studio."],
         "1", True),
        ("Omar moved to Valencia.", ["Omar lives in Ghent.", "Omar works in a bakery in Ghent."], "0", False),
    ],
    ids=["closest", "a-neighbour", "closest-of-two-close"],
)
def test_unrelated_changes_names_the_closest_listed_memory(minilm, fact, listing, named, rejected) -> None:
    from memlora_engine.ops import unrelated_changes
    from memlora_engine.parsing import parse_update_ops

    (raw_op,) = parse_update_ops(_ops({"id": f"0:{named}", "text": fact, "event": "UPDATE"}))
    id_map = {f"0:{i}": old(text) for i, text in enumerate(listing)}
    id_map["1:0"] = old("Gina teaches contemporary dance to adults at the new studio.")  # another call's listing
    found = unrelated_changes([([fact], [raw_op])], id_map, minilm, 0.15)
    assert [r.reason for r in found] == (["unrelated_change"] if rejected else [])


@pytest.mark.parametrize(("batch", "calls"), [(True, [["a", "b"], ["c"]]), (False, [["a"], ["b"], ["c"]])])
def test_cached_embedder_embeds_each_text_once_and_forgets_the_least_recent(batch, calls) -> None:
    from embedder_helpers import RecordingEmbedder

    from memlora_engine.embeddings.base import CachedEmbedder

    inner = RecordingEmbedder(DeterministicEmbedder())
    cached = CachedEmbedder(inner, max_entries=2, batch=batch)
    assert cached.embed(["a", "b", "a"]) == inner.inner.embed(["a", "b", "a"])
    assert cached.embed(["a", "c"]) == inner.inner.embed(["a", "c"])  # "a" cached; "c" evicts "b", the least recent
    assert inner.batches == calls
    cached.embed(["a"])
    cached.embed(["b"])  # forgotten: embedded again
    assert inner.batches[-1] == ["b"] and len(inner.batches) == len(calls) + 1
    with pytest.raises(ValueError, match="max_entries"):
        CachedEmbedder(inner, max_entries=0)

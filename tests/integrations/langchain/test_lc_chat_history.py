"""Contract tests for MemLoRAChatMessageHistory (LangChain ships no standard suite for histories)."""

from __future__ import annotations

import pytest
from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables.history import RunnableWithMessageHistory

from memlora_engine import AsyncMemory, ScopeError
from memlora_integrations.langchain import MemLoRAChatMessageHistory


def texts(records):
    return sorted(r.text for r in records)


def test_is_a_chat_message_history(lc_memory):
    assert isinstance(MemLoRAChatMessageHistory(lc_memory, "s", user_id="alice"), BaseChatMessageHistory)


def test_starts_empty(lc_memory):
    assert MemLoRAChatMessageHistory(lc_memory, "s", user_id="alice").messages == []


def test_messages_round_trip_exactly(lc_memory):
    history = MemLoRAChatMessageHistory(lc_memory, "s", user_id="alice", ingest="off")
    sent = [
        SystemMessage("be nice"),
        HumanMessage("hi", id="h1", name="alice"),
        AIMessage("", id="a1", tool_calls=[{"name": "lookup", "args": {"q": "x"}, "id": "c1"}]),
        ToolMessage("result", tool_call_id="c1"),
        AIMessage("hello", id="a2", response_metadata={"model_name": "m"}),
    ]
    history.add_messages(sent)
    assert history.messages == sent


def test_add_user_and_ai_message_helpers(lc_memory):
    history = MemLoRAChatMessageHistory(lc_memory, "s", user_id="alice")
    history.add_user_message("I live in Lisbon")
    history.add_ai_message("Nice city")
    assert [type(m) for m in history.messages] == [HumanMessage, AIMessage]
    assert [m.content for m in history.messages] == ["I live in Lisbon", "Nice city"]


def test_lone_human_message_waits_for_its_reply(lc_memory):
    history = MemLoRAChatMessageHistory(lc_memory, "s", user_id="alice")
    history.add_user_message("I have a cat named Tom")
    assert lc_memory.get_all(user_id="alice") == []  # buffered, not yet ingested
    history.add_ai_message("Cute!")
    assert texts(lc_memory.get_all(user_id="alice")) == ["I have a cat named Tom"]
    extraction = [c for c in lc_memory.generator.calls if c.operation.value == "extraction"]
    assert "user: I have a cat named Tom\nassistant: Cute!" in extraction[-1].messages[-1]["content"]


def test_pending_turn_is_completed_by_a_new_instance(tmp_path, lc_fakes):
    # The pending human message lives in the persisted buffer, not in the object.
    first = lc_fakes.build_memory(tmp_path)
    MemLoRAChatMessageHistory(first, "s", user_id="alice").add_user_message("My sister is Ana")
    second = lc_fakes.build_memory(tmp_path)
    MemLoRAChatMessageHistory(second, "s", user_id="alice").add_ai_message("Noted")
    assert texts(second.get_all(user_id="alice")) == ["My sister is Ana"]


def test_bulk_add_messages_ingests_each_completed_turn(lc_memory):
    history = MemLoRAChatMessageHistory(lc_memory, "s", user_id="alice")
    history.add_messages(
        [HumanMessage("I like tea"), AIMessage("ok"), HumanMessage("I hate coffee"), AIMessage("ok"),
         HumanMessage("I play chess")]
    )
    assert texts(lc_memory.get_all(user_id="alice")) == ["I hate coffee", "I like tea"]
    extraction = [c for c in lc_memory.generator.calls if c.operation.value == "extraction"]
    assert len(extraction) == 2  # one add per completed turn
    history.add_messages([AIMessage("fun")])
    assert "I play chess" in texts(lc_memory.get_all(user_id="alice"))


def test_system_and_tool_messages_are_not_ingested(lc_memory):
    history = MemLoRAChatMessageHistory(lc_memory, "s", user_id="alice")
    history.add_messages([SystemMessage("secret system prompt"), HumanMessage("I am Alice"),
                          ToolMessage("tool output", tool_call_id="1"), AIMessage("Hi Alice")])
    prompt = [c for c in lc_memory.generator.calls if c.operation.value == "extraction"][-1].messages[-1]["content"]
    assert "secret system prompt" not in prompt and "tool output" not in prompt
    assert texts(lc_memory.get_all(user_id="alice")) == ["I am Alice"]


def test_a_named_human_message_reaches_extraction_under_its_name(lc_memory):
    history = MemLoRAChatMessageHistory(lc_memory, "s", user_id="alice")
    history.add_messages([HumanMessage("I moved to Oslo", name="Alice"), AIMessage("Nice")])
    prompt = [c for c in lc_memory.generator.calls if c.operation.value == "extraction"][-1].messages[-1]["content"]
    assert "Alice: I moved to Oslo\nassistant: Nice" in prompt


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("turns", []), ("messages", ["I like jazz"]), ("off", [])],
)
def test_ingest_modes_for_a_lone_human_message(lc_memory, mode, expected):
    MemLoRAChatMessageHistory(lc_memory, "s", user_id="alice", ingest=mode).add_user_message("I like jazz")
    assert texts(lc_memory.get_all(user_id="alice")) == expected


def test_ingest_off_never_calls_the_model(lc_memory):
    history = MemLoRAChatMessageHistory(lc_memory, "s", user_id="alice", ingest="off")
    history.add_messages([HumanMessage("I like jazz"), AIMessage("cool")])
    assert lc_memory.generator.calls == []
    assert len(history.messages) == 2


def test_metadata_is_stored_with_ingested_memories(lc_memory):
    history = MemLoRAChatMessageHistory(lc_memory, "s", user_id="alice", metadata={"source": "chat"})
    history.add_messages([HumanMessage("I like jazz"), AIMessage("cool")])
    assert lc_memory.get_all(user_id="alice")[0].metadata == {"source": "chat"}


def test_max_messages_keeps_the_most_recent(lc_memory):
    history = MemLoRAChatMessageHistory(lc_memory, "s", user_id="alice", ingest="off", max_messages=2)
    history.add_messages([HumanMessage(str(i)) for i in range(5)])
    assert [m.content for m in history.messages] == ["3", "4"]


def test_clear_forgets_the_session_but_keeps_long_term_memories(lc_memory):
    history = MemLoRAChatMessageHistory(lc_memory, "s", user_id="alice")
    history.add_messages([HumanMessage("I like tea"), AIMessage("ok")])
    history.clear()
    assert history.messages == []
    assert texts(lc_memory.get_all(user_id="alice")) == ["I like tea"]


def test_clear_forget_drops_the_scope_only(lc_memory):
    alice = MemLoRAChatMessageHistory(lc_memory, "s", user_id="alice")
    bob = MemLoRAChatMessageHistory(lc_memory, "s", user_id="bob")
    alice.add_messages([HumanMessage("I like tea"), AIMessage("ok")])
    bob.add_messages([HumanMessage("I like milk"), AIMessage("ok")])
    alice.clear(forget=True)
    assert alice.messages == [] and lc_memory.get_all(user_id="alice") == []
    assert len(bob.messages) == 2 and texts(lc_memory.get_all(user_id="bob")) == ["I like milk"]


def test_sessions_are_separate(lc_memory):
    one = MemLoRAChatMessageHistory(lc_memory, "one", user_id="alice", ingest="off")
    two = MemLoRAChatMessageHistory(lc_memory, "two", user_id="alice", ingest="off")
    one.add_user_message("first")
    assert two.messages == []
    two.clear()
    assert [m.content for m in one.messages] == ["first"]


def test_scope_isolation(lc_memory):
    alice = MemLoRAChatMessageHistory(lc_memory, "s", user_id="alice")
    alice.add_messages([HumanMessage("My PIN is 1234"), AIMessage("ok")])
    bob = MemLoRAChatMessageHistory(lc_memory, "s", user_id="bob")
    assert bob.messages == []
    assert lc_memory.search("PIN", user_id="bob") == []
    assert MemLoRAChatMessageHistory(lc_memory, "s", user_id="alice", agent_id="x").messages == []


def test_persists_across_processes_worth_of_instances(tmp_path, lc_fakes):
    writer = MemLoRAChatMessageHistory(lc_fakes.build_memory(tmp_path), "s", user_id="alice")
    writer.add_messages([HumanMessage("I like tea"), AIMessage("ok")])
    reader = MemLoRAChatMessageHistory(lc_fakes.build_memory(tmp_path), "s", user_id="alice")
    assert [m.content for m in reader.messages] == ["I like tea", "ok"]


def test_requires_a_scope_and_a_session(lc_memory):
    with pytest.raises(ScopeError):
        MemLoRAChatMessageHistory(lc_memory, "s")
    with pytest.raises(ValueError, match="session_id"):
        MemLoRAChatMessageHistory(lc_memory, "", user_id="alice")
    with pytest.raises(ValueError, match="ingest"):
        MemLoRAChatMessageHistory(lc_memory, "s", user_id="alice", ingest="sometimes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Memory"):
        MemLoRAChatMessageHistory(object(), "s", user_id="alice")  # type: ignore[arg-type]


def test_accepts_an_async_memory(lc_memory):
    history = MemLoRAChatMessageHistory(AsyncMemory(memory=lc_memory), "s", user_id="alice")
    assert history.memory is lc_memory


async def test_async_variants(lc_memory):
    history = MemLoRAChatMessageHistory(lc_memory, "s", user_id="alice")
    await history.aadd_messages([HumanMessage("I like tea"), AIMessage("ok")])
    assert [m.content for m in await history.aget_messages()] == ["I like tea", "ok"]
    assert texts(lc_memory.get_all(user_id="alice")) == ["I like tea"]
    await history.aclear()
    assert await history.aget_messages() == []
    await history.aclear(forget=True)
    assert lc_memory.get_all(user_id="alice") == []


def _chain_with_history(lc_memory, replies):
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You are helpful."), MessagesPlaceholder("history"), ("human", "{question}")]
    )
    llm = GenericFakeChatModel(messages=iter(replies))
    return RunnableWithMessageHistory(
        prompt | llm,
        lambda session_id: MemLoRAChatMessageHistory(lc_memory, session_id, user_id="alice"),
        input_messages_key="question",
        history_messages_key="history",
    )


def test_runnable_with_message_history_end_to_end(lc_memory):
    chain = _chain_with_history(lc_memory, [AIMessage("Hi Alice!"), AIMessage("You like tea.")])
    config = {"configurable": {"session_id": "chat-1"}}
    assert chain.invoke({"question": "I am Alice and I like tea"}, config=config).content == "Hi Alice!"
    second = chain.invoke({"question": "What do I like?"}, config=config)
    assert second.content == "You like tea."
    history = MemLoRAChatMessageHistory(lc_memory, "chat-1", user_id="alice")
    assert [m.content for m in history.messages] == [
        "I am Alice and I like tea", "Hi Alice!", "What do I like?", "You like tea."
    ]
    assert texts(lc_memory.get_all(user_id="alice")) == ["I am Alice and I like tea", "What do I like?"]


async def test_runnable_with_message_history_async(lc_memory):
    chain = _chain_with_history(lc_memory, [AIMessage("Hello!")])
    await chain.ainvoke({"question": "I am Alice"}, config={"configurable": {"session_id": "chat-2"}})
    history = MemLoRAChatMessageHistory(lc_memory, "chat-2", user_id="alice")
    assert [m.content for m in await history.aget_messages()] == ["I am Alice", "Hello!"]
    assert texts(lc_memory.get_all(user_id="alice")) == ["I am Alice"]


def test_streamed_reply_is_stored_as_the_assistant_turn(lc_memory):
    # RunnableWithMessageHistory.stream() hands the history the merged AIMessageChunk.
    chain = _chain_with_history(lc_memory, [AIMessage("Hi Alice, noted.")])
    config = {"configurable": {"session_id": "chat-3"}}
    streamed = "".join(chunk.content for chunk in chain.stream({"question": "I am Alice and I like tea"}, config=config))
    assert streamed == "Hi Alice, noted."
    history = MemLoRAChatMessageHistory(lc_memory, "chat-3", user_id="alice")
    assert [(m.type, m.content) for m in history.messages] == [
        ("human", "I am Alice and I like tea"), ("ai", "Hi Alice, noted.")
    ]
    assert [m["role"] for m in lc_memory.chat_messages("chat-3", user_id="alice")] == ["user", "assistant"]
    # the turn was ingested, and the assistant's words did not become the user's memories
    assert texts(lc_memory.get_all(user_id="alice")) == ["I am Alice and I like tea"]

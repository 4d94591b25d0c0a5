"""MemLoRAMiddleware in a real LangChain 1.x agent (create_agent), with a fake chat model."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.tools import tool
from lc_fakes import RecordingChatModel  # loaded by tests/integrations/conftest.py

from memlora_engine import ScopeError
from memlora_integrations.langchain import MemLoRAMiddleware


def model(*replies: AIMessage) -> RecordingChatModel:
    return RecordingChatModel(messages=iter(replies), seen=[])


def texts(records):
    return sorted(r.text for r in records)


def ask(agent, text: str) -> dict:
    return agent.invoke({"messages": [{"role": "user", "content": text}]})


def test_is_agent_middleware(lc_memory):
    assert isinstance(MemLoRAMiddleware(lc_memory, user_id="alice"), AgentMiddleware)


def test_saves_the_exchange_and_recalls_it_in_a_later_run(lc_memory):
    llm = model(AIMessage("Noted, Rex!"), AIMessage("Your dog is Rex."))
    agent = create_agent(llm, system_prompt="You are helpful.",
                         middleware=[MemLoRAMiddleware(lc_memory, user_id="alice")])
    ask(agent, "I have a dog called Rex")
    assert texts(lc_memory.get_all(user_id="alice")) == ["I have a dog called Rex"]
    assert [m.type for m in llm.seen[0]] == ["system", "human"]
    assert llm.seen[0][0].content == "You are helpful."  # nothing to recall yet

    result = ask(agent, "What is my dog called?")
    system = llm.seen[1][0]
    assert isinstance(system, SystemMessage)
    assert system.content.startswith("You are helpful.\n\nRelevant memories")
    assert "- I have a dog called Rex" in system.content
    # the memories were added to the request only, never to the conversation state
    assert [m.type for m in result["messages"]] == ["human", "ai"]
    assert result["messages"][-1].content == "Your dog is Rex."


def test_without_a_system_prompt_the_memories_become_one(lc_memory):
    lc_memory.add("I like tea", user_id="alice", infer=False)
    llm = model(AIMessage("Tea it is."))
    agent = create_agent(llm, middleware=[MemLoRAMiddleware(lc_memory, user_id="alice", template="Facts:\n{memories}")])
    ask(agent, "What do I like? tea?")
    assert llm.seen[0][0].content == "Facts:\n- I like tea"


def test_tool_calls_are_not_ingested_and_the_final_reply_is(lc_memory):
    @tool
    def weather(city: str) -> str:
        """Weather in a city."""
        return f"Sunny in {city}"

    llm = model(
        AIMessage("", tool_calls=[{"name": "weather", "args": {"city": "Lisbon"}, "id": "c1"}]),
        AIMessage("It is sunny in Lisbon."),
    )
    agent = create_agent(llm, tools=[weather], middleware=[MemLoRAMiddleware(lc_memory, user_id="alice")])
    result = ask(agent, "I live in Lisbon, what's the weather?")
    assert [m.type for m in result["messages"]] == ["human", "ai", "tool", "ai"]
    extraction = [c for c in lc_memory.generator.calls if c.operation.value == "extraction"]
    assert len(extraction) == 1
    prompt = extraction[0].messages[-1]["content"]
    assert prompt == "user: I live in Lisbon, what's the weather?\nassistant: It is sunny in Lisbon."
    assert len(llm.seen) == 2  # recall ran for both model calls


def test_ingest_false_is_read_only(lc_memory):
    agent = create_agent(model(AIMessage("ok")), middleware=[MemLoRAMiddleware(lc_memory, user_id="alice", ingest=False)])
    ask(agent, "I like tea")
    assert lc_memory.get_all(user_id="alice") == []


def test_scope_isolation(lc_memory):
    alice = create_agent(model(AIMessage("ok")), middleware=[MemLoRAMiddleware(lc_memory, user_id="alice")])
    ask(alice, "My PIN is 1234")
    llm = model(AIMessage("I don't know."))
    bob = create_agent(llm, middleware=[MemLoRAMiddleware(lc_memory, user_id="bob")])
    ask(bob, "What is my PIN?")
    assert [m.type for m in llm.seen[0]] == ["human"]  # no memory block for bob
    assert texts(lc_memory.get_all(user_id="bob")) == ["What is my PIN?"]
    assert texts(lc_memory.get_all(user_id="alice")) == ["My PIN is 1234"]


async def test_async_agent(lc_memory):
    llm = model(AIMessage("Noted."), AIMessage("Rex."))
    agent = create_agent(llm, middleware=[MemLoRAMiddleware(lc_memory, user_id="alice", metadata={"via": "agent"})])
    await agent.ainvoke({"messages": [HumanMessage("I have a dog called Rex")]})
    await agent.ainvoke({"messages": [HumanMessage("What is my dog called?")]})
    assert "- I have a dog called Rex" in llm.seen[1][0].content
    assert lc_memory.get_all(user_id="alice")[0].metadata == {"via": "agent"}


def test_validates_arguments(lc_memory):
    with pytest.raises(ValueError, match="at least one"):
        MemLoRAMiddleware(lc_memory)
    with pytest.raises(ValueError, match="placeholder"):
        MemLoRAMiddleware(lc_memory, user_id="alice", template="no slot")
    with pytest.raises(ValueError, match="k must"):
        MemLoRAMiddleware(lc_memory, user_id="alice", k=0)


def test_a_user_scope_and_an_agent_scope_middleware_coexist(lc_memory):
    lc_memory.add("Alice likes tea", user_id="alice", infer=False)
    lc_memory.add("Be brief", agent_id="helper", infer=False)
    llm = model(AIMessage("Tea."))
    agent = create_agent(llm, middleware=[
        MemLoRAMiddleware(lc_memory, user_id="alice", template="About the user:\n{memories}"),
        MemLoRAMiddleware(lc_memory, agent_id="helper", template="Your rules:\n{memories}", ingest=False),
    ])
    ask(agent, "What does Alice like? tea? brief?")
    system = llm.seen[0][0].content
    assert "About the user:\n- Alice likes tea" in system and "Your rules:\n- Be brief" in system
    assert texts(lc_memory.get_all(user_id="alice")) == ["Alice likes tea", "What does Alice like? tea? brief?"]
    assert texts(lc_memory.get_all(agent_id="helper")) == ["Be brief"]


def test_each_instance_has_a_name_and_an_explicit_one_wins(lc_memory):
    user = MemLoRAMiddleware(lc_memory, user_id="alice")
    agent = MemLoRAMiddleware(lc_memory, agent_id="helper")
    assert user.name != agent.name
    assert MemLoRAMiddleware(lc_memory, user_id="alice", name="facts").name == "facts"
    with pytest.raises(AssertionError, match="duplicate"):  # same scope kinds twice: name them
        create_agent(model(AIMessage("ok")), middleware=[user, MemLoRAMiddleware(lc_memory, user_id="bob")])
    create_agent(model(AIMessage("ok")), middleware=[user, MemLoRAMiddleware(lc_memory, user_id="bob", name="bob")])


@dataclass
class UserContext:
    user_id: str


def test_one_agent_serves_two_users_by_runtime_context(lc_memory):
    llm = model(AIMessage("Noted."), AIMessage("Noted."), AIMessage("Your PIN is 1234."), AIMessage("I don't know."))
    agent = create_agent(llm, context_schema=UserContext,
                         middleware=[MemLoRAMiddleware(lc_memory, context_scope=("user_id",))])
    agent.invoke({"messages": [HumanMessage("My PIN is 1234")]}, context=UserContext("alice"))
    agent.invoke({"messages": [HumanMessage("My cat is Tom")]}, context=UserContext("bob"))
    agent.invoke({"messages": [HumanMessage("What is my PIN?")]}, context=UserContext("alice"))
    agent.invoke({"messages": [HumanMessage("What is my PIN?")]}, context=UserContext("bob"))
    assert texts(lc_memory.get_all(user_id="alice")) == ["My PIN is 1234", "What is my PIN?"]
    assert texts(lc_memory.get_all(user_id="bob")) == ["My cat is Tom", "What is my PIN?"]
    alice_asks, bob_asks = llm.seen[2], llm.seen[3]
    assert "- My PIN is 1234" in alice_asks[0].content
    assert all("1234" not in m.text for m in bob_asks)  # no leak to bob
    assert "- My cat is Tom" in bob_asks[0].content


async def test_runtime_context_scope_async_with_a_dict_context_and_a_fixed_agent_id(lc_memory):
    llm = model(AIMessage("Noted."), AIMessage("Rex."))
    middleware = MemLoRAMiddleware(lc_memory, agent_id="helper", context_scope={"user_id": "uid"})
    agent = create_agent(llm, middleware=[middleware])
    await agent.ainvoke({"messages": [HumanMessage("I have a dog called Rex")]}, context={"uid": "carol"})
    await agent.ainvoke({"messages": [HumanMessage("What is my dog called?")]}, context={"uid": "carol"})
    assert texts(lc_memory.get_all(user_id="carol", agent_id="helper")) == [
        "I have a dog called Rex", "What is my dog called?"
    ]
    assert "- I have a dog called Rex" in llm.seen[1][0].content


def test_runtime_context_without_the_scope_id_is_an_error_not_a_shared_scope(lc_memory):
    agent = create_agent(model(AIMessage("ok")), context_schema=UserContext,
                         middleware=[MemLoRAMiddleware(lc_memory, context_scope=("user_id",))])
    with pytest.raises(ScopeError, match="user_id"):
        agent.invoke({"messages": [HumanMessage("hi")]})
    with pytest.raises(ValueError, match="both"):
        MemLoRAMiddleware(lc_memory, user_id="alice", context_scope=("user_id",))
    with pytest.raises(ValueError, match="scope"):
        MemLoRAMiddleware(lc_memory, context_scope=("session",))

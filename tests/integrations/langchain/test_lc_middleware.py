"""MemLoRAMiddleware in a real LangChain 1.x agent (create_agent), with a fake chat model."""

from __future__ import annotations

from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.tools import tool

from memlora_integrations.langchain import MemLoRAMiddleware


class RecordingChatModel(GenericFakeChatModel):
    """A fake chat model that keeps the messages of every call; ``bind_tools`` is a no-op."""

    seen: list = []

    def _generate(self, messages, stop=None, run_manager=None, **kwargs: Any):
        self.seen.append(list(messages))
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)

    def bind_tools(self, tools, **kwargs: Any):
        return self


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

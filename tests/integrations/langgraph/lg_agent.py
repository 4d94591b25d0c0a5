"""A LangChain 1.x agent whose tools remember through the runtime store (for the tests and their child processes).

The chat model is a LangChain fake that replays scripted replies (tool calls included);
the agent, the tools, the store, the middleware and the engine all run for real.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langchain.agents import create_agent
from langchain.tools import ToolRuntime, tool
from langchain_core.messages import AIMessage
from lc_fakes import RecordingChatModel  # loaded before this module (conftest, or the child process)

from memlora_integrations.langchain import MemLoRAMiddleware
from memlora_integrations.langgraph import MemLoRAStore

NAMESPACES = [("memories", "{user_id}")]


@dataclass
class Context:
    user_id: str


def call(name: str, **args: Any) -> AIMessage:
    return AIMessage("", tool_calls=[{"name": name, "args": args, "id": f"call-{name}", "type": "tool_call"}])


@tool
def save_memory(fact: str, runtime: ToolRuntime[Context]) -> str:
    """Save a fact about the user for later conversations."""
    key = "-".join(fact.lower().split())[:60]
    runtime.store.put(("memories", runtime.context.user_id), key, {"text": fact})
    return f"saved {key}"


@tool
def recall_memories(query: str, runtime: ToolRuntime[Context]) -> str:
    """Look up what is known about the user."""
    items = runtime.store.search(("memories", runtime.context.user_id), query=query, limit=3)
    return "\n".join(f"- {item.value['text']}" for item in items) or "nothing yet"


def build_agent(memory, *replies: AIMessage, checkpointer=None):
    """The agent over ``memory``: the store for the tools, the middleware for recall and ingestion."""
    model = RecordingChatModel(messages=iter(replies), seen=[])
    agent = create_agent(
        model,
        tools=[save_memory, recall_memories],
        system_prompt="You are a helpful assistant.",
        middleware=[MemLoRAMiddleware(memory, user_id="alice")],
        context_schema=Context,
        checkpointer=checkpointer,
        store=MemLoRAStore(memory, namespaces=NAMESPACES),
    )
    return agent, model


def ask(agent, text: str, thread: str) -> dict:
    return agent.invoke({"messages": [{"role": "user", "content": text}]},
                        {"configurable": {"thread_id": thread}}, context=Context(user_id="alice"))

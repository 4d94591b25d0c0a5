"""End to end with real LlamaIndex chat engines and agents (the model is the only fake)."""

from __future__ import annotations

import json

import pytest
from li_fakes import extraction_calls
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.agent.workflow import FunctionAgent, ReActAgent
from llama_index.core.base.llms.types import ToolCallBlock
from llama_index.core.chat_engine import CondensePlusContextChatEngine, SimpleChatEngine
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms.mock import (
    MockFunctionCallingLLMWithChatMemoryOfLastCall,
    MockLLM,
    MockLLMWithChatMemoryOfLastCall,
)
from llama_index.core.tools import FunctionTool

from memlora_engine import GenerationRequest
from memlora_engine.testing import ScriptedGenerator
from memlora_integrations.llama_index import MemLoRALLM, MemLoRAMemory

# LlamaIndex's workflow agents inspect their own pydantic attributes (not ours): pydantic warns there.
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning:inspect"),
    pytest.mark.filterwarnings("ignore:is_running called from within a step:DeprecationWarning"),
]


def seen_by(llm: MockLLMWithChatMemoryOfLastCall) -> str:
    return "\n".join(m.content or "" for m in llm.last_chat_messages or [])


def test_simple_chat_engine_remembers_across_sessions(engine, generator) -> None:
    llm = MockLLMWithChatMemoryOfLastCall()
    first = SimpleChatEngine.from_defaults(llm=llm, memory=MemLoRAMemory.from_defaults(engine, user_id="alice"))
    first.chat("I live in Oslo")
    first.chat("I like green tea")
    assert len(extraction_calls(generator)) == 2  # one per user turn with its reply
    second = SimpleChatEngine.from_defaults(
        llm=llm, memory=MemLoRAMemory.from_defaults(engine, user_id="alice", session_id="later")
    )
    second.chat("Where do I live?")
    assert "- I live in Oslo" in seen_by(llm)
    assert "I like green tea" not in [m.content for m in llm.last_chat_messages if m.role.value == "user"]
    first.reset()
    assert first.chat_history == []
    assert engine.get_all(user_id="alice")  # reset keeps long-term memory


async def test_simple_chat_engine_async_and_streaming(engine, generator) -> None:
    llm = MockLLMWithChatMemoryOfLastCall()
    memory = MemLoRAMemory.from_defaults(engine, user_id="alice")
    chat_engine = SimpleChatEngine.from_defaults(llm=llm, memory=memory, system_prompt="Be brief.")
    await chat_engine.achat("I live in Oslo")
    streamed = await chat_engine.astream_chat("I like tea")
    async for _ in streamed.async_response_gen():  # also waits for the write to memory
        pass
    sync_stream = chat_engine.stream_chat("I play chess")
    for _ in sync_stream.response_gen:
        pass
    assert [m.role.value for m in memory.get_all()] == ["user", "assistant"] * 3
    assert len(extraction_calls(generator)) == 3
    await chat_engine.achat("Where do I live?")
    assert "- I live in Oslo" in seen_by(llm)


def test_condense_plus_context_chat_engine(engine, generator) -> None:
    llm = MockLLM()  # a completion model that answers with its prompt: the reply shows what it saw
    index = VectorStoreIndex.from_documents([Document(text="Oslo is the capital of Norway.")],
                                            embed_model=MockEmbedding(embed_dim=8))
    chat_engine = CondensePlusContextChatEngine.from_defaults(
        index.as_retriever(), llm=llm, memory=MemLoRAMemory.from_defaults(engine, user_id="alice")
    )
    chat_engine.chat("I live in Oslo")
    seen = str(chat_engine.chat("What is the capital of my country?"))
    assert len(extraction_calls(generator)) == 2
    assert "- I live in Oslo" in seen
    assert "capital of Norway" in seen


def react_model() -> ScriptedGenerator:
    """The scripted on-device model: extraction echoes users; generation answers in ReAct format."""
    from li_fakes import add_all, echo_facts

    def react(request: GenerationRequest) -> str:
        return "Thought: I can answer without using any more tools.\nAnswer: Happy to help."

    return ScriptedGenerator({"extraction": echo_facts, "update": add_all, "generation": react})


@pytest.mark.parametrize("streaming", [True, False])
async def test_react_agent_on_the_memlora_llm_with_memlora_memory(tmp_path, streaming) -> None:
    from memlora_engine import Memory, MemoryConfig
    from memlora_engine.testing import DeterministicEmbedder

    model = react_model()  # one model: memory operations and chat, each on its own adapter
    engine = Memory(MemoryConfig(store="memory", data_dir=tmp_path), generator=model, embedder=DeterministicEmbedder())
    agent = ReActAgent(tools=[], llm=MemLoRALLM(generator=model), streaming=streaming)
    # ReActAgent drops a leading system message, so the memories ride on the user message
    memory = MemLoRAMemory.from_defaults(engine, user_id="alice", session_id="monday", insert_method="user")
    response = await agent.run(user_msg="I live in Oslo", memory=memory)
    assert "Happy to help." in str(response)
    assert len(extraction_calls(model)) == 1
    later = MemLoRAMemory.from_defaults(engine, user_id="alice", session_id="tuesday", insert_method="user")
    await agent.run(user_msg="Where do I live?", memory=later)
    last_chat = [c for c in model.calls if c.operation.value == "generation"][-1]
    assert "- I live in Oslo" in last_chat.messages[-1]["content"]
    assert last_chat.messages[-1]["content"].endswith("Where do I live?")
    assert [m.content for m in later.get_all()][0] == "Where do I live?"  # the buffer keeps what was said


async def test_function_agent_tool_turns_are_one_extraction(engine, generator) -> None:
    def book_table(city: str = "Oslo") -> str:
        """Book a table."""
        return f"booked in {city}"

    llm = MockFunctionCallingLLMWithChatMemoryOfLastCall()
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(book_table)], llm=llm)
    memory = MemLoRAMemory.from_defaults(engine, user_id="alice")
    await agent.run(user_msg="Book me a table, I am vegetarian", memory=memory)
    assert len(extraction_calls(generator)) == 1
    history = memory.get_all()
    assert [m.role.value for m in history] == ["user", "assistant", "tool", "assistant"]
    assert isinstance(history[1].blocks[0], ToolCallBlock)
    await agent.run(user_msg="Anything else?", memory=memory)
    assert "- Book me a table, I am vegetarian" in "\n".join(m.content or "" for m in llm.last_chat_messages)


async def test_an_agent_context_holding_the_memory_is_saved_and_restored(engine, generator) -> None:
    from llama_index.core.workflow import Context

    llm = MockFunctionCallingLLMWithChatMemoryOfLastCall()
    agent = FunctionAgent(tools=[], llm=llm)
    ctx = Context(agent)
    await agent.run(user_msg="I live in Oslo", memory=MemLoRAMemory.from_defaults(engine, user_id="alice"), ctx=ctx)
    saved = json.loads(json.dumps(ctx.to_dict()))  # what a server would store between requests
    restored = Context.from_dict(agent, saved)
    await agent.run(user_msg="Where do I live?", ctx=restored)
    seen = [m.content for m in llm.last_chat_messages]
    assert "I live in Oslo" in seen and "Where do I live?" in seen  # the same session buffer
    memory = await restored.store.get("memory")
    assert isinstance(memory, MemLoRAMemory) and memory.engine is engine


def test_a_chat_engine_system_prompt_and_the_memories_reach_the_model_as_one_system_message(engine) -> None:
    model = ScriptedGenerator({"generation": ["Oslo."]})
    engine.add("I live in Oslo", user_id="alice", infer=False)
    chat = SimpleChatEngine.from_defaults(llm=MemLoRALLM(generator=model), system_prompt="Be brief.",
                                          memory=MemLoRAMemory.from_defaults(engine, user_id="alice"))
    chat.chat("Where do I live?")
    sent = model.calls[-1].messages
    assert [m["role"] for m in sent] == ["system", "user"]
    assert sent[0]["content"].startswith("Be brief.\n\n") and "- I live in Oslo" in sent[0]["content"]


async def test_an_agent_system_prompt_and_the_memories_reach_the_model_as_one_system_message(tmp_path) -> None:
    from memlora_engine import Memory, MemoryConfig
    from memlora_engine.testing import DeterministicEmbedder

    model = react_model()
    engine = Memory(MemoryConfig(store="memory", data_dir=tmp_path), generator=model, embedder=DeterministicEmbedder())
    engine.add("I live in Oslo", user_id="alice", infer=False)
    agent = ReActAgent(tools=[], llm=MemLoRALLM(generator=model), system_prompt="You are Ada.")
    await agent.run(user_msg="Where do I live?", memory=MemLoRAMemory.from_defaults(engine, user_id="alice"))
    sent = [c for c in model.calls if c.operation.value == "generation"][-1].messages
    assert [m["role"] for m in sent].count("system") == 1 and sent[0]["role"] == "system"
    assert "- I live in Oslo" in sent[0]["content"]


def test_docs_call_agents_with_user_msg() -> None:
    # agent.run("...", memory=...) is the positional form LlamaIndex moved away from.
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    files = [*root.glob("docs/*.md"), root / "README.md", *root.glob("cookbook/*.ipynb"),
             *root.glob("memlora_integrations/**/*.py")]
    positional = re.compile(r"""agent\.run\(\s*\\?["']""")
    assert [str(f.relative_to(root)) for f in files if positional.search(f.read_text(encoding="utf-8"))] == []

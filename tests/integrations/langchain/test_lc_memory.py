"""Contract tests for the legacy MemLoRAMemory, and ConversationChain end to end."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from langchain_classic.base_memory import BaseMemory
from langchain_classic.chains import ConversationChain
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from memlora_integrations.langchain import ChatMemLoRA, MemLoRAMemory


def texts(records):
    return sorted(r.text for r in records)


def test_is_a_base_memory_fitting_conversation_chain(lc_memory):
    memory = MemLoRAMemory(memory=lc_memory, user_id="alice")
    assert isinstance(memory, BaseMemory)
    assert memory.memory_variables == ["history"]
    assert (memory.input_key, memory.output_key) == ("input", "response")


def test_empty_memory_loads_an_empty_history(lc_memory):
    memory = MemLoRAMemory(memory=lc_memory, user_id="alice")
    assert memory.load_memory_variables({"input": "hi"}) == {"history": ""}
    assert MemLoRAMemory(memory=lc_memory, user_id="alice", return_messages=True).load_memory_variables(
        {"input": "hi"}
    ) == {"history": []}


def test_save_context_ingests_and_buffers_the_exchange(lc_memory):
    memory = MemLoRAMemory(memory=lc_memory, user_id="alice", session_id="s1", metadata={"via": "chain"})
    memory.save_context({"input": "I have a dog called Rex"}, {"response": "Lovely!"})
    assert texts(lc_memory.get_all(user_id="alice")) == ["I have a dog called Rex"]
    assert lc_memory.get_all(user_id="alice")[0].metadata == {"via": "chain"}
    assert [m["content"] for m in lc_memory.chat_messages("s1", user_id="alice")] == [
        "I have a dog called Rex", "Lovely!"
    ]


def test_load_returns_relevant_memories_then_recent_turns_as_text(lc_memory):
    memory = MemLoRAMemory(memory=lc_memory, user_id="alice")
    memory.save_context({"input": "I have a dog called Rex"}, {"response": "Lovely!"})
    history = memory.load_memory_variables({"input": "What is my dog called?"})["history"]
    assert history == (
        "Relevant memories from earlier conversations:\n- I have a dog called Rex\n\n"
        "Human: I have a dog called Rex\nAI: Lovely!"
    )


def test_load_as_messages(lc_memory):
    memory = MemLoRAMemory(memory=lc_memory, user_id="alice", return_messages=True)
    memory.save_context({"input": "I have a dog called Rex"}, {"response": "Lovely!"})
    messages = memory.load_memory_variables({"input": "dog"})["history"]
    assert [type(m) for m in messages] == [SystemMessage, HumanMessage, AIMessage]
    assert "- I have a dog called Rex" in messages[0].content


def test_recent_messages_window_and_k(lc_memory):
    memory = MemLoRAMemory(memory=lc_memory, user_id="alice", return_messages=True, recent_messages=2, k=1)
    for i in range(3):
        memory.save_context({"input": f"fact number {i}"}, {"response": f"ok {i}"})
    messages = memory.load_memory_variables({"input": "fact number 2"})["history"]
    assert messages[0].content.count("\n- ") == 1
    assert [m.content for m in messages[1:]] == ["fact number 2", "ok 2"]
    no_recent = MemLoRAMemory(memory=lc_memory, user_id="alice", recent_messages=0)
    assert "Human:" not in no_recent.load_memory_variables({"input": "fact"})["history"]


def test_keys_are_inferred_when_the_defaults_are_absent(lc_memory):
    memory = MemLoRAMemory(memory=lc_memory, user_id="alice")
    memory.save_context({"question": "I like tea"}, {"answer": "ok"})
    assert texts(lc_memory.get_all(user_id="alice")) == ["I like tea"]
    with pytest.raises(ValueError, match="input_key"):
        memory.save_context({"a": "1", "b": "2"}, {"answer": "ok"})


def test_ingest_false_keeps_only_the_buffer(lc_memory):
    memory = MemLoRAMemory(memory=lc_memory, user_id="alice", ingest=False)
    memory.save_context({"input": "I like tea"}, {"response": "ok"})
    assert lc_memory.get_all(user_id="alice") == []
    assert "Human: I like tea" in memory.load_memory_variables({"input": "tea"})["history"]


def test_clear_keeps_long_term_memories_unless_forget(lc_memory):
    memory = MemLoRAMemory(memory=lc_memory, user_id="alice")
    memory.save_context({"input": "I like tea"}, {"response": "ok"})
    memory.clear()
    assert "Human:" not in memory.load_memory_variables({"input": "tea"})["history"]
    assert texts(lc_memory.get_all(user_id="alice")) == ["I like tea"]
    memory.clear(forget=True)
    assert lc_memory.get_all(user_id="alice") == []


def test_scope_isolation(lc_memory):
    alice = MemLoRAMemory(memory=lc_memory, user_id="alice")
    alice.save_context({"input": "My PIN is 1234"}, {"response": "ok"})
    bob = MemLoRAMemory(memory=lc_memory, user_id="bob")
    assert bob.load_memory_variables({"input": "What is my PIN?"}) == {"history": ""}
    same_user_other_agent = MemLoRAMemory(memory=lc_memory, user_id="alice", agent_id="helper")
    assert same_user_other_agent.load_memory_variables({"input": "PIN"}) == {"history": ""}


def test_requires_a_scope(lc_memory):
    with pytest.raises(ValueError, match="at least one of user_id"):
        MemLoRAMemory(memory=lc_memory)


async def test_async_variants(lc_memory):
    memory = MemLoRAMemory(memory=lc_memory, user_id="alice")
    await memory.asave_context({"input": "I like tea"}, {"response": "ok"})
    loaded = await memory.aload_memory_variables({"input": "tea"})
    assert "- I like tea" in loaded["history"]
    await memory.aclear()
    assert "Human:" not in (await memory.aload_memory_variables({"input": "tea"}))["history"]
    await memory.aclear(forget=True)
    assert lc_memory.get_all(user_id="alice") == []


def test_conversation_chain_runs_several_turns(lc_memory):
    llm = FakeListChatModel(responses=["Hi Alice!", "Rex is a good name.", "Your dog is Rex."])
    chain = ConversationChain(llm=llm, memory=MemLoRAMemory(memory=lc_memory, user_id="alice"))
    chain.invoke({"input": "My name is Alice"})
    chain.invoke({"input": "I have a dog called Rex"})
    assert chain.invoke({"input": "What is my dog called?"})["response"] == "Your dog is Rex."
    assert texts(lc_memory.get_all(user_id="alice")) == [
        "I have a dog called Rex", "My name is Alice", "What is my dog called?"
    ]


async def test_conversation_chain_async(lc_memory):
    chain = ConversationChain(
        llm=ChatMemLoRA.from_memory(lc_memory), memory=MemLoRAMemory(memory=lc_memory, user_id="alice")
    )
    await chain.ainvoke({"input": "I have a dog called Rex"})
    out = await chain.ainvoke({"input": "What is my dog called?"})
    assert "I have a dog called Rex" in out["response"]


# A first process talks to the chain; its memories and session live in DATA_DIR.
_EARLIER_PROCESS = """
import importlib.util, sys, warnings
warnings.simplefilter("ignore")
spec = importlib.util.spec_from_file_location("lc_fakes", sys.argv[1])
fakes = importlib.util.module_from_spec(spec); spec.loader.exec_module(fakes)
from langchain_classic.chains import ConversationChain
from memlora_integrations.langchain import ChatMemLoRA, MemLoRAMemory

memory = fakes.build_memory(sys.argv[2])
chain = ConversationChain(
    llm=ChatMemLoRA.from_memory(memory),
    memory=MemLoRAMemory(memory=memory, user_id="alice", session_id="monday"),
)
for line in ["My name is Alice", "I live in Lisbon", "I have a dog called Rex"]:
    chain.invoke({"input": line})
print("stored", len(memory.get_all(user_id="alice")))
"""


def test_conversation_chain_answers_from_an_earlier_process(tmp_path, lc_fakes):
    data_dir = tmp_path / "data"
    repo = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_EARLIER_PROCESS), str(lc_fakes.__file__), str(data_dir)],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "stored 3" in done.stdout

    memory = lc_fakes.build_memory(data_dir)  # this process has never seen the conversation
    chat_memory = MemLoRAMemory(memory=memory, user_id="alice", session_id="tuesday")
    chain = ConversationChain(llm=ChatMemLoRA.from_memory(memory), memory=chat_memory)
    answer = chain.invoke({"input": "What is my dog called?"})["response"]
    assert "I have a dog called Rex" in answer
    # the earlier session's turns are there too, and other users see nothing
    assert len(memory.chat_messages("monday", user_id="alice")) == 6
    bob = ConversationChain(llm=ChatMemLoRA.from_memory(memory), memory=MemLoRAMemory(memory=memory, user_id="bob"))
    assert bob.invoke({"input": "What is my dog called?"})["response"] == "I don't know yet."


@pytest.mark.slow
def test_conversation_chain_on_the_real_on_device_model(lc_memory):
    pytest.importorskip("memlora_engine.backbone")
    llm = ChatMemLoRA.from_backbone(model="gemma-3-270m", max_tokens=24)
    chain = ConversationChain(llm=llm, memory=MemLoRAMemory(memory=lc_memory, user_id="alice"))
    first = chain.invoke({"input": "Hi, I'm Alice and I have a dog called Rex."})
    second = chain.invoke({"input": "What is my dog called?"})
    assert isinstance(first["response"], str) and isinstance(second["response"], str)
    assert "Human: Hi, I'm Alice" in chain.memory.load_memory_variables({"input": "dog"})["history"]


def test_load_without_inputs_returns_the_recent_turns(lc_memory):
    # How LangChain's docs inspect a memory: load_memory_variables({}).
    memory = MemLoRAMemory(memory=lc_memory, user_id="alice")
    assert memory.load_memory_variables({}) == {"history": ""}
    memory.save_context({"input": "I have a dog called Rex"}, {"response": "Lovely!"})
    assert memory.load_memory_variables({}) == {"history": "Human: I have a dog called Rex\nAI: Lovely!"}
    as_messages = MemLoRAMemory(memory=lc_memory, user_id="alice", return_messages=True)
    assert [m.content for m in as_messages.load_memory_variables({})["history"]] == ["I have a dog called Rex", "Lovely!"]

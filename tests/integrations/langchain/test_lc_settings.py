"""The LangChain classes' settings vocabulary (k, score_threshold, ingest, infer, forget) and its old spellings."""

from __future__ import annotations

import pytest
from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage

from memlora_integrations.langchain import (
    MemLoRAChatMessageHistory,
    MemLoRAMemory,
    MemLoRAMiddleware,
    MemLoRARetriever,
)


def seed(memory) -> None:
    for text in ("Alice has a dog called Rex", "Alice is vegetarian", "Alice works as a nurse"):
        memory.add(text, user_id="alice", infer=False)


def extractions(memory) -> int:
    return sum(c.operation.value == "extraction" for c in memory.generator.calls)


def deprecated(old: str, new: str):
    return pytest.warns(DeprecationWarning, match=f"'{old}' is deprecated, use '{new}'")


# -- the new spelling -------------------------------------------------------------------
def test_score_threshold_at_construction_and_per_call_filters_the_same(lc_memory):
    seed(lc_memory)
    everything = MemLoRARetriever(memory=lc_memory, user_id="alice", k=5)
    strict = MemLoRARetriever(memory=lc_memory, user_id="alice", k=5, score_threshold=0.99)
    assert len(everything.invoke("dog called Rex")) == 3
    assert strict.invoke("dog called Rex") == everything.invoke("dog called Rex", score_threshold=0.99)
    assert len(strict.invoke("dog called Rex")) < 3


async def test_score_threshold_per_call_in_async(lc_memory):
    seed(lc_memory)
    retriever = MemLoRARetriever(memory=lc_memory, user_id="alice", k=5)
    assert len(await retriever.ainvoke("dog called Rex", score_threshold=0.99)) < 3


def test_memory_score_threshold_and_infer(lc_memory):
    seed(lc_memory)
    memory = MemLoRAMemory(memory=lc_memory, user_id="alice", score_threshold=0.99, recent_messages=0, infer=False)
    assert memory.load_memory_variables({"input": "nothing alike"}) == {"history": ""}
    memory.save_context({"input": "I live in Oslo"}, {"response": "Nice."})
    assert extractions(lc_memory) == 0  # stored as said, no model call
    assert {"I live in Oslo", "Nice."} <= {r.text for r in lc_memory.get_all(user_id="alice")}


def test_middleware_infer_false_stores_the_exchange_without_extraction(lc_memory):
    llm = GenericFakeChatModel(messages=iter([AIMessage("Noted.")]))
    agent = create_agent(llm, middleware=[MemLoRAMiddleware(lc_memory, user_id="alice", infer=False)])
    agent.invoke({"messages": [{"role": "user", "content": "I like tea"}]})
    assert extractions(lc_memory) == 0
    assert "I like tea" in {r.text for r in lc_memory.get_all(user_id="alice")}


def test_history_infer_false_stores_each_turn_without_extraction(lc_memory):
    history = MemLoRAChatMessageHistory(lc_memory, "s1", user_id="alice", infer=False)
    history.add_messages([HumanMessage("I like tea"), AIMessage("Me too.")])
    assert extractions(lc_memory) == 0
    assert "I like tea" in {r.text for r in lc_memory.get_all(user_id="alice")}


# -- the old spellings, deprecated --------------------------------------------------------
def test_retriever_threshold_is_a_deprecated_score_threshold(lc_memory):
    seed(lc_memory)
    with deprecated("threshold", "score_threshold") as record:
        retriever = MemLoRARetriever(memory=lc_memory, user_id="alice", k=5, threshold=0.99)
    assert record[0].filename == __file__  # attributed to the caller, so Python's default filters show it
    assert retriever.score_threshold == 0.99
    with deprecated("threshold", "score_threshold"):
        assert retriever.threshold == 0.99
    with deprecated("threshold", "score_threshold") as record:
        per_call = retriever.invoke("dog called Rex", k=5, threshold=0.99)
    assert record[0].filename == __file__
    assert per_call == retriever.invoke("dog called Rex", k=5, score_threshold=0.99)


async def test_retriever_threshold_per_call_in_async_is_deprecated(lc_memory):
    seed(lc_memory)
    retriever = MemLoRARetriever(memory=lc_memory, user_id="alice", k=5)
    with deprecated("threshold", "score_threshold"):
        docs = await retriever.ainvoke("dog called Rex", threshold=0.99)
    assert docs == await retriever.ainvoke("dog called Rex", score_threshold=0.99)


def test_both_spellings_at_once_are_refused(lc_memory):
    with pytest.raises(TypeError, match="both 'threshold'"):
        MemLoRARetriever(memory=lc_memory, user_id="alice", threshold=0.5, score_threshold=0.5)
    retriever = MemLoRARetriever(memory=lc_memory, user_id="alice")
    with pytest.raises(TypeError, match="both 'threshold'"):
        retriever.invoke("x", threshold=0.5, score_threshold=0.5)
    with pytest.raises(TypeError, match="both 'save'"):
        MemLoRAMiddleware(lc_memory, user_id="alice", save=False, ingest=False)
    with pytest.raises(TypeError, match="unexpected keyword arguments: limit"):
        MemLoRAMiddleware(lc_memory, user_id="alice", limit=3)


def test_memory_threshold_is_a_deprecated_score_threshold(lc_memory):
    with deprecated("threshold", "score_threshold") as record:
        memory = MemLoRAMemory(memory=lc_memory, user_id="alice", threshold=0.4)
    assert record[0].filename == __file__
    assert memory.score_threshold == 0.4
    with deprecated("threshold", "score_threshold"):
        memory.threshold = 0.7
    assert memory.score_threshold == 0.7


def test_middleware_save_and_threshold_are_deprecated(lc_memory):
    with deprecated("save", "ingest") as record:
        middleware = MemLoRAMiddleware(lc_memory, user_id="alice", save=False)
    assert record[0].filename == __file__
    assert middleware.ingest is False
    with deprecated("save", "ingest"):
        assert middleware.save is False
    with deprecated("threshold", "score_threshold"):
        assert MemLoRAMiddleware(lc_memory, user_id="alice", threshold=0.3).score_threshold == 0.3
    # and the behaviour is the new spelling's: save=False is read-only
    agent = create_agent(GenericFakeChatModel(messages=iter([AIMessage("ok")])), middleware=[middleware])
    agent.invoke({"messages": [{"role": "user", "content": "I like tea"}]})
    assert lc_memory.get_all(user_id="alice") == []

"""MemLoRARetriever: LangChain's standard retriever suite, plus document shape, overrides and scopes."""

from __future__ import annotations

import json
from functools import lru_cache

import pytest
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import ParrotFakeChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough
from langchain_tests.integration_tests import RetrieversIntegrationTests

from memlora_engine import FilterError, Memory, MemoryConfig
from memlora_integrations.langchain import MemLoRARetriever
from memlora_integrations.langchain.retrievers import record_to_document

FACTS = [
    ("Alice lives in Lisbon", {"topic": "home"}),
    ("Alice has a dog called Rex", {"topic": "pets"}),
    ("Alice is vegetarian", {"topic": "food"}),
    ("Alice plays chess on Sundays", {"topic": "hobbies"}),
    ("Alice works as a nurse", {"topic": "work"}),
]


def seed(memory, user_id="alice", facts=FACTS):
    for text, metadata in facts:
        memory.add(text, user_id=user_id, infer=False, metadata=metadata)
    return memory


@lru_cache(maxsize=1)
def _suite_memory():
    # The suite's constructor params are a property, not a fixture; conftest registered lc_fakes.
    import lc_fakes

    return seed(lc_fakes.build_memory())


class TestMemLoRARetrieverStandard(RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[MemLoRARetriever]:
        return MemLoRARetriever

    @property
    def retriever_constructor_params(self) -> dict:
        return {"memory": _suite_memory(), "user_id": "alice"}

    @property
    def retriever_query_example(self) -> str:
        return "Where does Alice live?"


def test_documents_carry_text_id_score_times_scope_and_metadata(lc_memory):
    seed(lc_memory)
    doc = MemLoRARetriever(memory=lc_memory, user_id="alice", k=1).invoke("lives in Lisbon")[0]
    record = lc_memory.get(doc.id, user_id="alice")
    assert doc.page_content == record.text == "Alice lives in Lisbon"
    assert doc.metadata["id"] == record.id
    assert 0 < doc.metadata["score"] <= 1
    assert doc.metadata["created_at"] == record.created_at
    assert doc.metadata["updated_at"] is None
    assert doc.metadata["user_id"] == "alice" and "agent_id" not in doc.metadata
    assert doc.metadata["topic"] == "home"


def test_engine_fields_win_over_user_metadata(lc_memory):
    lc_memory.add("Alice likes scores", user_id="alice", infer=False, metadata={"score": "high", "keep": 1})
    doc = MemLoRARetriever(memory=lc_memory, user_id="alice").invoke("scores")[0]
    assert isinstance(doc.metadata["score"], float) and doc.metadata["keep"] == 1


def test_record_to_document_without_score(lc_memory):
    seed(lc_memory)
    doc = record_to_document(lc_memory.get_all(user_id="alice")[0])
    assert isinstance(doc, Document) and doc.metadata["score"] is None


def test_best_match_first(lc_memory):
    seed(lc_memory)
    docs = MemLoRARetriever(memory=lc_memory, user_id="alice", k=5).invoke("dog called Rex")
    assert docs[0].page_content == "Alice has a dog called Rex"
    scores = [d.metadata["score"] for d in docs]
    assert scores == sorted(scores, reverse=True)


def test_filters_at_construction_and_per_call(lc_memory):
    seed(lc_memory)
    retriever = MemLoRARetriever(memory=lc_memory, user_id="alice", filters={"topic": "food"})
    assert [d.page_content for d in retriever.invoke("Alice")] == ["Alice is vegetarian"]
    per_call = retriever.invoke("Alice", filters={"topic": {"in": ["pets", "work"]}})
    assert sorted(d.page_content for d in per_call) == ["Alice has a dog called Rex", "Alice works as a nurse"]


def test_score_threshold_drops_weak_matches(lc_memory):
    seed(lc_memory)
    retriever = MemLoRARetriever(memory=lc_memory, user_id="alice", k=5)
    assert len(retriever.invoke("dog called Rex", score_threshold=0.99)) < 5


def test_bad_filter_raises_the_engine_error(lc_memory):
    seed(lc_memory)
    with pytest.raises(FilterError):
        MemLoRARetriever(memory=lc_memory, user_id="alice").invoke("x", filters={"_hash": "x"})


def test_k_must_be_positive(lc_memory):
    with pytest.raises(ValueError):
        MemLoRARetriever(memory=lc_memory, user_id="alice", k=0)


def test_scope_is_required(lc_memory):
    # pydantic wraps the engine's ScopeError (a ValueError) in its ValidationError
    with pytest.raises(ValueError, match="at least one of user_id, agent_id or run_id"):
        MemLoRARetriever(memory=lc_memory)
    with pytest.raises(ValueError, match="user_id must be 1-256 characters"):
        MemLoRARetriever(memory=lc_memory, user_id="")


def test_scope_isolation(lc_memory):
    seed(lc_memory, "alice")
    seed(lc_memory, "bob", [("Bob lives in Oslo", {})])
    bob_docs = MemLoRARetriever(memory=lc_memory, user_id="bob", k=10).invoke("Where does Alice live?")
    assert [d.page_content for d in bob_docs] == ["Bob lives in Oslo"]
    assert MemLoRARetriever(memory=lc_memory, agent_id="alice").invoke("Alice") == []
    assert MemLoRARetriever(memory=lc_memory, user_id="alice", run_id="r1").invoke("Alice") == []


async def test_ainvoke_honours_overrides(lc_memory):
    seed(lc_memory)
    retriever = MemLoRARetriever(memory=lc_memory, user_id="alice")
    docs = await retriever.ainvoke("Alice", k=2, filters={"topic": {"in": ["food", "home", "pets"]}})
    assert len(docs) == 2 and all(d.metadata["topic"] in ("food", "home", "pets") for d in docs)


def test_in_a_rag_chain(lc_memory):
    seed(lc_memory)
    retriever = MemLoRARetriever(memory=lc_memory, user_id="alice", k=2)
    prompt = ChatPromptTemplate.from_template("Known facts:\n{context}\n\nQuestion: {question}")
    chain = (
        {"context": retriever | (lambda docs: "\n".join(f"- {d.page_content}" for d in docs)),
         "question": RunnablePassthrough()}
        | prompt
        | ParrotFakeChatModel()  # echoes its prompt, so we can see what the model was given
        | StrOutputParser()
    )
    out = chain.invoke("What is the name of Alice's dog?")
    assert "- Alice has a dog called Rex" in out and "Question: What is the name of Alice's dog?" in out


def test_vector_store_spellings_search_kwargs_and_filter(lc_memory):
    # The spellings of LangChain's VectorStoreRetriever (search_kwargs) and of the vector stores (filter).
    seed(lc_memory)
    one = MemLoRARetriever(memory=lc_memory, user_id="alice", search_kwargs={"k": 1})
    assert len(one.invoke("Alice")) == 1
    food = MemLoRARetriever(memory=lc_memory, user_id="alice", filter={"topic": "food"})
    assert [d.page_content for d in food.invoke("Alice")] == ["Alice is vegetarian"]
    both = MemLoRARetriever(
        memory=lc_memory, user_id="alice", search_kwargs={"k": 2, "filter": {"topic": {"in": ["pets", "work"]}}}
    )
    assert sorted(d.page_content for d in both.invoke("Alice")) == ["Alice has a dog called Rex", "Alice works as a nurse"]
    assert [d.page_content for d in both.invoke("Alice", filter={"topic": "home"})] == ["Alice lives in Lisbon"]


def test_unknown_search_kwargs_are_refused(lc_memory):
    with pytest.raises(ValueError, match="search_kwargs"):
        MemLoRARetriever(memory=lc_memory, user_id="alice", search_kwargs={"fetch_k": 20})
    with pytest.raises(ValueError, match="filter"):
        MemLoRARetriever(memory=lc_memory, user_id="alice", filter={"topic": "a"}, filters={"topic": "b"})


def test_a_memory_found_by_its_conversations_words_comes_first_without_retriever_changes(tmp_path, minilm):
    """The engine's ``search`` re-orders by the words of each memory's source window
    (MemoryConfig.search_lexical_weight); the retriever gains it as it is (issue 18, item 5)."""
    lines = [json.dumps({"id": id_, "text": text, "created_at": "2024-01-01T00:00:00+00:00",
                         "source": f"Cleo: {said}\nDev: Wow."})
             for id_, text, said in (("a", "Cleo finished renovating her studio.",
                                      "We went with Marley flooring in the end, it's perfect for dancing."),
                                     ("b", "Cleo wants a new floor for her kitchen.",
                                      "Our kitchen floor is so old, I want a new one."))]
    first = {}
    for weight in (0.4, None):
        # source_weight off: the stored vectors are the texts', so only the re-ordering reads the window
        config = MemoryConfig(store="memory", data_dir=tmp_path / str(weight), source_weight=None,
                              search_lexical_weight=weight)
        memory = Memory(config, embedder=minilm)
        assert memory.import_(lines, user_id="cleo") == 2
        retriever = MemLoRARetriever(memory=memory, user_id="cleo", k=1)
        first[weight] = retriever.invoke("Is Cleo happy with the Marley flooring?")[0].page_content
    assert first == {0.4: "Cleo finished renovating her studio.", None: "Cleo wants a new floor for her kitchen."}

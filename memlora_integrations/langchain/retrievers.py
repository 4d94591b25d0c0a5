"""LangChain retriever over a scope's MemLoRA memories."""

from __future__ import annotations

import asyncio
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field, field_validator, model_validator

from memlora_engine import Memory, MemoryRecord
from memlora_integrations._scope import resolve_memory, scope_kwargs
from memlora_integrations._settings import deprecated_alias, rename_deprecated

__all__ = ["MemLoRARetriever", "record_to_document"]


def record_to_document(record: MemoryRecord) -> Document:
    """A memory as a ``Document``: its text, its id, and flat metadata.

    Metadata holds the memory's own metadata plus ``score`` (search similarity),
    ``created_at``, ``updated_at`` and the scope ids that are set; on a name clash
    these engine fields win over user metadata.
    """
    metadata: dict[str, Any] = dict(record.metadata)
    metadata.update(
        {
            "id": record.id,
            "score": record.score,
            "created_at": record.created_at,
            "updated_at": record.updated_at,
            **record.scope.as_dict(),
        }
    )
    return Document(page_content=record.text, id=record.id, metadata=metadata)


class MemLoRARetriever(BaseRetriever):
    """Retrieves a scope's long-term memories, most relevant first, as ``Document``\\s.

    Setup:
        .. code-block:: bash

            pip install "memlora[langchain]"

    Key init args:
        memory: the engine ``Memory`` whose memories are searched.
        user_id / agent_id / run_id: the scope searched (at least one).
        k: how many memories to return (4); ``search_kwargs={"k": ...}`` is accepted too.
        filters: metadata filter (``filter=`` and ``search_kwargs={"filter": ...}`` too).
        score_threshold: drop memories below this cosine similarity.

    Instantiate:
        .. code-block:: python

            from memlora_engine import Memory
            from memlora_integrations.langchain import MemLoRARetriever

            memory = Memory()
            retriever = MemLoRARetriever(memory=memory, user_id="alice", k=4)

    Usage:
        .. code-block:: python

            docs = retriever.invoke("where does alice live?")
            docs = retriever.invoke("travel plans", k=2, filters={"topic": "travel"})
            docs[0].page_content, docs[0].metadata["score"]

    Use within a chain:
        .. code-block:: python

            from langchain_core.output_parsers import StrOutputParser
            from langchain_core.prompts import ChatPromptTemplate
            from langchain_core.runnables import RunnablePassthrough

            prompt = ChatPromptTemplate.from_template(
                "Known about the user:\\n{context}\\n\\nQuestion: {question}"
            )

            def format_docs(docs):
                return "\\n".join(f"- {d.page_content}" for d in docs)

            chain = (
                {"context": retriever | format_docs, "question": RunnablePassthrough()}
                | prompt
                | llm
                | StrOutputParser()
            )
            chain.invoke("What city should I recommend restaurants in?")

    ``k``, ``filters`` and ``score_threshold`` set at construction can be overridden per
    call as keyword arguments of ``invoke``/``ainvoke`` (the names of LangChain's
    ``search_kwargs``; ``threshold`` is a deprecated spelling of ``score_threshold``).
    The vector stores' spellings work too: ``filter=`` for ``filters``, and at
    construction ``search_kwargs={"k": ..., "filter": ..., "score_threshold": ...}``
    as ``VectorStoreRetriever`` takes them; any other search keyword is refused
    rather than silently ignored. The scope is fixed per
    retriever (``run_id`` is also LangChain's name for a tracing id, so it cannot
    be a per-call argument).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    memory: Memory
    """The engine; an ``AsyncMemory`` is unwrapped to the ``Memory`` it wraps."""
    user_id: str | None = None
    agent_id: str | None = None
    run_id: str | None = None
    k: int = Field(default=4, ge=1)
    """How many memories to return."""
    filters: dict[str, Any] | None = None
    """Metadata filter in the engine's grammar, e.g. ``{"topic": {"in": ["food", "travel"]}}``."""
    score_threshold: float | None = None
    """Drop memories whose similarity score is below this."""

    threshold = deprecated_alias("threshold")

    def __init__(self, **data: Any) -> None:
        super().__init__(**_vector_store_spellings(rename_deprecated(data, type(self).__name__, ("threshold",))))

    @field_validator("memory", mode="before")
    @classmethod
    def _unwrap(cls, value: Any) -> Memory:
        return resolve_memory(value)

    @model_validator(mode="after")
    def _check_scope(self) -> MemLoRARetriever:
        scope_kwargs(self.user_id, self.agent_id, self.run_id)
        return self

    def _score_threshold(self, score_threshold: float | None, threshold: float | None) -> float | None:
        """The per-call ``score_threshold``, also read from its deprecated spelling ``threshold``."""
        given = {"score_threshold": score_threshold, "threshold": threshold}
        given = {name: value for name, value in given.items() if value is not None}
        return rename_deprecated(given, type(self).__name__, ("threshold",)).get("score_threshold")

    def _search(
        self, query: str, k: int | None, filters: dict[str, Any] | None, score_threshold: float | None
    ) -> list[Document]:
        records = self.memory.search(
            query,
            limit=self.k if k is None else k,
            filters=self.filters if filters is None else filters,
            threshold=self.score_threshold if score_threshold is None else score_threshold,
            **scope_kwargs(self.user_id, self.agent_id, self.run_id),
        )
        return [record_to_document(r) for r in records]

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
        filters: dict[str, Any] | None = None,
        score_threshold: float | None = None,
        threshold: float | None = None,
        filter: dict[str, Any] | None = None,  # noqa: A002 - the vector stores' spelling
    ) -> list[Document]:
        filters = _one_filter(filters, filter)
        return self._search(query, k, filters, self._score_threshold(score_threshold, threshold))

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        k: int | None = None,
        filters: dict[str, Any] | None = None,
        score_threshold: float | None = None,
        threshold: float | None = None,
        filter: dict[str, Any] | None = None,  # noqa: A002 - the vector stores' spelling
    ) -> list[Document]:
        filters = _one_filter(filters, filter)
        score_threshold = self._score_threshold(score_threshold, threshold)  # warns here, not in the worker
        return await asyncio.to_thread(self._search, query, k, filters, score_threshold)


_SEARCH_KWARGS = {"k": "k", "filter": "filters", "filters": "filters", "score_threshold": "score_threshold"}


def _one_filter(filters: dict[str, Any] | None, filter: dict[str, Any] | None) -> dict[str, Any] | None:  # noqa: A002
    """``filters``, or the vector stores' ``filter``; both at once is an error, not a silent choice."""
    if filters is not None and filter is not None:
        raise ValueError("pass the filter as filters= or as filter=, not both")
    return filter if filters is None else filters


def _vector_store_spellings(data: dict[str, Any]) -> dict[str, Any]:
    """Constructor arguments with ``filter=`` and ``search_kwargs={...}`` (VectorStoreRetriever's) mapped to fields."""
    data = dict(data)
    if "filter" in data:
        data["filters"] = _one_filter(data.get("filters"), data.pop("filter"))
    search_kwargs = data.pop("search_kwargs", None) or {}
    unknown = sorted(set(search_kwargs) - set(_SEARCH_KWARGS))
    if unknown:
        raise ValueError(f"search_kwargs {unknown} are not supported by MemLoRARetriever (it takes {sorted(_SEARCH_KWARGS)})")
    for key, value in search_kwargs.items():
        field = _SEARCH_KWARGS[key]
        if data.get(field) is not None and data[field] != value:
            raise ValueError(f"{field} is given both directly and in search_kwargs[{key!r}]")
        data[field] = value
    return data

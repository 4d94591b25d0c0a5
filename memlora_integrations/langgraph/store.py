"""``MemLoRAStore``: the MemLoRA engine as a LangGraph ``BaseStore`` (long-term memory across threads)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    get_text_at_path,
    validate_op_namespace,
)

from memlora_engine import AddResult, ConfigError, InvalidInputError, Memory, MemoryNotFoundError, MemoryRecord, Scope
from memlora_engine.memory import text_hash
from memlora_integrations._scope import resolve_memory
from memlora_integrations.langgraph._namespaces import NamespaceScopes, matches_condition, matches_filter

__all__ = ["TEXT_HASH_KEY", "VALUE_KEY", "MemLoRAStore"]

VALUE_KEY = "langgraph_value"
"""The memory metadata key holding an item's value (as JSON)."""

TEXT_HASH_KEY = "langgraph_text_hash"
"""The memory metadata key holding the hash of the text the store wrote (to see the engine rewrite it)."""


class MemLoRAStore(BaseStore):
    """A LangGraph store whose items are MemLoRA memories: on device, persistent, searched by meaning.

    Each namespace is a MemLoRA scope (see :mod:`memlora_integrations.langgraph._namespaces`):

    ==========================  ==================================  ==========================================
    ``namespaces``              namespace                           scope
    ==========================  ==================================  ==========================================
    None (default)              ``("memories", "alice")``           ``user_id="memories.alice"``
    ``[("memories",             ``("memories", "alice")``           ``user_id="alice"`` (what a
    "{user_id}")]``                                                 ``MemLoRAMiddleware(user_id="alice")`` uses)
    ``[("{user_id}",            ``("alice", "travel")``             ``user_id="alice", agent_id="travel"``
    "{agent_id}")]``
    ==========================  ==================================  ==========================================

    A namespace that maps to no scope (one no template fits) raises
    :class:`~memlora_integrations.langgraph.NamespaceError` (a ``ScopeError`` and
    LangGraph's ``InvalidNamespaceError``).

    * ``put(namespace, key, value)`` stores the value as it is (no model): the memory
      with id ``key``, its text taken from the value (below), the value kept whole
      beside it. A second ``put`` of the key replaces both; ``created_at`` stays.
    * :meth:`ingest` (and :meth:`aingest`) hands a conversation to the on-device model,
      which extracts facts and decides ADD/UPDATE/DELETE/NONE against the namespace's
      memories; each fact becomes an item ``{"text": ...}`` under a key the engine picks.
      The ``BaseStore`` operations have no room for such an option, hence the method.
    * ``search`` ranks by the engine's embeddings when given a ``query`` (``score`` is
      the cosine similarity), else lists oldest first; ``filter`` matches the value's
      fields as LangGraph's stores do (``$eq``, ``$ne``, ``$gt``, ``$gte``, ``$lt``, ``$lte``).
    * Memories the store did not write (ingested, or written by the middleware or the
      engine) are items ``{"text": ...}`` (plus ``"metadata"`` when they have any).

    The memory's text, which is what gets embedded, searched and shown to the model:
    the text at the ``index`` fields (the ``put``'s, else the store's), else the value's
    ``"text"`` when it is a string, else the value as JSON. ``index=False`` is accepted
    but every memory is embedded. TTLs are not supported (``supports_ttl`` is False).

    Setup:
        .. code-block:: bash

            pip install "memlora[langchain]"

    Key init args:
        memory: the engine ``Memory`` holding the items.
        namespaces: namespace templates mapping to scopes (table above; None: the
            whole namespace joined by "." is the ``user_id``).
        index: LangGraph's index config; only ``fields`` is read (``dims`` accepted),
            the engine's embedder embeds.

    Instantiate:
        .. code-block:: python

            from memlora_engine import Memory
            from memlora_integrations.langgraph import MemLoRAStore

            store = MemLoRAStore(Memory(), namespaces=[("memories", "{user_id}")])

    Usage:
        .. code-block:: python

            store.put(("memories", "alice"), "diet", {"text": "Alice is vegetarian"})
            store.get(("memories", "alice"), "diet").value   # {"text": "Alice is vegetarian"}
            store.search(("memories", "alice"), query="what does alice eat?", limit=3)
            store.ingest(("memories", "alice"), [{"role": "user", "content": "I moved to Oslo."}])

    Use within an agent:
        .. code-block:: python

            from langchain.agents import create_agent
            from langchain.tools import ToolRuntime, tool

            @tool
            def remember(fact: str, runtime: ToolRuntime) -> str:
                \"\"\"Save a fact about the user.\"\"\"
                runtime.store.put(("memories", "alice"), fact[:40], {"text": fact})
                return "saved"

            agent = create_agent(model=llm, tools=[remember], store=store)

    Args:
        memory: the engine (an ``AsyncMemory`` is unwrapped); the async methods run it
            in a worker thread.
        namespaces: namespace templates (see above); None maps every namespace.
        index: LangGraph's index config; only ``"fields"`` is used (the engine embeds,
            with its own embedder), and an ``"embed"`` is refused.

    Raises:
        ConfigError: bad templates, or an ``index`` with an ``"embed"``.
    """

    def __init__(
        self,
        memory: Memory,
        *,
        namespaces: Sequence[Sequence[str]] | None = None,
        index: dict[str, Any] | None = None,
    ) -> None:
        self.memory = resolve_memory(memory)
        self.scopes = NamespaceScopes(namespaces)
        self.fields: list[str] | None = None
        if index is not None:
            unknown = set(index) - {"fields", "dims"}
            if unknown:
                raise ConfigError(f"MemLoRAStore embeds with the engine's embedder; index takes only 'fields' "
                                  f"(got {sorted(unknown)})")
            self.fields = list(index.get("fields") or []) or None

    # -- BaseStore ----------------------------------------------------------------------
    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run the operations in order (a put is seen by the operations after it)."""
        results: list[Result] = []
        for op in ops:
            validate_op_namespace(op)
            if isinstance(op, GetOp):
                results.append(self._get(op))
            elif isinstance(op, SearchOp):
                results.append(self._search(op))
            elif isinstance(op, ListNamespacesOp):
                results.append(self._list_namespaces(op))
            elif isinstance(op, PutOp):
                self._put(op)
                results.append(None)
            else:
                raise TypeError(f"unknown store operation {type(op).__name__}")
        return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """:meth:`batch` in a worker thread: the event loop is never blocked by the engine."""
        return await asyncio.to_thread(self.batch, list(ops))

    # -- ingestion ----------------------------------------------------------------------
    def ingest(self, namespace: tuple[str, ...], messages: Any, *, metadata: dict[str, Any] | None = None,
               infer: bool = True) -> AddResult:
        """Remember what ``messages`` say in ``namespace``, through the model's extraction and update.

        Args:
            namespace: where the memories go.
            messages: a string or chat messages, as ``Memory.add`` takes them.
            metadata: stored with every memory written.
            infer: False stores each message's text as is (no model).

        Returns:
            The engine's result: ``events`` name each key written (``id``) and what happened.
        """
        scope = self.scopes.scope(namespace)
        return self.memory.add(messages, metadata=metadata, infer=infer,
                               user_id=scope.user_id, agent_id=scope.agent_id, run_id=scope.run_id)

    async def aingest(self, namespace: tuple[str, ...], messages: Any, *, metadata: dict[str, Any] | None = None,
                      infer: bool = True) -> AddResult:
        """:meth:`ingest` in a worker thread."""
        return await asyncio.to_thread(self.ingest, namespace, messages, metadata=metadata, infer=infer)

    # -- the operations -------------------------------------------------------------------
    def _get(self, op: GetOp) -> Item | None:
        scope = self.scopes.scope(op.namespace)
        record = self.memory.get(op.key, user_id=scope.user_id, agent_id=scope.agent_id, run_id=scope.run_id)
        return None if record is None else _item(tuple(op.namespace), record)

    def _put(self, op: PutOp) -> None:
        scope = self.scopes.scope(op.namespace)
        if op.value is None:
            try:
                self.memory.delete(op.key, user_id=scope.user_id, agent_id=scope.agent_id, run_id=scope.run_id)
            except MemoryNotFoundError:
                pass  # deleting a missing key is a no-op, as in every LangGraph store
            return
        value = dict(op.value)
        try:
            encoded = json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"the value of {op.key!r} must be JSON-serialisable: {exc}") from exc
        text = self._text(value, op.index)
        self.memory.put(op.key, text, metadata={VALUE_KEY: encoded, TEXT_HASH_KEY: text_hash(text)},
                        user_id=scope.user_id, agent_id=scope.agent_id, run_id=scope.run_id)

    def _text(self, value: dict[str, Any], index: Any) -> str:
        paths = index if isinstance(index, list) else self.fields
        if paths:
            texts = [t for path in paths for t in get_text_at_path(value, path)]
        else:
            texts = [value["text"]] if isinstance(value.get("text"), str) else []
        text = "\n".join(t.strip() for t in texts if t.strip())
        return text or json.dumps(value, ensure_ascii=False, sort_keys=True)

    def _namespaces(self) -> list[tuple[tuple[str, ...], Scope]]:
        """Every engine scope that is a namespace of this store's mapping, by namespace."""
        found = [(self.scopes.namespace(scope), scope) for scope in self.memory.scopes()]
        return sorted(((ns, scope) for ns, scope in found if ns is not None), key=lambda pair: pair[0])

    def _search(self, op: SearchOp) -> list[SearchItem]:
        prefix = tuple(op.namespace_prefix)
        found: list[SearchItem] = []
        for namespace, scope in self._namespaces():
            if namespace[: len(prefix)] != prefix:
                continue
            records = self.memory.get_all(user_id=scope.user_id, agent_id=scope.agent_id, run_id=scope.run_id)
            if op.query and records:  # every memory of the namespace, scored: filters apply after
                records = self.memory.search(op.query, limit=len(records),
                                             user_id=scope.user_id, agent_id=scope.agent_id, run_id=scope.run_id)
            found += [_search_item(namespace, record) for record in records]
        if op.filter:
            found = [item for item in found if matches_filter(item.value, op.filter)]
        if op.query:
            found.sort(key=lambda item: -(item.score or 0.0))  # stable: ties keep namespace order
        return found[op.offset : op.offset + op.limit]

    def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        namespaces = [ns for ns, scope in self._namespaces()
                      if self.memory.get_all(limit=1, user_id=scope.user_id, agent_id=scope.agent_id,
                                             run_id=scope.run_id)]
        for condition in op.match_conditions or ():
            namespaces = [ns for ns in namespaces if matches_condition(condition, ns)]
        if op.max_depth is not None:
            namespaces = sorted({ns[: op.max_depth] for ns in namespaces})
        return namespaces[op.offset : op.offset + op.limit]


def _value(record: MemoryRecord) -> dict[str, Any]:
    """The item value of a memory: the value the store wrote, else ``{"text": ...}``."""
    metadata = dict(record.metadata)
    encoded = metadata.pop(VALUE_KEY, None)
    written_hash = metadata.pop(TEXT_HASH_KEY, None)
    if isinstance(encoded, str):
        try:
            value = json.loads(encoded)
        except ValueError:
            value = None
        if isinstance(value, dict):
            if written_hash != record.hash:  # the engine's update step rewrote the memory since
                value["text"] = record.text
            return value
    return {"text": record.text, "metadata": metadata} if metadata else {"text": record.text}


def _times(record: MemoryRecord) -> tuple[datetime, datetime]:
    created = datetime.fromisoformat(record.created_at)
    return created, datetime.fromisoformat(record.updated_at) if record.updated_at else created


def _item(namespace: tuple[str, ...], record: MemoryRecord) -> Item:
    created, updated = _times(record)
    return Item(value=_value(record), key=record.id, namespace=namespace, created_at=created, updated_at=updated)


def _search_item(namespace: tuple[str, ...], record: MemoryRecord) -> SearchItem:
    created, updated = _times(record)
    return SearchItem(namespace, record.id, _value(record), created, updated, score=record.score)

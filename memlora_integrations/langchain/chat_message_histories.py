"""LangChain chat message history kept in the MemLoRA session buffer, feeding long-term memory."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Literal

from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import BaseMessage

from memlora_engine import Memory
from memlora_integrations._scope import chat_session, resolve_memory, scope_kwargs
from memlora_integrations._turns import ingest_turn, ingest_turns
from memlora_integrations.langchain._messages import exchange_texts, from_engine, to_engine

__all__ = ["MemLoRAChatMessageHistory"]

IngestMode = Literal["turns", "messages", "off"]

# How far back add_messages looks for human messages still waiting for their reply.
_PENDING_WINDOW = 50


class MemLoRAChatMessageHistory(BaseChatMessageHistory):
    """Chat history of one session, persisted by MemLoRA, that also builds long-term memory.

    Messages are appended to the engine's session buffer (``Memory.chats``), so
    a new process with the same data directory sees the conversation. Each completed
    exchange is also given to ``Memory.add``, where the on-device model extracts the
    facts worth remembering across sessions.

    Ingestion (``ingest``):

    * ``"turns"`` (default): a human message waits in the buffer until its reply
      arrives; then the human message(s) and the reply are ingested together, so the
      model sees both sides. A reply with no pending human message is ingested alone.
      Pending messages live in the buffer, so a reply added by another process or
      after a restart still completes its turn.
    * ``"messages"``: every ``add_messages`` batch is ingested at once, as given.
    * ``"off"``: keep the buffer only; nothing reaches long-term memory.

    System and tool messages are kept in the buffer but never ingested.

    Setup:
        .. code-block:: bash

            pip install "memlora[langchain]"

    Key init args:
        memory: the engine ``Memory`` (its session buffer and long-term memory).
        session_id: the conversation's buffer.
        user_id / agent_id / run_id: the scope the ingested facts belong to.
        max_messages: return only the newest messages (None: all).
        ingest: ``"turns"``, ``"messages"`` or ``"off"`` (above).
        infer: extract facts with the model (True) or store the turn's text as is.

    Instantiate:
        .. code-block:: python

            from memlora_engine import Memory
            from memlora_integrations.langchain import MemLoRAChatMessageHistory

            memory = Memory()  # on-device defaults
            history = MemLoRAChatMessageHistory(memory, session_id="chat-1", user_id="alice")

    Usage:
        .. code-block:: python

            history.add_user_message("I moved to Lisbon last month.")
            history.add_ai_message("Nice! How do you like it?")  # the turn is ingested now
            history.messages  # [HumanMessage(...), AIMessage(...)]
            memory.search("where does alice live", user_id="alice")

    Use within a chain:
        .. code-block:: python

            from langchain_core.runnables.history import RunnableWithMessageHistory

            chain_with_history = RunnableWithMessageHistory(
                chain,
                lambda session_id: MemLoRAChatMessageHistory(memory, session_id, user_id="alice"),
                input_messages_key="question",
                history_messages_key="history",
            )

    Args:
        memory: the engine (a ``memlora_engine.Memory``; an ``AsyncMemory`` is unwrapped).
        session_id: the chat session within the scope.
        user_id: scope id; at least one of ``user_id``, ``agent_id`` and ``run_id``.
        agent_id: scope id.
        run_id: scope id.
        max_messages: ``messages`` returns only the last ``max_messages`` (all when None).
        ingest: when messages reach long-term memory (see above).
        infer: extract facts with the model (default); False stores each ingested turn
            as given (``Memory.add(infer=False)``).
        metadata: stored with every memory this history creates.
    """

    def __init__(
        self,
        memory: Memory,
        session_id: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        max_messages: int | None = None,
        ingest: IngestMode = "turns",
        infer: bool = True,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if ingest not in ("turns", "messages", "off"):
            raise ValueError(f"ingest must be 'turns', 'messages' or 'off', got {ingest!r}")
        if max_messages is not None and (isinstance(max_messages, bool) or max_messages < 1):
            raise ValueError(f"max_messages must be a positive integer or None, got {max_messages!r}")
        if not isinstance(session_id, str) or not session_id:
            raise ValueError(f"session_id must be a non-empty string, got {session_id!r}")
        self.memory = resolve_memory(memory)
        self.session_id = session_id
        self.scope = scope_kwargs(user_id, agent_id, run_id)
        self.max_messages = max_messages
        self.ingest: IngestMode = ingest
        self.infer = infer
        self.metadata = dict(metadata) if metadata else None

    # -- reads ---------------------------------------------------------------------------
    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        """The session's messages, oldest first (the last ``max_messages`` when set)."""
        stored = chat_session(self.memory, self.session_id, self.scope).messages(self.max_messages)
        return [from_engine(m) for m in stored]

    async def aget_messages(self) -> list[BaseMessage]:
        return await asyncio.to_thread(lambda: self.messages)

    # -- writes --------------------------------------------------------------------------
    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Append ``messages`` to the session and ingest the exchanges they complete."""
        messages = list(messages)
        if not messages:
            return
        pending = self._pending() if self.ingest == "turns" else []
        chat_session(self.memory, self.session_id, self.scope).append([to_engine(m) for m in messages])
        if self.ingest == "off":
            return
        if self.ingest == "messages":
            ingest_turn(self.memory, exchange_texts(messages), scope=self.scope, metadata=self.metadata, infer=self.infer)
            return
        ingest_turns(
            self.memory,
            pending + exchange_texts(messages),
            scope=self.scope,
            metadata=self.metadata,
            infer=self.infer,
            complete_only=True,
        )

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        await asyncio.to_thread(self.add_messages, messages)

    def clear(self, *, forget: bool = False) -> None:
        """Forget this session's messages; long-term memories stay.

        Args:
            forget: also forget everything the *scope* remembers: all its long-term
                memories, their history and every session of the scope
                (``Memory.delete_all``). Other scopes are untouched.
        """
        if forget:
            self.memory.delete_all(**self.scope)
        else:
            chat_session(self.memory, self.session_id, self.scope).clear()

    async def aclear(self, *, forget: bool = False) -> None:
        await asyncio.to_thread(self.clear, forget=forget)

    # -- ingestion -----------------------------------------------------------------------
    def _pending(self) -> list[dict[str, Any]]:
        """User turns already in the buffer that are still waiting for a reply (images included)."""
        recent = chat_session(self.memory, self.session_id, self.scope).messages(_PENDING_WINDOW)
        waiting: list[dict[str, Any]] = []
        for message in reversed(recent):
            if message["role"] == "assistant":
                break
            if message["role"] == "user":
                waiting.append(message)
        # Rebuilt from the stored LangChain message, so image parts come back with the text.
        return exchange_texts(from_engine(m) for m in reversed(waiting))

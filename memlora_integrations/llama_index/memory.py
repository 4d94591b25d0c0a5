"""``MemLoRAMemory``: a LlamaIndex ``BaseMemory`` backed by the MemLoRA engine."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from llama_index.core.base.llms.types import ChatMessage, MessageRole, TextBlock
from llama_index.core.bridge.pydantic import ConfigDict, Field, PrivateAttr
from llama_index.core.memory.types import BaseMemory

from memlora_integrations._scope import chat_session, resolve_memory, scope_kwargs
from memlora_integrations._settings import deprecated_alias, rename_deprecated, renamed_keywords
from memlora_integrations._turns import ingest_turns
from memlora_integrations.llama_index._engines import engine_reference, find_engine
from memlora_integrations.llama_index._messages import (
    engine_role,
    from_session,
    has_tool_calls,
    is_reply,
    message_text,
    to_engine_turn,
    to_session,
)

if TYPE_CHECKING:
    from memlora_engine import AsyncMemory, Embedder, Generator, Memory, MemoryConfig

__all__ = ["DEFAULT_MEMORY_PROMPT", "MemLoRAMemory"]

DEFAULT_MEMORY_PROMPT = "What you remember about this user from earlier conversations:\n{memories}"
_INGESTED = "memlora_ingested"


def _whitespace_tokens(text: str) -> list[str]:
    """A rough, dependency-free token count (words); pass a real tokenizer for exact budgets."""
    return text.split()


class MemLoRAMemory(BaseMemory):
    """Chat memory for LlamaIndex chat engines and agents, with MemLoRA long-term memory.

    ``get`` returns a system message with the long-term memories relevant to the
    input (or to the last user message), followed by the session's recent chat turns.
    ``put`` keeps every message in the engine's persisted session buffer and, once a
    user turn has its reply, remembers the turn with **one** extraction call.

    Setup:
        .. code-block:: bash

            pip install "memlora[llamaindex,chroma,hf]"

    Instantiate:
        .. code-block:: python

            from memlora_engine import Memory
            from memlora_integrations.llama_index import MemLoRAMemory

            engine = Memory(generator=backbone)  # any engine Generator
            memory = MemLoRAMemory.from_defaults(engine, user_id="alice", session_id="chat-1")

    Usage:
        .. code-block:: python

            memory.put(ChatMessage(role="user", content="I moved to Lisbon."))
            memory.put(ChatMessage(role="assistant", content="Nice!"))  # one extraction here
            memory.get(input="Where do I live?")  # [system: memories, user, assistant]

    Use within a chat engine or an agent:
        .. code-block:: python

            from llama_index.core.chat_engine import SimpleChatEngine

            chat = SimpleChatEngine.from_defaults(llm=llm, memory=memory)
            agent = ReActAgent(tools=[...], llm=llm)
            await agent.run(user_msg="Where do I live?", memory=memory)

    Args:
        memory: the engine (a ``Memory``, or an ``AsyncMemory`` wrapping one).
        user_id, agent_id, run_id: the scope of the memories (at least one).
        session_id: the chat-session buffer of this conversation (persisted).

    Agents that drop a leading system message (``ReActAgent`` without a
    ``system_prompt``) need ``insert_method="user"``: the memories then open the
    last user message of the returned copy.

    ``reset()`` clears the session buffer; long-term memories stay unless
    ``reset(forget=True)``.

    Settings use the integrations' shared vocabulary (``k``, ``score_threshold``,
    ``ingest``, ``infer``, ``forget``); ``search_limit`` and ``forget_memories`` are
    deprecated spellings of ``k`` and ``forget``.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    user_id: str | None = Field(default=None, description="Scope: the user the memories are about.")
    agent_id: str | None = Field(default=None, description="Scope: the agent.")
    run_id: str | None = Field(default=None, description="Scope: the run.")
    session_id: str = Field(default="default", description="The persisted chat session of this conversation.")
    k: int = Field(default=5, gt=0, description="Long-term memories put in the system message.")
    score_threshold: float | None = Field(default=None, description="Minimum similarity of a memory to show.")
    max_messages: int = Field(default=20, gt=0, description="Recent chat messages returned by get().")
    token_limit: int | None = Field(default=None, gt=0, description="Token budget of get() (None: no budget).")
    tokenizer_fn: Callable[[str], list[Any]] = Field(
        default=_whitespace_tokens, exclude=True, description="Counts tokens for token_limit."
    )
    memory_prompt: str = Field(
        default=DEFAULT_MEMORY_PROMPT, description="System message text; {memories} is the bullet list."
    )
    insert_method: Literal["system", "user"] = Field(
        default="system",
        description='Where memories go: a leading system message, or ("user") the front of the last user message.',
    )
    ingest: bool = Field(default=True, description="Remember finished turns (False: keep the session buffer only).")
    infer: bool = Field(default=True, description="Extract facts with the model (False: store texts as is).")

    _engine: Any = PrivateAttr()
    _lock: Any = PrivateAttr(default_factory=threading.RLock)

    search_limit = deprecated_alias("search_limit")

    def __init__(self, *, memory: Memory | AsyncMemory, **data: Any) -> None:
        super().__init__(**rename_deprecated(data, type(self).__name__, ("search_limit",)))
        scope_kwargs(self.user_id, self.agent_id, self.run_id)  # fail now, not at the first turn
        self._engine = resolve_memory(memory)
        engine_reference(self._engine)  # restorable by from_dict while the engine lives

    @classmethod
    def class_name(cls) -> str:
        return "MemLoRAMemory"

    # -- serialisation (an agent Context saves and restores its memory) -------------------
    def to_dict(self, **kwargs: Any) -> dict[str, Any]:
        """The settings, plus a reference to the engine (its config and a token for this process).

        The messages themselves live in the engine's session buffer, so they need no copy.
        """
        data = super().to_dict(**kwargs)
        data["engine"] = engine_reference(self._engine)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], **kwargs: Any) -> MemLoRAMemory:  # type: ignore[override]
        """Rebuild a memory saved by :meth:`to_dict` (what ``Context.from_dict`` calls).

        The engine is ``memory=`` when given; otherwise the live engine of this process
        the dict refers to: the same engine object, or one with the same persistent
        ``MemoryConfig`` (build it before restoring, in a new process).

        Raises:
            ConfigError: no engine is given and none of this process matches.
        """
        data = {k: v for k, v in data.items() if k != "class_name"}
        reference = data.pop("engine", None)
        data.update(kwargs)
        if data.get("memory") is None:
            data["memory"] = find_engine(reference)
        return cls(**data)

    @classmethod
    def from_defaults(  # type: ignore[override]
        cls,
        memory: Memory | AsyncMemory | None = None,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        session_id: str = "default",
        chat_history: Sequence[ChatMessage] | None = None,
        config: MemoryConfig | None = None,
        generator: Generator | None = None,
        embedder: Embedder | None = None,
        **kwargs: Any,
    ) -> MemLoRAMemory:
        """Build the memory; a default engine (``Memory(config, generator=..., embedder=...)``) when none is given.

        ``chat_history``, when given, replaces the session buffer (see :meth:`set`).
        ``kwargs`` are the other fields (``k``, ``max_messages``, ...).
        """
        if memory is None:
            from memlora_engine import Memory

            memory = Memory(config, generator=generator, embedder=embedder)
        elif config is not None or generator is not None or embedder is not None:
            raise ValueError("pass either memory= (an engine) or config/generator/embedder to build one, not both")
        instance = cls(
            memory=memory, user_id=user_id, agent_id=agent_id, run_id=run_id, session_id=session_id, **kwargs
        )
        if chat_history is not None:
            instance.set(list(chat_history))
        return instance

    # -- helpers ----------------------------------------------------------------------
    @property
    def engine(self) -> Memory:
        """The engine this memory reads and writes."""
        return self._engine

    @property
    def scope(self) -> dict[str, str]:
        """The scope ids that are set, as the engine's calls take them."""
        return scope_kwargs(self.user_id, self.agent_id, self.run_id)

    def _rows(self, limit: int | None = None) -> list[dict[str, Any]]:
        return chat_session(self._engine, self.session_id, self.scope).messages(limit)

    def _pending(self) -> list[ChatMessage]:
        """Buffered messages not yet remembered (after the last ingested reply)."""
        rows = self._rows()
        start = next((i + 1 for i in range(len(rows) - 1, -1, -1) if (rows[i].get("extra") or {}).get(_INGESTED)), 0)
        return [from_session(r) for r in rows[start:]]

    def _ingest(self, messages: Sequence[ChatMessage]) -> None:
        """Remember ``messages``, one engine ``add`` per turn (nothing when ``ingest`` is off)."""
        if not self.ingest:
            return
        ingest_turns(
            self._engine,
            [to_engine_turn(m) for m in messages],
            scope=self.scope,
            metadata={"session_id": self.session_id},
            infer=self.infer,
        )

    def _forget(self, forget: bool, kwargs: dict[str, Any]) -> bool:
        """``forget``, or the deprecated ``forget_memories`` popped from ``kwargs``."""
        if "forget_memories" not in kwargs:
            return forget
        old = {"forget_memories": kwargs.pop("forget_memories")}
        return bool(renamed_keywords(type(self).__name__, old, {"forget": forget}, {"forget": False})["forget"])

    def _count(self, messages: Sequence[ChatMessage]) -> int:
        return sum(len(self.tokenizer_fn(message_text(m))) for m in messages)

    def _window(self, history: list[ChatMessage], budget: int | None) -> list[ChatMessage]:
        """The newest messages within ``budget`` tokens, never more.

        The window starts at a user message where possible, and never at a tool result
        (or an assistant's tool call) whose other half was cut off. Like LlamaIndex's
        ``ChatMemoryBuffer``, it is empty when not even the newest message fits.
        """

        def align(window: list[ChatMessage]) -> list[ChatMessage]:
            first_user = next((i for i, m in enumerate(window) if engine_role(m) == "user"), None)
            if first_user is not None:
                return window[first_user:]
            # no user message left: drop a leading half of a tool exchange
            start = next((i for i, m in enumerate(window) if engine_role(m) != "tool" and not has_tool_calls(m)),
                         len(window))
            return window[start:]

        window = align(history[-self.max_messages :])
        if budget is not None:
            while window and self._count(window) > budget:
                window = align(window[1:])
        return window

    def _note(self, query: str, budget: int | None) -> str:
        """The memories relevant to ``query`` as the system text, as many as fit ``budget`` tokens."""
        if not query.strip():
            return ""
        hits = self._engine.search(query, limit=self.k, threshold=self.score_threshold, **self.scope)
        while hits:
            note = self.memory_prompt.format(memories="\n".join(f"- {h.text}" for h in hits))
            if budget is None or len(self.tokenizer_fn(note)) <= budget:
                return note
            hits = hits[:-1]  # the least relevant goes first
        return ""

    # -- BaseMemory ---------------------------------------------------------------------
    def get(self, input: str | ChatMessage | None = None, **kwargs: Any) -> list[ChatMessage]:
        """A system message with the relevant memories, then the recent chat messages.

        The query is ``input`` or, without it, the session's last user message.
        ``initial_token_count`` (passed by chat engines) counts against ``token_limit``.
        """
        history = [from_session(r) for r in self._rows(limit=self.max_messages)]
        if isinstance(input, ChatMessage):
            input = message_text(input)
        query = input or next((message_text(m) for m in reversed(history) if engine_role(m) == "user"), "")
        budget = None
        if self.token_limit is not None:
            budget = max(self.token_limit - int(kwargs.get("initial_token_count") or 0), 0)
        # The newest message comes first, then the memories, then older turns.
        newest = self._window(history[-1:], budget)
        note = self._note(query, None if budget is None else budget - self._count(newest))
        window = self._window(history, None if budget is None else budget - len(self.tokenizer_fn(note)))
        if not note:
            return window
        if self.insert_method == "system":
            return [ChatMessage(role=MessageRole.SYSTEM, content=note), *window]
        last_user = next((i for i in range(len(window) - 1, -1, -1) if engine_role(window[i]) == "user"), None)
        if last_user is None:
            return [*window, ChatMessage(role=MessageRole.USER, content=note)]
        message = window[last_user].model_copy(deep=True)  # the buffered message stays as it was said
        message.blocks = [TextBlock(text=note + "\n\n"), *message.blocks]
        window[last_user] = message
        return window

    def get_all(self, **kwargs: Any) -> list[ChatMessage]:
        """Every message of the session buffer, oldest first (no long-term memories)."""
        return [from_session(r) for r in self._rows()]

    def put(self, message: ChatMessage, **kwargs: Any) -> None:
        """Buffer one message; a reply that ends a user turn remembers the turn."""
        self.put_messages([message])

    def put_messages(self, messages: list[ChatMessage], **kwargs: Any) -> None:
        """Buffer messages; when the last one is a reply, remember each pending turn (one call per turn).

        The turn is remembered before it is marked in the buffer, so an engine error
        leaves the messages unbuffered rather than buffered but forgotten.
        """
        messages = list(messages)
        if not messages:
            return
        with self._lock:
            ends_turn = is_reply(messages[-1])
            if ends_turn:
                self._ingest([*self._pending(), *messages])
            rows = [to_session(m) for m in messages[:-1]]
            rows.append(to_session(messages[-1], **({_INGESTED: True} if ends_turn else {})))
            chat_session(self._engine, self.session_id, self.scope).append(rows)

    def set(self, messages: list[ChatMessage], **kwargs: Any) -> None:
        """Replace the session buffer with ``messages``.

        Messages the buffer already starts with are kept as they are; the new ones are
        put as by :meth:`put_messages` (complete turns are remembered, one call each).
        """
        messages = list(messages)
        with self._lock:
            rows = self._rows()
            same = 0
            for row, message in zip(rows, messages):
                if (row["role"], row["content"]) != (engine_role(message), message_text(message)):
                    break
                same += 1
            if same < len(rows):
                kept = [{k: v for k, v in row.items() if k != "created_at"} for row in rows[:same]]
                chat_session(self._engine, self.session_id, self.scope).clear()
                if kept:
                    chat_session(self._engine, self.session_id, self.scope).append(kept)
            self.put_messages(messages[same:])

    def reset(self, forget: bool = False, **kwargs: Any) -> None:
        """Clear the session buffer (a user message still waiting for its reply is remembered first).

        Long-term memories stay unless ``forget=True``, which forgets the whole scope:
        its memories, their history and all of its sessions. ``forget_memories`` is the
        deprecated spelling of ``forget``.
        """
        forget = self._forget(forget, kwargs)
        with self._lock:
            if forget:
                self._engine.delete_all(**self.scope)
                return
            pending = self._pending()
            if any(engine_role(m) == "user" for m in pending):  # turns that say nothing cost no call
                self._ingest(pending)
            chat_session(self._engine, self.session_id, self.scope).clear()

    # -- async: the sync methods in a worker thread (one implementation) -----------------
    async def aget(self, input: str | ChatMessage | None = None, **kwargs: Any) -> list[ChatMessage]:
        return await asyncio.to_thread(self.get, input, **kwargs)

    async def aget_all(self, **kwargs: Any) -> list[ChatMessage]:
        return await asyncio.to_thread(self.get_all, **kwargs)

    async def aput(self, message: ChatMessage, **kwargs: Any) -> None:
        await asyncio.to_thread(self.put, message, **kwargs)

    async def aput_messages(self, messages: list[ChatMessage], **kwargs: Any) -> None:
        await asyncio.to_thread(self.put_messages, messages, **kwargs)

    async def aset(self, messages: list[ChatMessage], **kwargs: Any) -> None:
        await asyncio.to_thread(self.set, messages, **kwargs)

    async def areset(self, forget: bool = False, **kwargs: Any) -> None:
        forget = self._forget(forget, kwargs)  # warns here, in the caller's thread
        await asyncio.to_thread(self.reset, forget, **kwargs)

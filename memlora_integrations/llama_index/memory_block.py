"""``MemLoRAMemoryBlock``: MemLoRA long-term memory as a block of LlamaIndex's ``Memory``."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.memory import BaseMemoryBlock

from memlora_integrations._scope import resolve_memory, scope_kwargs
from memlora_integrations._settings import deprecated_alias, rename_deprecated
from memlora_integrations._turns import ingest_turns
from memlora_integrations.llama_index._messages import engine_role, message_text, to_engine_turn

if TYPE_CHECKING:
    from memlora_engine import AsyncMemory, Memory

__all__ = ["MemLoRAMemoryBlock"]


class MemLoRAMemoryBlock(BaseMemoryBlock[str]):
    """A memory block for ``llama_index.core.memory.Memory`` backed by the MemLoRA engine.

    When LlamaIndex's ``Memory`` flushes old chat messages out of its short-term
    queue, this block remembers them, one extraction call per user turn with its
    reply. When the memory is read, the block returns the long-term memories most
    relevant to the latest user message, as a bullet list.

    Setup:
        .. code-block:: bash

            pip install "memlora[llamaindex,chroma,hf]"

    Instantiate:
        .. code-block:: python

            from llama_index.core.memory import Memory as LlamaMemory
            from memlora_integrations.llama_index import MemLoRAMemoryBlock

            block = MemLoRAMemoryBlock(memory=engine, user_id="alice")
            memory = LlamaMemory.from_defaults(session_id="chat-1", memory_blocks=[block], token_limit=4000)

    Usage:
        .. code-block:: python

            await block.aput([ChatMessage(role="user", content="I moved to Lisbon."),
                              ChatMessage(role="assistant", content="Nice!")])
            await block.aget([ChatMessage(role="user", content="Where do I live?")])
            # '- User moved to Lisbon'

    Use within an agent:
        .. code-block:: python

            await agent.run(user_msg="Where do I live?", memory=memory)

    Args:
        memory: the engine (a ``Memory``, or an ``AsyncMemory`` wrapping one).
        user_id, agent_id, run_id: the scope of the memories (at least one).

    Under token pressure (a ``priority`` above 0 and ``Memory``'s ``token_limit``
    exceeded), :meth:`atruncate` drops the least relevant memories first instead of
    the whole block (LlamaIndex's default).

    Settings use the integrations' shared vocabulary (``k``, ``score_threshold``,
    ``ingest``, ``infer``); ``search_limit`` is a deprecated spelling of ``k``.
    """

    name: str = Field(default="memlora_memories", description="The name of the memory block.")
    description: str | None = Field(
        default="Long-term memories about the user, from earlier conversations.",
        description="A description of the memory block.",
    )
    user_id: str | None = Field(default=None, description="Scope: the user the memories are about.")
    agent_id: str | None = Field(default=None, description="Scope: the agent.")
    run_id: str | None = Field(default=None, description="Scope: the run.")
    k: int = Field(default=5, gt=0, description="Memories returned per read.")
    score_threshold: float | None = Field(default=None, description="Minimum similarity of a memory to return.")
    ingest: bool = Field(default=True, description="Remember flushed messages (False: the block only reads).")
    infer: bool = Field(default=True, description="Extract facts with the model (False: store texts as is).")

    _engine: Any = PrivateAttr()

    search_limit = deprecated_alias("search_limit")

    def __init__(self, *, memory: Memory | AsyncMemory, **data: Any) -> None:
        super().__init__(**rename_deprecated(data, type(self).__name__, ("search_limit",)))
        scope_kwargs(self.user_id, self.agent_id, self.run_id)  # fail now, not at the first flush
        self._engine = resolve_memory(memory)

    @property
    def engine(self) -> Memory:
        """The engine this block reads and writes."""
        return self._engine

    @property
    def scope(self) -> dict[str, str]:
        """The scope ids that are set, as the engine's calls take them."""
        return scope_kwargs(self.user_id, self.agent_id, self.run_id)

    def _search(self, query: str) -> str:
        hits = self._engine.search(query, limit=self.k, threshold=self.score_threshold, **self.scope)
        return "\n".join(f"- {h.text}" for h in hits)

    async def _aget(self, messages: list[ChatMessage] | None = None, **block_kwargs: Any) -> str:
        """The memories relevant to the last user message ("" when there is none)."""
        query = next((message_text(m) for m in reversed(messages or []) if engine_role(m) == "user"), "")
        if not query.strip():
            return ""
        return await asyncio.to_thread(self._search, query)

    async def atruncate(self, content: str, tokens_to_truncate: int) -> str | None:
        """``content`` without its least relevant memories (its last lines), enough to save the tokens asked.

        The block does not know ``Memory``'s tokenizer: a memory's words are counted as
        its tokens, which most tokenizers exceed, so at least the asked-for tokens go.
        None when no memory is left.
        """
        lines = content.splitlines()
        saved = 0
        while lines and saved < tokens_to_truncate:
            saved += max(len(lines.pop().split()), 1)
        return "\n".join(lines) or None

    async def _aput(self, messages: list[ChatMessage]) -> None:
        """Remember flushed messages, one engine ``add`` per user turn with its reply."""
        if not self.ingest:
            return
        session_id = next((m.additional_kwargs.get("session_id") for m in messages if m.additional_kwargs), None)
        metadata = {"session_id": session_id} if isinstance(session_id, str) else None
        await asyncio.to_thread(self._ingest, messages, metadata)

    def _ingest(self, messages: list[ChatMessage], metadata: dict[str, Any] | None) -> None:
        # Converted in the worker thread too: images may be read from disk.
        turns = [to_engine_turn(m) for m in messages]
        ingest_turns(self._engine, turns, scope=self.scope, metadata=metadata, infer=self.infer)

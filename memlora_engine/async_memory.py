"""``AsyncMemory``: the async twin of :class:`~memlora_engine.memory.Memory`.

Each coroutine runs the sync method in a worker thread (``asyncio.to_thread``);
there is one implementation of the pipeline, not two. The signatures repeat
``Memory``'s so type checkers and IDEs see them, and the docstrings are ``Memory``'s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

from memlora_engine._time import Timestamp
from memlora_engine.config import MemoryConfig
from memlora_engine.memory import Memory
from memlora_engine.stats import Stats
from memlora_engine.types import AddResult, Answer, HistoryEntry, MemoryEvent, MemoryRecord, Scope

__all__ = ["AsyncMemory"]

F = TypeVar("F", bound=Callable[..., Any])


def _same_doc(sync: Callable[..., Any]) -> Callable[[F], F]:
    """Give the coroutine the sync method's docstring (its signature is written out)."""

    def decorate(method: F) -> F:
        method.__doc__ = sync.__doc__
        return method

    return decorate


class AsyncMemory:
    """Async API over a :class:`Memory`; built from the same arguments, or wrapping one.

    Example:
        >>> # memory = AsyncMemory(MemoryConfig(store="memory"), generator=...)
        >>> # await memory.add("I like tea", user_id="alice")
    """

    def __init__(self, *args: Any, memory: Memory | None = None, **kwargs: Any) -> None:
        self.sync = memory if memory is not None else Memory(*args, **kwargs)

    @property
    def stats(self) -> Stats:
        return self.sync.stats

    @property
    def config(self) -> MemoryConfig:
        return self.sync.config

    @_same_doc(Memory.add)
    async def add(self, messages: Any, *, user_id: str | None = None, agent_id: str | None = None,
                  run_id: str | None = None, metadata: dict[str, Any] | None = None, infer: bool = True,
                  timestamp: Timestamp = None) -> AddResult:
        return await asyncio.to_thread(self.sync.add, messages, user_id=user_id, agent_id=agent_id, run_id=run_id,
                                       metadata=metadata, infer=infer, timestamp=timestamp)

    @_same_doc(Memory.add_many)
    async def add_many(self, texts: Iterable[str], *, user_id: str | None = None, agent_id: str | None = None,
                       run_id: str | None = None, metadata: dict[str, Any] | None = None,
                       timestamp: Timestamp = None, batch_size: int = 512) -> AddResult:
        return await asyncio.to_thread(self.sync.add_many, texts, user_id=user_id, agent_id=agent_id, run_id=run_id,
                                       metadata=metadata, timestamp=timestamp, batch_size=batch_size)

    @_same_doc(Memory.search)
    async def search(self, query: str, *, user_id: str | None = None, agent_id: str | None = None,
                     run_id: str | None = None, limit: int | None = None, filters: dict[str, Any] | None = None,
                     threshold: float | None = None) -> list[MemoryRecord]:
        return await asyncio.to_thread(self.sync.search, query, user_id=user_id, agent_id=agent_id, run_id=run_id,
                                       limit=limit, filters=filters, threshold=threshold)

    @_same_doc(Memory.get)
    async def get(self, memory_id: str, *, user_id: str | None = None, agent_id: str | None = None,
                  run_id: str | None = None) -> MemoryRecord | None:
        return await asyncio.to_thread(self.sync.get, memory_id, user_id=user_id, agent_id=agent_id, run_id=run_id)

    @_same_doc(Memory.get_all)
    async def get_all(self, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
                      filters: dict[str, Any] | None = None, limit: int | None = None) -> list[MemoryRecord]:
        return await asyncio.to_thread(self.sync.get_all, user_id=user_id, agent_id=agent_id, run_id=run_id,
                                       filters=filters, limit=limit)

    @_same_doc(Memory.history)
    async def history(self, memory_id: str, *, user_id: str | None = None, agent_id: str | None = None,
                      run_id: str | None = None) -> list[HistoryEntry]:
        return await asyncio.to_thread(self.sync.history, memory_id, user_id=user_id, agent_id=agent_id,
                                       run_id=run_id)

    @_same_doc(Memory.update)
    async def update(self, memory_id: str, text: str, *, user_id: str | None = None, agent_id: str | None = None,
                     run_id: str | None = None, metadata: dict[str, Any] | None = None) -> MemoryEvent:
        return await asyncio.to_thread(self.sync.update, memory_id, text, user_id=user_id, agent_id=agent_id,
                                       run_id=run_id, metadata=metadata)

    @_same_doc(Memory.put)
    async def put(self, memory_id: str, text: str, *, user_id: str | None = None, agent_id: str | None = None,
                  run_id: str | None = None, metadata: dict[str, Any] | None = None) -> MemoryEvent:
        return await asyncio.to_thread(self.sync.put, memory_id, text, user_id=user_id, agent_id=agent_id,
                                       run_id=run_id, metadata=metadata)

    @_same_doc(Memory.delete)
    async def delete(self, memory_id: str, *, user_id: str | None = None, agent_id: str | None = None,
                     run_id: str | None = None) -> MemoryEvent:
        return await asyncio.to_thread(self.sync.delete, memory_id, user_id=user_id, agent_id=agent_id,
                                       run_id=run_id)

    @_same_doc(Memory.delete_all)
    async def delete_all(self, *, user_id: str | None = None, agent_id: str | None = None,
                         run_id: str | None = None) -> int:
        return await asyncio.to_thread(self.sync.delete_all, user_id=user_id, agent_id=agent_id, run_id=run_id)

    @_same_doc(Memory.scopes)
    async def scopes(self, *, user_id: str | None = None, agent_id: str | None = None,
                     run_id: str | None = None) -> list[Scope]:
        return await asyncio.to_thread(self.sync.scopes, user_id=user_id, agent_id=agent_id, run_id=run_id)

    @_same_doc(Memory.forget)
    async def forget(self, *, user_id: str | None = None, agent_id: str | None = None,
                     run_id: str | None = None) -> int:
        return await asyncio.to_thread(self.sync.forget, user_id=user_id, agent_id=agent_id, run_id=run_id)

    @_same_doc(Memory.reset)
    async def reset(self) -> None:
        await asyncio.to_thread(self.sync.reset)

    @_same_doc(Memory.answer)
    async def answer(self, question: str, *, user_id: str | None = None, agent_id: str | None = None,
                     run_id: str | None = None, limit: int | None = None, filters: dict[str, Any] | None = None,
                     timestamp: Timestamp = None, images: Sequence[Any] | None = None,
                     route: str = "auto") -> Answer:
        return await asyncio.to_thread(self.sync.answer, question, user_id=user_id, agent_id=agent_id,
                                       run_id=run_id, limit=limit, filters=filters, timestamp=timestamp,
                                       images=images, route=route)

    @_same_doc(Memory.export)
    async def export(self, destination: str | Path | IO[str], *, user_id: str | None = None,
                     agent_id: str | None = None, run_id: str | None = None) -> int:
        return await asyncio.to_thread(self.sync.export, destination, user_id=user_id, agent_id=agent_id,
                                       run_id=run_id)

    @_same_doc(Memory.import_)
    async def import_(self, source: str | Path | IO[str] | Iterable[str], *, user_id: str | None = None,
                      agent_id: str | None = None, run_id: str | None = None, keep_scopes: bool = False) -> int:
        return await asyncio.to_thread(self.sync.import_, source, user_id=user_id, agent_id=agent_id,
                                       run_id=run_id, keep_scopes=keep_scopes)

    @_same_doc(Memory.append_chat)
    async def append_chat(self, session_id: str, messages: Any, *, user_id: str | None = None,
                          agent_id: str | None = None, run_id: str | None = None,
                          timestamp: Timestamp = None) -> None:
        await asyncio.to_thread(self.sync.append_chat, session_id, messages, user_id=user_id, agent_id=agent_id,
                                run_id=run_id, timestamp=timestamp)

    @_same_doc(Memory.chat_messages)
    async def chat_messages(self, session_id: str, *, user_id: str | None = None, agent_id: str | None = None,
                            run_id: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.sync.chat_messages, session_id, user_id=user_id, agent_id=agent_id,
                                       run_id=run_id, limit=limit)

    @_same_doc(Memory.clear_chat)
    async def clear_chat(self, session_id: str, *, user_id: str | None = None, agent_id: str | None = None,
                         run_id: str | None = None) -> int:
        return await asyncio.to_thread(self.sync.clear_chat, session_id, user_id=user_id, agent_id=agent_id,
                                       run_id=run_id)

    @_same_doc(Memory.close)
    async def close(self) -> None:
        await asyncio.to_thread(self.sync.close)

"""``AsyncMemory``: the async twin of :class:`~memlora_engine.memory.Memory`.

Each coroutine runs the sync method in a worker thread (``asyncio.to_thread``);
there is one implementation of the pipeline, not two.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

from memlora_engine.memory import Memory

__all__ = ["AsyncMemory"]

_DELEGATED = (
    "add", "add_many", "search", "get", "get_all", "update", "delete", "delete_all",
    "history", "reset", "answer", "export", "import_", "append_chat", "chat_messages", "clear_chat", "close",
)


def _delegate(name: str) -> Callable[..., Any]:
    sync = getattr(Memory, name)

    @functools.wraps(sync)
    async def method(self: AsyncMemory, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(getattr(self.sync, name), *args, **kwargs)

    return method


class AsyncMemory:
    """Async API over a :class:`Memory`; built from the same arguments, or wrapping one.

    Example:
        >>> # memory = AsyncMemory(MemoryConfig(store="memory"), generator=...)
        >>> # await memory.add("I like tea", user_id="alice")
    """

    def __init__(self, *args: Any, memory: Memory | None = None, **kwargs: Any) -> None:
        self.sync = memory if memory is not None else Memory(*args, **kwargs)

    @property
    def stats(self) -> Any:
        return self.sync.stats

    @property
    def config(self) -> Any:
        return self.sync.config


for _name in _DELEGATED:
    setattr(AsyncMemory, _name, _delegate(_name))

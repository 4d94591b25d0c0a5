"""Scope plumbing shared by the integrations: the injected engine and the scope it is used with."""

from __future__ import annotations

from typing import Any

from memlora_engine import AsyncMemory, Memory, Scope
from memlora_engine.chat import ChatSession

__all__ = ["chat_session", "resolve_memory", "scope_kwargs"]


def resolve_memory(memory: Any) -> Memory:
    """Return the sync engine behind ``memory`` (a ``Memory``, or an ``AsyncMemory`` wrapping one).

    The integrations run the sync engine in a worker thread for their async methods, so
    both kinds of engine are accepted and one implementation serves both.

    Raises:
        TypeError: ``memory`` is neither.
    """
    if isinstance(memory, AsyncMemory):
        return memory.sync
    if not isinstance(memory, Memory):
        raise TypeError(f"memory must be a memlora_engine.Memory, got {type(memory).__name__}")
    return memory


def scope_kwargs(user_id: str | None, agent_id: str | None, run_id: str | None) -> dict[str, str]:
    """Validate the scope now (a ``ScopeError`` at construction, not at first use) and return its ids.

    The result is what every engine call takes as ``**scope``: only the ids that are set.
    """
    return Scope(user_id, agent_id, run_id).as_dict()


def chat_session(memory: Memory, session_id: str, scope: dict[str, str]) -> ChatSession:
    """The engine's chat-session component for ``session_id`` of ``scope`` (the short-term buffer)."""
    return memory.chats.session(Scope(**scope), session_id)

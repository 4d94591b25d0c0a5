"""Helpers shared by the LangChain integrations: the injected engine and its scope."""

from __future__ import annotations

from typing import Any

from memlora_engine import AsyncMemory, Memory, Scope

__all__ = ["resolve_memory", "scope_kwargs"]


def resolve_memory(memory: Any) -> Memory:
    """Return the sync engine behind ``memory`` (a ``Memory``, or an ``AsyncMemory`` wrapping one)."""
    if isinstance(memory, AsyncMemory):
        return memory.sync
    if not isinstance(memory, Memory):
        raise TypeError(f"memory must be a memlora_engine.Memory, got {type(memory).__name__}")
    return memory


def scope_kwargs(user_id: str | None, agent_id: str | None, run_id: str | None) -> dict[str, str]:
    """Validate the scope now (a ``ScopeError`` at construction, not at first use) and return its ids."""
    return Scope(user_id, agent_id, run_id).as_dict()

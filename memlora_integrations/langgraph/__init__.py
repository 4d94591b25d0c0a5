"""LangGraph integration for MemLoRA: :class:`MemLoRAStore`, a ``BaseStore`` over the engine.

Use it wherever LangGraph takes a store: ``create_agent(..., store=MemLoRAStore(memory))``,
``graph.compile(store=...)``; tools reach it through ``ToolRuntime.store``. LangGraph comes
with ``langchain`` 1.x (``pip install "memlora[langchain]"``).
"""

from __future__ import annotations

from memlora_engine import MissingDependencyError

try:
    import langgraph.store.base  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingDependencyError("langgraph", "langchain") from exc

from memlora_integrations.langgraph._namespaces import NamespaceError
from memlora_integrations.langgraph.store import MemLoRAStore

__all__ = ["MemLoRAStore", "NamespaceError"]

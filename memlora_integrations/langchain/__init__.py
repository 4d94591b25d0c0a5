"""LangChain integrations for MemLoRA.

Each class takes an engine ``memlora_engine.Memory`` and a scope
(``user_id``/``agent_id``/``run_id``):

* :class:`MemLoRAChatMessageHistory` -- persisted chat history that feeds long-term memory;
* :class:`MemLoRARetriever` -- memories as ``Document``\\s;
* :class:`MemLoRAMemory` -- legacy ``BaseMemory`` for ``ConversationChain`` (needs langchain-classic);
* :class:`MemLoRAMiddleware` -- memory for LangChain 1.x ``create_agent`` (needs langchain);
* :class:`ChatMemLoRA` -- the on-device model as a chat model.

Only ``langchain-core`` is needed to import this package; the classes built on
``langchain-classic`` and ``langchain`` load on first use and say which extra to
install when their package is missing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from memlora_engine import MissingDependencyError

try:
    import langchain_core  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingDependencyError("langchain-core", "langchain") from exc

from memlora_integrations.langchain.chat_message_histories import MemLoRAChatMessageHistory
from memlora_integrations.langchain.chat_models import ChatMemLoRA
from memlora_integrations.langchain.retrievers import MemLoRARetriever

if TYPE_CHECKING:
    from memlora_integrations.langchain.memory import MemLoRAMemory
    from memlora_integrations.langchain.middleware import MemLoRAMiddleware

# Lazily imported: module, and the distribution to name when it is missing.
_LAZY = {
    "MemLoRAMemory": ("memlora_integrations.langchain.memory", "langchain_classic", "langchain-classic"),
    "MemLoRAMiddleware": ("memlora_integrations.langchain.middleware", "langchain", "langchain"),
}

__all__ = [
    "ChatMemLoRA",
    "MemLoRAChatMessageHistory",
    "MemLoRAMemory",
    "MemLoRAMiddleware",
    "MemLoRARetriever",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module_name, top_level, distribution = _LAZY[name]
    try:
        module = importlib.import_module(module_name)
    except MissingDependencyError:
        raise
    except ImportError as exc:
        if exc.name is not None and exc.name.split(".")[0] == top_level:
            raise MissingDependencyError(distribution, "langchain") from exc
        raise
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

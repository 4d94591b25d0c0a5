"""The live engines of this process, so a serialised ``MemLoRAMemory`` can be restored.

LlamaIndex saves an agent's ``Context`` with each component's ``to_dict()`` and
rebuilds it with ``cls.from_dict(data)``, passing nothing else. An engine (a model,
a store, open databases) is not data, so the dict names it instead: by a token for
the engine object (found again while it is alive in this process) and by its
``MemoryConfig`` (matched against the live engines, e.g. the one a worker built at
start-up over the same persistent store). Nothing is kept alive by this registry.
"""

from __future__ import annotations

import threading
import uuid
import weakref
from typing import Any

from memlora_engine import ConfigError, Memory

__all__ = ["engine_reference", "find_engine"]

_lock = threading.Lock()
_tokens: weakref.WeakKeyDictionary[Memory, str] = weakref.WeakKeyDictionary()
_engines: weakref.WeakValueDictionary[str, Memory] = weakref.WeakValueDictionary()


def engine_reference(engine: Memory) -> dict[str, Any]:
    """Register ``engine`` as live and return what a serialised memory keeps of it."""
    with _lock:
        token = _tokens.get(engine)
        if token is None:
            token = uuid.uuid4().hex
            _tokens[engine] = token
            _engines[token] = engine
    return {"token": token, "config": engine.config.to_dict()}


def find_engine(reference: dict[str, Any] | None) -> Memory:
    """The live engine a serialised memory refers to.

    Raises:
        ConfigError: no engine of this process matches (e.g. a new process that has not
            built its engine yet, or an in-memory engine that is gone).
    """
    reference = reference or {}
    with _lock:
        engine = _engines.get(str(reference.get("token")))
        if engine is not None:
            return engine
        config = reference.get("config")
        persistent = isinstance(config, dict) and config.get("store") != "memory"
        for candidate in list(_engines.values()):
            if persistent and candidate.config.to_dict() == config:
                return candidate
    raise ConfigError(
        "cannot restore MemLoRAMemory: no engine of this process matches the saved one "
        f"(config {config!r}). Build the engine (and a MemLoRAMemory over it) before restoring the "
        "Context, or call MemLoRAMemory.from_dict(data, memory=engine)."
    )

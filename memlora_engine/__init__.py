"""MemLoRA engine: on-device long-term memory run by a small model with LoRA experts.

Importing this package is cheap and silent: heavy dependencies (chromadb, torch,
sentence-transformers) load on first use, and no file is created until a
``Memory`` is built.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "AddResult": "memlora_engine.types",
    "Answer": "memlora_engine.types",
    "AsyncMemory": "memlora_engine.async_memory",
    "ChromaStore": "memlora_engine.store.chroma",
    "ConfigError": "memlora_engine.errors",
    "Embedder": "memlora_engine.embeddings.base",
    "Event": "memlora_engine.types",
    "FilterError": "memlora_engine.errors",
    "Generation": "memlora_engine.generator",
    "GenerationRequest": "memlora_engine.generator",
    "Generator": "memlora_engine.generator",
    "GeneratorError": "memlora_engine.errors",
    "HistoryEntry": "memlora_engine.types",
    "HistoryStore": "memlora_engine.history",
    "InvalidInputError": "memlora_engine.errors",
    "MemLoRAError": "memlora_engine.errors",
    "Memory": "memlora_engine.memory",
    "MemoryConfig": "memlora_engine.config",
    "MemoryEvent": "memlora_engine.types",
    "MemoryNotFoundError": "memlora_engine.errors",
    "MemoryRecord": "memlora_engine.types",
    "MetadataError": "memlora_engine.errors",
    "MissingDependencyError": "memlora_engine.errors",
    "NOT_IN_MEMORY": "memlora_engine.answering",
    "ModelOutputError": "memlora_engine.errors",
    "Operation": "memlora_engine.types",
    "OpenAICompatibleGenerator": "memlora_engine.remote",
    "OperationSpec": "memlora_engine.operations",
    "Scope": "memlora_engine.types",
    "ScopeError": "memlora_engine.errors",
    "SentenceTransformerEmbedder": "memlora_engine.embeddings.sentence_transformers",
    "StorageError": "memlora_engine.errors",
    "SupportsAdapters": "memlora_engine.generator",
    "SupportsAsyncGeneration": "memlora_engine.generator",
    "SupportsBatchGeneration": "memlora_engine.generator",
    "SupportsContextLength": "memlora_engine.generator",
    "SupportsImages": "memlora_engine.generator",
    "SupportsJsonSchema": "memlora_engine.generator",
    "SupportsStreaming": "memlora_engine.generator",
    "SupportsTokenCount": "memlora_engine.generator",
    "Store": "memlora_engine.store.base",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from memlora_engine.answering import NOT_IN_MEMORY
    from memlora_engine.async_memory import AsyncMemory
    from memlora_engine.config import MemoryConfig
    from memlora_engine.embeddings.base import Embedder
    from memlora_engine.embeddings.sentence_transformers import SentenceTransformerEmbedder
    from memlora_engine.errors import (
        ConfigError,
        FilterError,
        GeneratorError,
        InvalidInputError,
        MemLoRAError,
        MemoryNotFoundError,
        MetadataError,
        MissingDependencyError,
        ModelOutputError,
        ScopeError,
        StorageError,
    )
    from memlora_engine.generator import (
        Generation,
        GenerationRequest,
        Generator,
        SupportsAdapters,
        SupportsAsyncGeneration,
        SupportsBatchGeneration,
        SupportsContextLength,
        SupportsImages,
        SupportsJsonSchema,
        SupportsStreaming,
        SupportsTokenCount,
    )
    from memlora_engine.history import HistoryStore
    from memlora_engine.memory import Memory
    from memlora_engine.operations import OperationSpec
    from memlora_engine.remote import OpenAICompatibleGenerator
    from memlora_engine.store.base import Store
    from memlora_engine.store.chroma import ChromaStore
    from memlora_engine.types import (
        AddResult,
        Answer,
        Event,
        HistoryEntry,
        MemoryEvent,
        MemoryRecord,
        Operation,
        Scope,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'memlora_engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])

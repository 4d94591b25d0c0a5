"""Vector storage for memories: the :class:`Store` port and its Chroma backend."""

from memlora_engine.store.base import Store, validate_metadata
from memlora_engine.store.chroma import ChromaStore
from memlora_engine.store.filters import to_chroma_where

__all__ = ["ChromaStore", "Store", "to_chroma_where", "validate_metadata"]

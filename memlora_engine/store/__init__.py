"""Vector storage for memories."""

from memlora_engine.store.chroma import ChromaStore
from memlora_engine.store.filters import to_chroma_where

__all__ = ["ChromaStore", "to_chroma_where"]

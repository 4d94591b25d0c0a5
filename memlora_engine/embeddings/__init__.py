"""Text embedders: a protocol and the sentence-transformers backend."""

from memlora_engine.embeddings.base import Embedder
from memlora_engine.embeddings.sentence_transformers import SentenceTransformerEmbedder, default_embedding_model_path

__all__ = ["Embedder", "SentenceTransformerEmbedder", "default_embedding_model_path"]

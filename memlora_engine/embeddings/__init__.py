"""Text embedders: a protocol, the sentence-transformers backend and a fast offline hashing embedder."""

from memlora_engine.embeddings.base import Embedder
from memlora_engine.embeddings.hashing import HashingEmbedder
from memlora_engine.embeddings.sentence_transformers import SentenceTransformerEmbedder, default_embedding_model_path

__all__ = ["Embedder", "HashingEmbedder", "SentenceTransformerEmbedder", "default_embedding_model_path"]

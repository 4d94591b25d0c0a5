"""Answer metrics for LoCoMo: the official scorer, Mem0's lexical metrics, and L's lexical parts.

* :func:`locomo_score` -- the official LoCoMo QA score (``snap-research/locomo``,
  ``task_eval/evaluation.py``), reimplemented: token F1 after normalisation
  (lower-case, commas, punctuation and the words a/an/the/and removed) and Porter
  stemming; category 1 (multi-hop) splits prediction and gold on ``,`` and averages,
  over the gold parts, the best partial F1; category 3 keeps the gold's first ``;``
  alternative; category 5 (adversarial) scores 1 when the prediction says
  "no information available" or "not mentioned", else 0.
* :func:`mem0_f1`, :func:`bleu1`, :func:`exact_match` -- Mem0's evaluation
  (``evaluation/metrics/utils.py``): set-based F1 over a simple tokenisation,
  smoothed sentence BLEU-1, and case-insensitive string equality.
* :func:`rouge1_f` and :func:`meteor` -- two of the four parts of the paper's
  composite L (the other two, embedding-based, are in
  :mod:`memlora_engine.evaluation.semantic`).
* :func:`score_v` and :func:`vqa_accuracy` -- V, the VQA extension's metric: exact
  match after lower-casing and stripping whitespace and surrounding punctuation
  (the benchmark's answers are one word; see :mod:`memlora_engine.evaluation.vqa`).

METEOR needs WordNet for its synonym stage; WordNet data is not installable from
PyPI here, so :func:`meteor` is nltk's METEOR with exact and Porter-stem matching
only (named ``meteor_exact_stem`` in reports). BLEU-1 tokenises with nltk's
Treebank word tokenizer (``word_tokenize(..., preserve_line=True)``), which needs
no downloaded data; Mem0's calls ``word_tokenize`` with sentence splitting first,
which gives the same tokens on these one-line answers.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from functools import cache
from typing import Any

__all__ = [
    "adversarial_score",
    "bleu1",
    "exact_match",
    "locomo_exact_match",
    "locomo_f1",
    "locomo_multi_hop_f1",
    "locomo_score",
    "mem0_f1",
    "meteor",
    "normalize_answer",
    "normalize_vqa",
    "rouge1_f",
    "score_v",
    "vqa_accuracy",
]

_ARTICLES = re.compile(r"\b(a|an|the|and)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)
_ADVERSARIAL_PHRASES = ("no information available", "not mentioned")
_VQA_STRIP = string.whitespace + string.punctuation + "\u201c\u201d\u2018\u2019\u00ab\u00bb\u2026"


@cache
def _stemmer() -> Any:
    from nltk.stem import PorterStemmer

    return PorterStemmer()


def normalize_answer(text: str) -> str:
    """The official scorer's normalisation: drop commas, lower-case, drop punctuation and a/an/the/and."""
    text = str(text).replace(",", "").lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _stems(text: str) -> list[str]:
    stem = _stemmer().stem
    return [stem(w) for w in normalize_answer(text).split()]


def locomo_f1(prediction: str, gold: str) -> float:
    """Token F1 between stemmed, normalised token multisets (official LoCoMo ``f1_score``)."""
    pred, ref = _stems(prediction), _stems(gold)
    same = sum((Counter(pred) & Counter(ref)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def locomo_multi_hop_f1(prediction: str, gold: str) -> float:
    """Category 1: mean over the gold's ``,`` parts of the best F1 against any prediction part."""
    preds = [p.strip() for p in str(prediction).split(",")]
    golds = [g.strip() for g in str(gold).split(",")]
    return sum(max(locomo_f1(p, g) for p in preds) for g in golds) / len(golds)


def adversarial_score(prediction: str) -> float:
    """Category 5: 1.0 when the prediction declines ("no information available" / "not mentioned")."""
    lowered = str(prediction).lower()
    return 1.0 if any(phrase in lowered for phrase in _ADVERSARIAL_PHRASES) else 0.0


def locomo_score(prediction: str, gold: str | int | None, category: int) -> float:
    """The official LoCoMo score of one answer, by category (see the module docstring).

    Raises:
        ValueError: an unknown category, or no gold answer for categories 1-4.
    """
    if category == 5:
        return adversarial_score(prediction)
    if category not in (1, 2, 3, 4):
        raise ValueError(f"unknown LoCoMo category {category!r}")
    if gold is None:
        raise ValueError(f"category {category} question without a gold answer")
    reference = str(gold)
    if category == 3:
        reference = reference.split(";")[0].strip()
    if category == 1:
        return locomo_multi_hop_f1(prediction, reference)
    return locomo_f1(prediction, reference)


def locomo_exact_match(prediction: str, gold: str) -> bool:
    """The official scorer's exact match: equal *sets* of normalised tokens."""
    return set(normalize_answer(prediction).split()) == set(normalize_answer(gold).split())


def exact_match(prediction: str, gold: str) -> float:
    """Mem0's exact match: case-insensitive equality of the stripped strings."""
    return float(str(prediction).strip().lower() == str(gold).strip().lower())


def _simple_tokens(text: str) -> set[str]:
    lowered = str(text).lower()
    for mark in ".,!?":
        lowered = lowered.replace(mark, " ")
    return set(lowered.split())


def mem0_f1(prediction: str, gold: str) -> float:
    """Mem0's F1: over *sets* of lower-cased tokens split on whitespace and ``.,!?``."""
    if not str(prediction).strip() or not str(gold).strip():
        return 0.0
    pred, ref = _simple_tokens(prediction), _simple_tokens(gold)
    common = pred & ref
    if not pred or not ref or not common:
        return 0.0
    precision, recall = len(common) / len(pred), len(common) / len(ref)
    return 2 * precision * recall / (precision + recall)


def _word_tokens(text: str) -> list[str]:
    from nltk.tokenize import word_tokenize

    return word_tokenize(str(text).lower(), preserve_line=True)


def bleu1(prediction: str, gold: str) -> float:
    """Mem0's BLEU-1: nltk sentence BLEU, unigram weights, smoothing method 1."""
    if not str(prediction).strip() or not str(gold).strip():
        return 0.0
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    return float(
        sentence_bleu(
            [_word_tokens(gold)], _word_tokens(prediction), weights=(1, 0, 0, 0),
            smoothing_function=SmoothingFunction().method1,
        )
    )


@cache
def _rouge_scorer() -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rouge1"], use_stemmer=True)


def rouge1_f(prediction: str, gold: str) -> float:
    """ROUGE-1 F-measure (``rouge-score``, Porter stemming), as in Mem0's evaluation."""
    return float(_rouge_scorer().score(str(gold), str(prediction))["rouge1"].fmeasure)


class _NoSynonyms:
    """Stands in for WordNet: no synonym matches (METEOR's third stage is skipped)."""

    def synsets(self, *_: Any, **__: Any) -> list[Any]:
        return []


def meteor(prediction: str, gold: str) -> float:
    """METEOR (nltk, alpha 0.9, beta 3, gamma 0.5) with exact and stem matches only, no WordNet synonyms.

    Tokens are whitespace-split, as in Mem0's evaluation.
    """
    pred, ref = str(prediction).split(), str(gold).split()
    if not pred or not ref:
        return 0.0
    from nltk.translate.meteor_score import meteor_score

    return float(meteor_score([ref], pred, wordnet=_NoSynonyms()))


def normalize_vqa(text: str) -> str:
    """V's normalisation: lower-case, inner whitespace collapsed, surrounding whitespace and punctuation stripped.

    ``' "Red." '`` -> ``red``; punctuation inside (``t-shirt``, ``3.5``) is kept.
    """
    return " ".join(str(text).lower().split()).strip(_VQA_STRIP)


def score_v(prediction: str, gold: str) -> bool:
    """One VQA answer under V: equal after :func:`normalize_vqa` (an empty gold never matches)."""
    reference = normalize_vqa(gold)
    return bool(reference) and normalize_vqa(prediction) == reference


def vqa_accuracy(predictions: Sequence[str], golds: Sequence[str]) -> float:
    """VQA accuracy V: the share of predictions that :func:`score_v` accepts (a fraction in [0, 1]).

    Raises:
        ValueError: the sequences differ in length or are empty.
    """
    if len(predictions) != len(golds):
        raise ValueError(f"{len(predictions)} predictions for {len(golds)} gold answers")
    if not golds:
        raise ValueError("no answers to score")
    return sum(score_v(p, g) for p, g in zip(predictions, golds)) / len(golds)

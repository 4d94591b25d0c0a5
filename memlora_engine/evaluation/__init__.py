"""LoCoMo evaluation harness: loader, splits, full-pipeline runs, metrics, reports.

Evaluation imports the engine and the data it shares with training
(:mod:`memlora_engine.data`); the engine never imports evaluation, and evaluation and
training never import each other. Importing this package is light:
nltk, rouge-score, matplotlib, sentence-transformers and torch load only when a
metric, a plot or a model needs them.

Example:
    >>> from memlora_engine.evaluation import load_locomo, parse_config, select_split  # doctest: +SKIP
    >>> test = select_split(load_locomo("locomo_dev.json"), "test")  # doctest: +SKIP

The command line is ``memlora eval locomo`` / ``memlora eval report`` (see
``docs/evaluation.md``); the VQA extension (MemLoRA-V) is ``memlora eval fetch-images`` /
``vqa-build`` / ``vqa`` (see ``docs/vision_benchmark.md``).
"""

from __future__ import annotations

from memlora_engine.data.image_cache import fetch_images, resolve_image
from memlora_engine.data.locomo import (
    CATEGORY_NAMES,
    QA,
    Conversation,
    Observation,
    Session,
    Turn,
    load_locomo,
    parse_evidence,
    parse_locomo,
    parse_session_datetime,
)
from memlora_engine.data.splits import DEV_SPLITS, select_split, split_conversations
from memlora_engine.evaluation.configs import PRESETS, EvalConfig, parse_config
from memlora_engine.evaluation.efficiency import efficiency_summary
from memlora_engine.evaluation.judge import ChatModelJudge, OpenAICompatibleJudge, parse_label
from memlora_engine.evaluation.locomo import evaluate_locomo
from memlora_engine.evaluation.metrics import (
    adversarial_score,
    bleu1,
    exact_match,
    locomo_f1,
    locomo_score,
    mem0_f1,
    meteor,
    rouge1_f,
    score_v,
    vqa_accuracy,
)
from memlora_engine.evaluation.pipeline import pipeline_eval, pipeline_metric
from memlora_engine.evaluation.recording import RecordingGenerator
from memlora_engine.evaluation.report import build_report, load_runs
from memlora_engine.evaluation.runner import RunOptions, run_config, select_questions
from memlora_engine.evaluation.scoring import aggregate, score_answers
from memlora_engine.evaluation.semantic import SemanticScorer
from memlora_engine.evaluation.vqa import build_vqa_benchmark, evaluate_vqa, load_vqa_benchmark

__all__ = [
    "CATEGORY_NAMES",
    "ChatModelJudge",
    "Conversation",
    "DEV_SPLITS",
    "EvalConfig",
    "Observation",
    "OpenAICompatibleJudge",
    "PRESETS",
    "QA",
    "RecordingGenerator",
    "RunOptions",
    "SemanticScorer",
    "Session",
    "Turn",
    "adversarial_score",
    "aggregate",
    "bleu1",
    "build_report",
    "build_vqa_benchmark",
    "efficiency_summary",
    "evaluate_locomo",
    "evaluate_vqa",
    "exact_match",
    "fetch_images",
    "load_locomo",
    "load_runs",
    "load_vqa_benchmark",
    "locomo_f1",
    "locomo_score",
    "mem0_f1",
    "meteor",
    "parse_config",
    "parse_evidence",
    "parse_label",
    "parse_locomo",
    "parse_session_datetime",
    "pipeline_eval",
    "pipeline_metric",
    "resolve_image",
    "rouge1_f",
    "run_config",
    "score_answers",
    "score_v",
    "select_questions",
    "select_split",
    "split_conversations",
    "vqa_accuracy",
]

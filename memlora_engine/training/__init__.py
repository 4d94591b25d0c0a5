"""Distillation and LoRA training of the per-operation expert adapters (the MemLoRA paper, Algorithms B1/B2).

Training imports the engine and the data it shares with evaluation
(:mod:`memlora_engine.data`); the engine never imports training, and training and
evaluation never import each other (the commands join them). Importing this package is light:
torch, transformers and peft load only when a model is trained.

Pipeline (see ``docs/training.md``):

1. :func:`build_distillation_data` runs the engine with teachers on LoCoMo conversations
   and caches every call as a (prompt, cleaned target) example;
   :func:`write_synthetic_update` adds update conflicts with known labels
   (:mod:`~memlora_engine.training.synthetic_update`) and :func:`write_multi_fact_windows`
   extraction calls of several windows (:mod:`~memlora_engine.training.multi_fact`) to that cache;
2. :func:`train_adapter` trains one operation's LoRA expert, early-stopped on the
   validation loss; :func:`search_stage` wraps it in the two-tier search. The ``vqa``
   expert (MemLoRA-V) trains the same way on an image-text model, from the VQA
   benchmark's teacher answers (:func:`benchmark_examples`);
3. :func:`save_adapter` writes the adapter with its :class:`AdapterCard`.

The command line is ``memlora distill``, ``memlora train <operation>`` and
``memlora adapters`` (:mod:`memlora_engine.commands`); the search's outer tier is
:func:`memlora_engine.evaluation.pipeline_metric`, passed in as ``outer``.
"""

from __future__ import annotations

from memlora_engine.data.windows import window_messages
from memlora_engine.teachers import (
    CachedTeacher,
    ChatModelTeacher,
    GeneratorTeacher,
    OpenAICompatibleTeacher,
    Teacher,
    TeacherCall,
    TeacherGenerator,
)
from memlora_engine.training.cards import AdapterCard, pull_adapter, push_adapter, read_card, save_adapter
from memlora_engine.training.cleaning import clean_output, dump_json, prompt_values
from memlora_engine.training.config import DEFAULT_TARGET_MODULES, DEFAULT_VQA_MODEL, LANGUAGE_MODEL_QV, TrainConfig
from memlora_engine.training.data import (
    TRAINED_OPERATIONS,
    CachedEmbedder,
    DistillReport,
    build_distillation_data,
    cap_empty_share,
    is_empty_extraction,
    load_examples,
    replay_conversation,
    window_facts,
    window_observations,
)
from memlora_engine.training.encoding import (
    EncodedExample,
    collate,
    encode_example,
    encode_record,
    encode_vlm_example,
    record_inputs,
)
from memlora_engine.training.multi_fact import (
    MULTI_FACT_ID,
    facts_distribution,
    generate_multi_fact_examples,
    write_multi_fact_windows,
)
from memlora_engine.training.search import candidate_name, search_stage
from memlora_engine.training.signals import (
    LabelerThresholds,
    ObservationTeacher,
    ReferenceAnswerTeacher,
    SignalTeacher,
    UpdateLabeler,
    content_words,
    labeler_agreement,
)
from memlora_engine.training.synthetic_update import (
    SYNTHETIC_ID,
    generate_update_examples,
    label_distribution,
    write_synthetic_update,
)
from memlora_engine.training.trainer import TrainResult, evaluate_loss, train_adapter
from memlora_engine.training.vqa import VQA_SCHEMA, benchmark_examples, build_vqa_examples, vqa_messages, vqa_prompt

__all__ = [
    "AdapterCard",
    "CachedEmbedder",
    "CachedTeacher",
    "ChatModelTeacher",
    "DEFAULT_TARGET_MODULES",
    "DEFAULT_VQA_MODEL",
    "DistillReport",
    "EncodedExample",
    "GeneratorTeacher",
    "LANGUAGE_MODEL_QV",
    "LabelerThresholds",
    "MULTI_FACT_ID",
    "ObservationTeacher",
    "OpenAICompatibleTeacher",
    "ReferenceAnswerTeacher",
    "SYNTHETIC_ID",
    "SignalTeacher",
    "TRAINED_OPERATIONS",
    "Teacher",
    "TeacherCall",
    "TeacherGenerator",
    "TrainConfig",
    "TrainResult",
    "UpdateLabeler",
    "VQA_SCHEMA",
    "benchmark_examples",
    "build_distillation_data",
    "build_vqa_examples",
    "candidate_name",
    "cap_empty_share",
    "clean_output",
    "collate",
    "content_words",
    "dump_json",
    "encode_example",
    "encode_record",
    "encode_vlm_example",
    "evaluate_loss",
    "facts_distribution",
    "generate_multi_fact_examples",
    "generate_update_examples",
    "is_empty_extraction",
    "label_distribution",
    "labeler_agreement",
    "load_examples",
    "prompt_values",
    "pull_adapter",
    "push_adapter",
    "read_card",
    "record_inputs",
    "replay_conversation",
    "save_adapter",
    "search_stage",
    "train_adapter",
    "vqa_messages",
    "vqa_prompt",
    "window_facts",
    "window_messages",
    "window_observations",
    "write_multi_fact_windows",
    "write_synthetic_update",
]

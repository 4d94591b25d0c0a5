"""The operation registry: one :class:`OperationSpec` per :class:`~memlora_engine.types.Operation`.

Everything the engine, the backbone, training, evaluation, the demo and the bench
need to know about an operation is read from its entry: the placeholders of its
prompt, the JSON schema its output follows, the parser of that output, its token
budgets, the parts of the system it belongs to (ingestion, the text pipeline,
distillation) and which prompt style it renders. The tuples other modules export
(:data:`PIPELINE_OPERATIONS`, :data:`INGEST_OPERATIONS`, :data:`TRAINED_OPERATIONS`,
``MemoryConfig``'s default ``max_new_tokens``) are derived from it.

Adding an operation is: its :class:`~memlora_engine.types.Operation` member, its
prompt files (``prompts/<style>/<operation>.{system,user}.txt``), its parser, and
one entry in :data:`OPERATIONS`; ``tests/test_engine_operations.py`` walks the
registry and checks that they agree.

Importing this module reads no files.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from memlora_engine.parsing import parse_facts, parse_update_ops, parse_vqa
from memlora_engine.prompts import PROMPT_STYLES
from memlora_engine.types import Event, Operation

__all__ = [
    "EXTRACTION_SCHEMA",
    "INGEST_OPERATIONS",
    "LANGUAGE_MODEL_QV",
    "OPERATIONS",
    "PIPELINE_OPERATIONS",
    "TRAINED_OPERATIONS",
    "UPDATE_SCHEMA",
    "VQA_SCHEMA",
    "OperationSpec",
    "default_max_new_tokens",
    "operation_spec",
]

EXTRACTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"facts": {"type": "array", "items": {"type": "string"}}},
    "required": ["facts"],
    "additionalProperties": False,
}

UPDATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "memory": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "text": {"type": "string"},
                    "event": {"type": "string", "enum": [e.value for e in Event]},
                    "old_memory": {"type": "string"},
                },
                "required": ["id", "text", "event"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["memory"],
    "additionalProperties": False,
}

VQA_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"answer": {"type": "string"}, "reason": {"type": "string"}},
    "required": ["answer", "reason"],
    "additionalProperties": False,
}

LANGUAGE_MODEL_QV = r".*(language_model|text_model)\..*\.(q_proj|v_proj)"
"""The q/v projections of an image-text model's *language model* only (a regex, as peft takes it).

A bare ``["q_proj", "v_proj"]`` would also adapt the vision tower's attention (CLIP,
SigLIP and InternViT name theirs the same). transformers names the language model
``language_model`` (LLaVA, InternVL, Qwen2-VL, Gemma-3) or ``text_model`` (SmolVLM /
Idefics3), e.g. ``model.language_model.layers.0.self_attn.q_proj``.
"""


@dataclass(frozen=True, eq=False)
class OperationSpec:
    """What the system knows about one operation.

    Attributes:
        operation: the operation.
        placeholders: the ``$names`` of its prompt (system and user message together):
            every style's templates use exactly these; rendering needs all of them
            (and ignores other values, e.g. a ``date`` the prompt does not show).
        json_schema: the JSON its output must follow (constrained decoding), or None
            for free text.
        parse: turns the raw model output into what the engine uses (raises
            :class:`~memlora_engine.errors.ModelOutputError`), or None when the text
            is used as it is.
        max_new_tokens: the default token budget (``MemoryConfig.max_new_tokens``).
        quick_max_new_tokens: the small budget of ``memlora demo`` and ``memlora bench``
            (a few minutes on 2 CPU cores, where decode runs at ~5-7 tokens/s).
        lora_target_modules: the modules its LoRA adapter trains by default (module
            names, ``"all-linear"`` or a regex, as peft takes them); the paper's choice:
            attention q/v for the JSON stages, every linear layer for generation.
        ingest: it runs inside ``Memory.add`` (the evaluation's ingestion stages).
        pipeline: a stage of the text memory pipeline (``add`` then ``answer``): the
            stages an evaluation configuration puts on adapters or the base model.
        trained: its adapter is distilled from teachers over LoCoMo conversations
            (``memlora distill``); the others are trained from their own data.
        fixed_style: the one prompt style it always renders (the only one with its
            prompt), whatever the configuration; None: the configured rule (see
            :meth:`prompt_style`).
        own_prompt_version: its prompts are versioned apart from the text operations'
            ``PROMPT_VERSION`` (see :func:`memlora_engine.prompts.prompt_version`), so
            adding it left the existing adapters' cards valid.
    """

    operation: Operation
    placeholders: frozenset[str]
    json_schema: dict[str, Any] | None
    parse: Callable[[str], Any] | None
    max_new_tokens: int
    quick_max_new_tokens: int
    lora_target_modules: tuple[str, ...] | str
    ingest: bool = False
    pipeline: bool = False
    trained: bool = False
    fixed_style: str | None = None
    own_prompt_version: bool = False

    @property
    def styles(self) -> tuple[str, ...]:
        """The prompt styles that have this operation's prompt."""
        return (self.fixed_style,) if self.fixed_style is not None else PROMPT_STYLES

    def prompt_style(self, configured: str, fallback: str, has_adapter: bool) -> str:
        """The prompt style a call renders: the one rule of the engine and the evaluation.

        An operation on its trained adapter gets the prompts it was trained on
        (``configured``); one on the base model gets ``fallback`` (Mem0's long
        prompts by default); an operation with a :attr:`fixed_style` always gets that.
        """
        if self.fixed_style is not None:
            return self.fixed_style
        return configured if has_adapter else fallback


def _registry(*specs: OperationSpec) -> Mapping[Operation, OperationSpec]:
    # Kept in the enum's order, so every derived tuple lists operations the same way.
    by_operation = {spec.operation: spec for spec in specs}
    return MappingProxyType({op: by_operation[op] for op in Operation if op in by_operation})


OPERATIONS: Mapping[Operation, OperationSpec] = _registry(
    OperationSpec(
        Operation.EXTRACTION,
        placeholders=frozenset({"date", "conversation"}),
        json_schema=EXTRACTION_SCHEMA,
        parse=parse_facts,
        max_new_tokens=192,
        quick_max_new_tokens=64,
        lora_target_modules=("q_proj", "v_proj"),
        ingest=True,
        pipeline=True,
        trained=True,
    ),
    OperationSpec(
        Operation.UPDATE,
        placeholders=frozenset({"old_memories", "facts"}),
        json_schema=UPDATE_SCHEMA,
        parse=parse_update_ops,
        max_new_tokens=320,
        quick_max_new_tokens=96,
        lora_target_modules=("q_proj", "v_proj"),
        ingest=True,
        pipeline=True,
        trained=True,
    ),
    OperationSpec(
        Operation.GENERATION,
        placeholders=frozenset({"date", "memories", "question"}),
        json_schema=None,
        parse=None,
        max_new_tokens=48,
        quick_max_new_tokens=24,
        lora_target_modules="all-linear",
        pipeline=True,
        trained=True,
    ),
    OperationSpec(
        Operation.VQA,
        placeholders=frozenset({"question"}),
        json_schema=VQA_SCHEMA,
        parse=parse_vqa,
        max_new_tokens=48,
        quick_max_new_tokens=48,
        lora_target_modules=LANGUAGE_MODEL_QV,  # not the vision tower
        fixed_style="memlora",  # Mem0 has no VQA prompt
        own_prompt_version=True,
    ),
)
"""Operation -> its spec, in the enum's order (read-only)."""

PIPELINE_OPERATIONS: tuple[Operation, ...] = tuple(op for op, spec in OPERATIONS.items() if spec.pipeline)
"""The stages of the text memory pipeline: extraction, update, generation."""

INGEST_OPERATIONS: tuple[Operation, ...] = tuple(op for op, spec in OPERATIONS.items() if spec.ingest)
"""The stages ``Memory.add`` runs: extraction, update."""

TRAINED_OPERATIONS: tuple[Operation, ...] = tuple(op for op, spec in OPERATIONS.items() if spec.trained)
"""The operations distilled from teachers over LoCoMo: extraction, update, generation."""


def operation_spec(operation: Operation | str) -> OperationSpec:
    """The spec of ``operation`` (an :class:`Operation` or its value; ``ValueError`` on an unknown one)."""
    return OPERATIONS[Operation(operation)]


def default_max_new_tokens(*, quick: bool = False) -> dict[str, int]:
    """Operation value -> token budget: the defaults, or with ``quick`` the demo's and the bench's."""
    return {op.value: spec.quick_max_new_tokens if quick else spec.max_new_tokens for op, spec in OPERATIONS.items()}

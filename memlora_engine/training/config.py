"""Training configuration: one :class:`TrainConfig` per adapter run, saved beside it as JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from memlora_engine.config import known_fields_only
from memlora_engine.errors import ConfigError
from memlora_engine.operations import LANGUAGE_MODEL_QV, OPERATIONS
from memlora_engine.types import Operation

# LANGUAGE_MODEL_QV is the registry's, re-exported.
__all__ = ["DEFAULT_TARGET_MODULES", "DEFAULT_VQA_MODEL", "LANGUAGE_MODEL_QV", "TrainConfig"]

DEFAULT_TARGET_MODULES: dict[str, list[str] | str] = {
    op.value: spec.lora_target_modules if isinstance(spec.lora_target_modules, str) else list(spec.lora_target_modules)
    for op, spec in OPERATIONS.items()
}
"""Operation value -> its default LoRA target modules (``lora_target_modules`` of the registry):
the paper's choice, attention q/v for the JSON stages (the language model's only for vqa),
every linear layer for generation."""

DEFAULT_VQA_MODEL = "OpenGVLab/InternVL3-1B-hf"
"""The default base of the ``vqa`` adapter: InternVL3-1B in its transformers format (a hub
id; offline, pass a local directory instead). The text operations default to ``gemma-3-270m``."""

_DEFAULT_TEXT_MODEL = "gemma-3-270m"
_DEFAULT_MAX_LENGTH = {"vqa": 4096}


@dataclass
class TrainConfig:
    """How one LoRA expert is trained.

    Attributes:
        operation: extraction | update | generation (| vqa).
        model: the backbone (a :data:`memlora_engine.backbone.MODELS` name, a path or a hub
            id); empty (default): ``gemma-3-270m``, for ``vqa`` :data:`DEFAULT_VQA_MODEL` (an
            image-text model).
        rank, alpha, dropout: LoRA hyperparameters (peft's default zero-init of B).
        target_modules: module names, ``"all-linear"`` or a regex (a string peft matches
            against full module names); per-operation default when None
            (:data:`DEFAULT_TARGET_MODULES`).
        learning_rate, batch_size: AdamW step size and examples per step.
        max_steps: hard cap on optimizer steps (CPU budget).
        warmup_steps: linear warm-up, then linear decay to 10 % at ``max_steps``.
        eval_every: steps between validation teacher-forcing losses (and checkpoints).
        patience: evaluations without improvement before early stopping.
        val_examples: validation examples scored each time (a fixed seeded subset).
        max_length: examples longer than this (prompt + target tokens) are skipped,
            never truncated (a truncated prompt is not what the engine sends). 0
            (default): 512; 4096 for ``vqa``, whose prompt holds the image tokens (InternVL3: 256
            per 448-pixel tile, up to 12 tiles + a thumbnail).
        dtype: backbone weights dtype, as :func:`~memlora_engine.backbone.load_backbone`
            takes it (``auto``: bfloat16 on CPUs with AMX/AVX512-BF16); LoRA weights stay float32.
        autocast: run forward/backward under bf16 autocast (for float32 weights).
        max_empty_share: extraction only: keep every training window with facts and at
            most this share of windows whose target is ``{"facts": []}`` (a seeded sample;
            validation keeps its natural mix). None keeps them all. See docs/training.md.
        weight_decay, grad_clip, seed: the usual.
        num_threads: torch threads (default: all usable cores).
        device: torch device of the model and batches (``"cpu"``, ``"cuda"``). On a GPU
            a resumed run is not bit-identical (the CUDA dropout RNG is not checkpointed).
        init_adapter: warm start: a saved LoRA adapter directory (``adapter_model.safetensors``
            of the same rank and target modules) whose weights the run starts from, with a
            fresh optimizer and schedule. A run that resumes from its own checkpoint ignores it.
            Use another ``seed`` than the earlier run so the batches come in another order.
    """

    operation: str
    model: str = ""  # "": the operation's default (resolved in __post_init__)
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.1
    target_modules: list[str] | str | None = None
    learning_rate: float = 2e-4
    batch_size: int = 4
    max_steps: int = 200
    warmup_steps: int = 5
    eval_every: int = 10
    patience: int = 3
    val_examples: int = 32
    max_length: int = 0  # 0: the operation's default (resolved in __post_init__)
    dtype: str = "auto"
    autocast: bool = False
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    seed: int = 0
    num_threads: int | None = None
    max_empty_share: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    init_adapter: str | None = None

    def __post_init__(self) -> None:
        try:
            Operation(self.operation)
        except ValueError as exc:
            raise ConfigError(f"unknown operation {self.operation!r}") from exc
        if not self.model:
            self.model = DEFAULT_VQA_MODEL if self.operation == Operation.VQA.value else _DEFAULT_TEXT_MODEL
        if self.max_length == 0:
            self.max_length = _DEFAULT_MAX_LENGTH.get(self.operation, 512)
        for name in ("rank", "alpha", "batch_size", "max_steps", "eval_every", "patience", "val_examples", "max_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.learning_rate <= 0:
            raise ConfigError(f"learning_rate must be positive, got {self.learning_rate}")

    @property
    def modules(self) -> list[str] | str:
        """The LoRA target modules in effect."""
        return self.target_modules if self.target_modules is not None else DEFAULT_TARGET_MODULES[self.operation]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "target_modules": self.modules}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True), encoding="utf-8")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a dict; unknown keys are ignored with a warning (newer files load)."""
        return cls(**known_fields_only(cls, data))

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

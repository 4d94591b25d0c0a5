"""Evaluation configurations: which stages run on an adapter, which prompts, memory or full context.

Presets (the paper's comparisons):

==========================  =============================  ================================
spec                        adapters                       prompts
==========================  =============================  ================================
``memlora``                 extraction, update, generation short MemLoRA prompts
``mem0-prompts``            none                           Mem0's long prompts (base model)
``memlora-prompts-base``    none                           short MemLoRA prompts (base model)
``full-context``            none                           whole conversation in the
                                                           generation prompt (no memory)
==========================  =============================  ================================

Any per-stage mix (the paper's Table 4 ablation) is written ``adapters=extraction,update``
(stages on their adapter use the short prompts); the stages without an adapter use
the short prompts too unless ``;base-prompts=mem0`` follows. ``adapters=none`` is
``memlora-prompts-base``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any

from memlora_engine.config import MemoryConfig
from memlora_engine.errors import ConfigError
from memlora_engine.operations import PIPELINE_OPERATIONS, operation_spec
from memlora_engine.prompts import PROMPT_STYLES
from memlora_engine.types import Operation

# PIPELINE_OPERATIONS is the registry's, re-exported: the stages a configuration sets.
__all__ = ["PIPELINE_OPERATIONS", "PRESETS", "EvalConfig", "memory_settings", "parse_config", "parse_token_caps"]


@dataclass(frozen=True)
class EvalConfig:
    """One evaluated configuration.

    Attributes:
        name: a filesystem-safe name (used for the run directory).
        spec: the text it was parsed from.
        adapters: the stages that run on their trained adapter.
        adapter_prompt_style: prompts of the adapter stages (what they were trained on).
        base_prompt_style: prompts of the stages on the base model.
        full_context: answer from the whole conversation instead of from memory.
    """

    name: str
    spec: str
    adapters: frozenset[Operation] = field(default_factory=frozenset)
    adapter_prompt_style: str = "memlora"
    base_prompt_style: str = "memlora"
    full_context: bool = False

    def memory_config(self, **overrides: object) -> MemoryConfig:
        """A fresh in-memory :class:`MemoryConfig` for one conversation."""
        values: dict[str, object] = {
            "store": "memory",
            "prompt_style": self.adapter_prompt_style,
            "base_prompt_style": self.base_prompt_style,
        }
        values.update(overrides)
        return MemoryConfig(**values)  # type: ignore[arg-type]

    def prompt_style(self, operation: Operation) -> str:
        """The prompts ``operation`` renders under this configuration (the engine's rule)."""
        return operation_spec(operation).prompt_style(
            self.adapter_prompt_style, self.base_prompt_style, Operation(operation) in self.adapters
        )

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "spec": self.spec,
            "adapters": sorted(op.value for op in self.adapters),
            "prompts": {op.value: self.prompt_style(op) for op in PIPELINE_OPERATIONS},
            "full_context": self.full_context,
        }


PRESETS: dict[str, EvalConfig] = {
    "memlora": EvalConfig("memlora", "memlora", frozenset(PIPELINE_OPERATIONS)),
    "mem0-prompts": EvalConfig("mem0-prompts", "mem0-prompts", base_prompt_style="mem0"),
    "memlora-prompts-base": EvalConfig("memlora-prompts-base", "memlora-prompts-base"),
    "full-context": EvalConfig("full-context", "full-context", full_context=True),
}


def _operations(text: str) -> frozenset[Operation]:
    if text.strip().lower() in ("", "none"):
        return frozenset()
    ops = set()
    for part in text.split(","):
        try:
            op = Operation(part.strip().lower())
        except ValueError as exc:
            stages = ", ".join(op.value for op in PIPELINE_OPERATIONS)
            raise ConfigError(f"unknown stage {part.strip()!r}; stages are {stages}") from exc
        if op not in PIPELINE_OPERATIONS:
            raise ConfigError(f"{op.value!r} is not a stage of the memory pipeline")
        ops.add(op)
    return frozenset(ops)


def parse_config(spec: str) -> EvalConfig:
    """Parse a preset name or an ``adapters=...[;base-prompts=...]`` spec.

    Raises:
        ConfigError: an unknown preset, stage, key or prompt style.
    """
    text = spec.strip()
    parts = [p.strip() for p in text.split(";") if p.strip()]
    if not parts:
        raise ConfigError("empty configuration spec")
    head, options = parts[0], parts[1:]
    if head in PRESETS:
        config = PRESETS[head]
    elif head.startswith("adapters="):
        ops = _operations(head.split("=", 1)[1])
        config = EvalConfig(name="", spec=text, adapters=ops)
    else:
        raise ConfigError(f"unknown configuration {head!r}; use one of {sorted(PRESETS)} or adapters=STAGE,STAGE")
    base = config.base_prompt_style
    for option in options:
        key, _, value = option.partition("=")
        if key.strip() != "base-prompts" or value.strip() not in PROMPT_STYLES:
            raise ConfigError(f"unknown option {option!r}; the only option is base-prompts={'|'.join(PROMPT_STYLES)}")
        base = value.strip()
    if options or not config.name:
        ops_name = "-".join(op.value for op in PIPELINE_OPERATIONS if op in config.adapters) or "none"
        stem = "full-context" if config.full_context else (config.name if head in PRESETS else f"adapters-{ops_name}")
        name = stem if base == config.base_prompt_style else f"{stem}-base-{base}"
        config = EvalConfig(name, text, config.adapters, config.adapter_prompt_style, base, config.full_context)
    if not re.fullmatch(r"[A-Za-z0-9._-]+", config.name):
        raise ConfigError(f"configuration name {config.name!r} is not filesystem-safe")
    return config


def parse_token_caps(text: str | None) -> dict[str, int]:
    """``"extraction=96,update=160"`` -> per-stage ``max_new_tokens`` caps ({} for None or "")."""
    caps: dict[str, int] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        stage, sep, value = item.partition("=")
        stage = stage.strip()
        if not sep or stage not in {op.value for op in Operation} or not value.strip().isdigit() or int(value) < 1:
            raise ConfigError(f"token caps are STAGE=N with a stage of {[op.value for op in Operation]}, got {item!r}")
        caps[stage] = int(value)
    return caps


_WHERE_STORED = frozenset({"data_dir", "store", "chroma_host", "chroma_port", "chroma_ssl", "chroma_headers",
                           "database_url", "namespace"})
"""MemoryConfig fields that say where memories are kept, not what they are."""


def memory_settings(config: MemoryConfig) -> dict[str, Any]:
    """The :class:`MemoryConfig` values a run's memory and answers depend on.

    The values in effect, defaults included, so a result file says what it measured
    and a cached run's fingerprint changes with a default: a run cached before a
    default changed (``anchor_dates`` in session 15, ``speaker_windows`` in 16) is
    then neither resumed nor taken by ``--ingest-from`` under the new default.
    """
    return {f.name: getattr(config, f.name) for f in fields(config) if f.name not in _WHERE_STORED}

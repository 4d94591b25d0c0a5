"""The on-device backbone: a small transformers model with per-operation peft LoRA adapters.

Importing this package is cheap: torch, transformers and peft load when a backbone
is built (they come with ``pip install "memlora[hf]"``). A second runtime,
:class:`LlamaCppBackbone` (``load_backbone(..., runtime="llama.cpp")``, ``pip install
"memlora[llamacpp]"``), runs the GGUF file and the experts on llama.cpp.

Example:
    >>> from memlora_engine import Memory, MemoryConfig  # doctest: +SKIP
    >>> from memlora_engine.backbone import load_backbone  # doctest: +SKIP
    >>> backbone = load_backbone("gemma-3-270m", adapters={"extraction": "adapters/extraction"})  # doctest: +SKIP
    >>> memory = Memory(MemoryConfig(), generator=backbone)  # doctest: +SKIP
"""

from __future__ import annotations

from memlora_engine.backbone.constrained import JsonConstraint
from memlora_engine.backbone.hf import HFBackbone
from memlora_engine.backbone.llamacpp import LlamaCppBackbone
from memlora_engine.backbone.loader import DTYPES, RUNTIMES, cpu_count, load_backbone, resolve_dtype, resolve_runtime
from memlora_engine.backbone.models import (
    DEFAULT_MODEL,
    MODELS,
    BuiltinModel,
    ResolvedModel,
    default_cache_dir,
    resolve_model,
)
from memlora_engine.backbone.vlm import VLMBackbone, encode_vlm, load_vlm_backbone

__all__ = [
    "DEFAULT_MODEL",
    "DTYPES",
    "MODELS",
    "RUNTIMES",
    "BuiltinModel",
    "HFBackbone",
    "JsonConstraint",
    "LlamaCppBackbone",
    "ResolvedModel",
    "VLMBackbone",
    "cpu_count",
    "default_cache_dir",
    "encode_vlm",
    "load_backbone",
    "load_vlm_backbone",
    "resolve_dtype",
    "resolve_model",
    "resolve_runtime",
]

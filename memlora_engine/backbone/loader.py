"""``load_backbone``: model name in, ready backbone out (:class:`HFBackbone`, or :class:`LlamaCppBackbone`)."""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, overload

from memlora_engine.backbone.hf import AdapterSource, HFBackbone
from memlora_engine.backbone.llamacpp import LlamaCppBackbone
from memlora_engine.backbone.models import DEFAULT_MODEL, MODELS, default_cache_dir, load_gguf, resolve_model
from memlora_engine.backbone.vlm import is_vision_model, load_vlm_backbone
from memlora_engine.errors import ConfigError, GeneratorError, require
from memlora_engine.types import Operation

__all__ = ["DTYPES", "RUNTIMES", "cpu_count", "load_backbone", "resolve_dtype", "resolve_runtime"]

logger = logging.getLogger(__name__)

DTYPES = ("auto", "float32", "bfloat16")
RUNTIMES = ("auto", "transformers", "llama.cpp")
"""What runs the model: ``"auto"`` (default, see :func:`resolve_runtime`), transformers + peft (training
needs it), or llama.cpp on the GGUF file."""


def cpu_count() -> int:
    """CPU cores this process may use (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def resolve_dtype(dtype: str, device: str = "cpu") -> str:
    """``"auto"`` -> the dtype measured fastest for this pipeline (numbers in docs/backbone.md).

    On CPU: bfloat16 where the CPU has native bf16 arithmetic (AMX tiles or
    AVX512-BF16): on an idle 2-core AVX512-BF16 machine gemma-3-270m decodes at 17.5
    vs 9.8 tok/s and prefills at 537 vs 215 tok/s in bf16 vs float32 (half the bytes
    per token). Elsewhere float32. On GPU: bfloat16.
    """
    if dtype not in DTYPES:
        raise ConfigError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if dtype != "auto":
        return dtype
    if device != "cpu":
        return "bfloat16"
    return "bfloat16" if _cpu_has("amx_bf16") or _cpu_has("avx512_bf16") else "float32"


def resolve_runtime(
    runtime: str,
    model: str | os.PathLike[str] = DEFAULT_MODEL,
    *,
    dtype: str = "auto",
    device: str = "cpu",
    vision: bool | None = None,
    prefix_cache: bool = False,
    batch_generation: bool = False,
) -> str:
    """``"auto"`` -> the runtime :func:`load_backbone` uses for ``model`` and these options.

    llama.cpp where it can run the request: a GGUF model (a built-in name or a ``.gguf``
    file), ``llama-cpp-python`` installed (``memlora[llamacpp]``, part of ``memlora[all]``),
    and every transformers-only option at its default. It runs the shipped Q4_K_M file
    as it is, 3-4x faster per call than transformers in bf16 on 2 CPU cores with the
    experts' quality kept (docs/backbone.md, "llama.cpp runtime"). Otherwise transformers:
    model directories and hub ids, ``device="cuda"``, vision models, a non-default
    ``dtype``, ``prefix_cache`` or ``batch_generation``, or llama-cpp-python missing.
    ``"transformers"`` and ``"llama.cpp"`` are returned as they are.

    Raises:
        ConfigError: ``runtime`` is not one of :data:`RUNTIMES`.
    """
    if runtime not in RUNTIMES:
        raise ConfigError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
    if runtime != "auto":
        return runtime
    name = os.fspath(model)
    gguf = name in MODELS or name.lower().endswith(".gguf")
    transformers_only = (dtype, device, vision, prefix_cache, batch_generation) != ("auto", "cpu", None, False, False)
    if gguf and not transformers_only and importlib.util.find_spec("llama_cpp") is not None:
        return "llama.cpp"
    return "transformers"


def _cpu_has(flag: str) -> bool:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return flag in line.split()
    except OSError:
        pass
    return False


@overload
def load_backbone(
    model: str | os.PathLike[str] = DEFAULT_MODEL,
    adapters: Mapping[str | Operation, AdapterSource] | str | None = "shipped",
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    dtype: str = "auto",
    constrained: bool = True,
    num_threads: int | None = None,
    device: str = "cpu",
    vision: bool | None = None,
    vocabulary: str = "latin",
    prefix_cache: bool = False,
    batch_generation: bool = False,
    runtime: Literal["transformers"],
) -> HFBackbone: ...


@overload
def load_backbone(
    model: str | os.PathLike[str] = DEFAULT_MODEL,
    adapters: Mapping[str | Operation, AdapterSource] | str | None = "shipped",
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    dtype: str = "auto",
    constrained: bool = True,
    num_threads: int | None = None,
    device: str = "cpu",
    vision: bool | None = None,
    vocabulary: str = "latin",
    prefix_cache: bool = False,
    batch_generation: bool = False,
    runtime: str = "auto",
) -> HFBackbone | LlamaCppBackbone: ...


def load_backbone(
    model: str | os.PathLike[str] = DEFAULT_MODEL,
    adapters: Mapping[str | Operation, AdapterSource] | str | None = "shipped",
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    dtype: str = "auto",
    constrained: bool = True,
    num_threads: int | None = None,
    device: str = "cpu",
    vision: bool | None = None,
    vocabulary: str = "latin",
    prefix_cache: bool = False,
    batch_generation: bool = False,
    runtime: str = "auto",
) -> HFBackbone | LlamaCppBackbone:
    """Load a backbone ready for :class:`~memlora_engine.Memory`.

    Args:
        model: a built-in name (see :data:`memlora_engine.backbone.MODELS`; default
            ``"gemma-3-270m"``, offline from PyPI), a local model directory, a ``.gguf``
            file, or a hub id.
        adapters: ``"shipped"`` (default): the expert adapters shipped in the package for a
            built-in model (``memlora_engine/adapters/<model>/``, see docs/training.md),
            none for any other model. Or a LoRA adapter per operation (``"extraction"``,
            ``"update"``, ``"generation"``, ``"vqa"``): a local directory or a hub id;
            operations without one run the base model. ``None`` or ``{}``: the base model only.
        cache_dir: where built-in GGUF models are converted to safetensors
            (``$MEMLORA_CACHE_DIR`` or the user cache dir by default).
        dtype: ``"auto"``, ``"float32"`` or ``"bfloat16"``.
        constrained: decode extraction/update under their JSON schema.
        num_threads: torch intra-op threads; every core this process may use by default.
        device: torch device (``"cpu"``; ``"cuda"`` works where available).
        vision: load an image-text-to-text model (InternVL3, SmolVLM, Qwen2-VL, ...) as a
            :class:`~memlora_engine.backbone.vlm.VLMBackbone`; ``None`` (default) decides
            from the model's config.
        vocabulary: ``"latin"`` (default): the output head computes only the Latin-script
            tokens (2-3x faster decoding for gemma-3's 262k vocabulary; greedy output is
            the full head's among those tokens, see docs/backbone.md); ``"full"``: every token.
        prefix_cache: reuse the states of prompt prefixes shared between calls (see
            :class:`~memlora_engine.backbone.HFBackbone`; off: in bfloat16 it can change
            greedy outputs, see docs/backbone.md).
        batch_generation: decode the update step's per-fact calls in one batch (see
            :meth:`~memlora_engine.backbone.HFBackbone.generate_batch`; off by default).
        runtime: ``"auto"`` (default): llama.cpp where it can run the request, else
            transformers (:func:`resolve_runtime`); ``"transformers"``: an :class:`HFBackbone`
            (what training uses); ``"llama.cpp"``: a
            :class:`~memlora_engine.backbone.LlamaCppBackbone` on the model's GGUF file as
            shipped (a built-in model or a ``.gguf`` file), the adapters converted to GGUF
            LoRA files in the cache; ``dtype``, ``device``, ``vision``, ``prefix_cache`` and
            ``batch_generation`` are the transformers runtime's and must stay at their
            defaults (see docs/backbone.md, "llama.cpp runtime").

    Raises:
        ConfigError: an unknown model, dtype or adapter.
        GeneratorError: the model files cannot be loaded.
        MissingDependencyError: ``memlora[hf]`` (or, for llama.cpp, ``memlora[llamacpp]``) is not installed.
    """
    chosen = resolve_runtime(runtime, model, dtype=dtype, device=device, vision=vision, prefix_cache=prefix_cache,
                             batch_generation=batch_generation)
    if isinstance(adapters, str):
        if adapters != "shipped":
            raise ConfigError(f'adapters must be a mapping, None or "shipped", got {adapters!r}')
        from memlora_engine.adapters import shipped_adapters

        adapters = dict(shipped_adapters(os.fspath(model))) or None
    if chosen == "llama.cpp":
        transformers_only = {"dtype": (dtype, "auto"), "device": (device, "cpu"), "vision": (vision, None),
                             "prefix_cache": (prefix_cache, False), "batch_generation": (batch_generation, False)}
        changed = [f"{key}={value!r}" for key, (value, default) in transformers_only.items() if value != default]
        if changed:
            raise ConfigError(f"{', '.join(changed)}: not an option of the llama.cpp runtime (transformers only)")
        return _load_llamacpp(model, adapters, cache_dir=cache_dir, constrained=constrained,
                              num_threads=num_threads, vocabulary=vocabulary)
    torch = require("torch", "hf")
    transformers = require("transformers", "hf")
    torch_dtype = getattr(torch, resolve_dtype(dtype, device))
    threads = num_threads or cpu_count()
    if device == "cpu" and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    start = time.perf_counter()
    resolved = resolve_model(model, cache_dir)
    if vision is None:
        vision = resolved.gguf_file is None and os.fspath(model) not in MODELS and is_vision_model(resolved.source)
    if vision:
        return load_vlm_backbone(resolved.source, adapters, dtype=torch_dtype, constrained=constrained, device=device)
    try:
        if resolved.gguf_file is not None:
            hf_model, tokenizer = load_gguf(Path(resolved.source) / resolved.gguf_file)
        else:
            tokenizer = transformers.AutoTokenizer.from_pretrained(resolved.source)
            hf_model = transformers.AutoModelForCausalLM.from_pretrained(resolved.source, dtype=torch_dtype)
    except OSError as exc:
        raise GeneratorError(f"cannot load model {os.fspath(model)!r} from {resolved.source}: {exc}") from exc
    except ValueError as exc:
        raise ConfigError(f"cannot load model {os.fspath(model)!r}: {exc}") from exc
    hf_model = hf_model.to(device=device, dtype=torch_dtype)
    index_dir = (Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()) / "token-index"
    backbone = HFBackbone(
        hf_model, tokenizer, adapters=adapters, constrained=constrained, name=os.fspath(model),
        vocabulary=vocabulary, cache_dir=index_dir, prefix_cache=prefix_cache, batch_generation=batch_generation,
    )
    logger.info(
        "loaded %s (%s, %d threads) in %.1f s%s",
        backbone.name, torch_dtype, threads, time.perf_counter() - start,
        " (converted from GGUF)" if resolved.converted_now else "",
    )
    return backbone


def _load_llamacpp(
    model: str | os.PathLike[str],
    adapters: Mapping[str | Operation, AdapterSource] | None,
    *,
    cache_dir: str | os.PathLike[str] | None,
    constrained: bool,
    num_threads: int | None,
    vocabulary: str,
) -> LlamaCppBackbone:
    """A :class:`LlamaCppBackbone` on ``model``'s GGUF file, with the tokenizer the transformers runtime uses."""
    from memlora_engine.backbone._gguf_cache import builtin_gguf

    require("llama_cpp", "llamacpp")
    transformers = require("transformers", "hf")
    torch = require("torch", "hf")
    # The decode loop no longer runs torch per token (numpy on llama.cpp's logits buffer), but torch still runs
    # in this process (the embedder): with more than one thread its OpenMP pool contended with llama.cpp's (on a
    # busy 2-core machine a torch.zeros(262144) took 8 ms instead of 0.014 ms when the loop still used torch).
    # As the transformers runtime does, the loader sets torch's (process-wide) thread count for its runtime.
    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)
    start = time.perf_counter()
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    name = os.fspath(model)
    # The tokenizer (and stop tokens) of the converted model: the very ids the transformers runtime feeds.
    resolved = resolve_model(model, cache_dir)
    if name in MODELS:
        gguf = builtin_gguf(name, root)
        tokenizer_kwargs: dict[str, str] = {}
    elif resolved.gguf_file is not None:
        gguf = Path(resolved.source) / resolved.gguf_file
        tokenizer_kwargs = {"gguf_file": resolved.gguf_file}
    else:
        raise ConfigError(f"the llama.cpp runtime runs GGUF models: a built-in name or a .gguf file, not {name!r}")
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(resolved.source, **tokenizer_kwargs)
    except (OSError, ValueError) as exc:
        raise GeneratorError(f"cannot load the tokenizer of {name!r} from {resolved.source}: {exc}") from exc
    try:
        eos_ids = transformers.GenerationConfig.from_pretrained(resolved.source).eos_token_id
    except OSError:  # no generation_config.json (a bare .gguf file): the tokenizer's eos only
        eos_ids = None
    backbone = LlamaCppBackbone(
        gguf, tokenizer, adapters=adapters,
        eos_token_ids=[] if eos_ids is None else [eos_ids] if isinstance(eos_ids, int) else list(eos_ids),
        constrained=constrained, name=name, vocabulary=vocabulary, cache_dir=root, num_threads=num_threads,
    )
    logger.info("loaded %s on llama.cpp (%s, %d threads) in %.1f s%s", name, gguf.name, backbone.num_threads,
                time.perf_counter() - start, " (converted from GGUF)" if resolved.converted_now else "")
    return backbone

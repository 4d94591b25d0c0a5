"""Expert adapters shipped with the package, laid out ``<model>/<operation>/``.

Each directory holds a peft LoRA adapter (``adapter_model.safetensors``,
``adapter_config.json``) and ``card.json`` (base model, prompt version, data,
hyperparameters, validation metrics; see :mod:`memlora_engine.training.cards`).
An adapter is only valid with the prompts it was trained on: :func:`shipped_adapters`
skips (with a warning) any whose card names another prompt version than
:func:`~memlora_engine.prompts.prompt_version` of its operation.

Importing this module reads no files.
"""

from __future__ import annotations

import json
import warnings
from importlib import resources
from pathlib import Path

from memlora_engine.types import Operation

__all__ = ["shipped_adapters", "shipped_dir"]


def shipped_dir() -> Path:
    """The directory of the shipped adapters (inside the installed package)."""
    return Path(str(resources.files(__package__)))


def shipped_adapters(model: str) -> dict[str, Path]:
    """Operation -> adapter directory of the adapters shipped for ``model`` (a built-in name).

    Returns ``{}`` for a model without shipped adapters (a path, a hub id, another model).
    """
    from memlora_engine.prompts import prompt_version

    root = shipped_dir() / str(model).replace("/", "--")
    found: dict[str, Path] = {}
    if not root.is_dir():
        return found
    for op in (operation.value for operation in Operation):
        directory = root / op
        if not (directory / "adapter_model.safetensors").is_file():
            continue
        card_path = directory / "card.json"
        card = json.loads(card_path.read_text(encoding="utf-8")) if card_path.is_file() else {}
        expected = prompt_version(op)
        if card.get("prompt_version") != expected:
            warnings.warn(
                f"shipped {op} adapter for {model} was trained on prompt version {card.get('prompt_version')!r}, "
                f"not the current {expected!r}; it is not loaded (retrain it: see docs/training.md)",
                stacklevel=2,
            )
            continue
        found[op] = directory
    return found

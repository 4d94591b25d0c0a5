"""Adapter cards and adapter directories: save, push to and pull from a directory registry.

An adapter directory holds peft's ``adapter_model.safetensors`` and ``adapter_config.json``
plus ``card.json``: what the adapter was trained from and how well it did -- the base
model, the operation, the prompt style and :data:`~memlora_engine.prompts.PROMPT_VERSION`
it was trained on (an adapter is only valid with those exact prompts), data,
hyperparameters and validation metrics.

A *registry* is a plain directory laid out ``<registry>/<model>/<operation>/`` (the
package ships one: :func:`memlora_engine.adapters.shipped_dir`). ``push`` copies an
adapter in, ``pull`` copies one out; a shared drive or a synced folder makes it a
team registry.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from memlora_engine.errors import ConfigError
from memlora_engine.types import Operation

__all__ = ["ADAPTER_FILES", "AdapterCard", "pull_adapter", "push_adapter", "read_card", "save_adapter"]

ADAPTER_FILES = ("adapter_model.safetensors", "adapter_config.json")
CARD = "card.json"


@dataclass
class AdapterCard:
    """What ``card.json`` records."""

    operation: str
    base_model: str
    prompt_style: str
    prompt_version: str
    data: dict[str, Any] = field(default_factory=dict)
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    validation: dict[str, Any] = field(default_factory=dict)
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    notes: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AdapterCard:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def read_card(directory: str | Path) -> AdapterCard:
    """The card of an adapter directory.

    Raises:
        ConfigError: no ``card.json`` there.
    """
    path = Path(directory) / CARD
    if not path.exists():
        raise ConfigError(f"{directory} has no {CARD}")
    return AdapterCard.from_dict(json.loads(path.read_text(encoding="utf-8")))


def _check_adapter(directory: Path) -> None:
    missing = [name for name in ADAPTER_FILES if not (directory / name).exists()]
    if missing:
        raise ConfigError(f"{directory} is not a peft adapter directory (missing {', '.join(missing)})")


def save_adapter(source: str | Path, destination: str | Path, card: AdapterCard) -> Path:
    """Copy a trained adapter (``source``, e.g. a run's ``best/``) to ``destination`` with ``card``."""
    src, dest = Path(source), Path(destination)
    _check_adapter(src)
    Operation(card.operation)
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src / "adapter_model.safetensors", dest / "adapter_model.safetensors")
    # peft records the local path the base model was loaded from; name the model instead
    # (the path is machine-specific and not used when loading onto a given model).
    peft_config = json.loads((src / "adapter_config.json").read_text(encoding="utf-8"))
    peft_config["base_model_name_or_path"] = card.base_model
    (dest / "adapter_config.json").write_text(json.dumps(peft_config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (dest / CARD).write_text(json.dumps(card.to_dict(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return dest


def _registry_path(registry: str | Path, model: str, operation: str) -> Path:
    return Path(registry) / model.replace("/", "--") / Operation(operation).value


def push_adapter(adapter_dir: str | Path, registry: str | Path) -> Path:
    """Copy an adapter directory (with its card) into ``registry`` under its model and operation."""
    src = Path(adapter_dir)
    _check_adapter(src)
    card = read_card(src)
    return save_adapter(src, _registry_path(registry, card.base_model, card.operation), card)


def pull_adapter(registry: str | Path, model: str, operation: str, destination: str | Path) -> Path:
    """Copy ``registry``'s adapter for ``model``/``operation`` to ``destination``."""
    src = _registry_path(registry, model, operation)
    if not src.is_dir():
        raise ConfigError(f"no {operation} adapter for {model} in {registry}")
    return save_adapter(src, destination, read_card(src))

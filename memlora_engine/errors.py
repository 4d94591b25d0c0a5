"""Errors raised by MemLoRA.

Hierarchy::

    MemLoRAError
    ├── ConfigError(MemLoRAError, ValueError)      a setting or argument is wrong
    ├── ScopeError(MemLoRAError, ValueError)       missing or malformed user/agent/run id
    ├── InvalidInputError(MemLoRAError, ValueError)  messages or arguments of the wrong shape
    │   ├── FilterError(InvalidInputError)         a metadata filter cannot be translated (or is too large)
    │   └── MetadataError(InvalidInputError)       metadata that cannot be stored (or too many keys)
    ├── MemoryNotFoundError(MemLoRAError, KeyError)  no memory with that id in that scope
    ├── ModelOutputError(MemLoRAError, ValueError)   the model produced unusable output (keeps ``raw``)
    ├── StorageError(MemLoRAError, RuntimeError)     the vector store or history failed
    ├── GeneratorError(MemLoRAError, RuntimeError)   the model backend failed or is missing
    └── MissingDependencyError(MemLoRAError, ImportError)  an optional extra is not installed

Third-party exceptions (chromadb, sqlite3, transformers) are mapped once, where
the engine calls them, and chained with ``raise ... from exc``.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "FilterError",
    "GeneratorError",
    "InvalidInputError",
    "MemLoRAError",
    "MemoryNotFoundError",
    "MetadataError",
    "MissingDependencyError",
    "ModelOutputError",
    "ScopeError",
    "StorageError",
]


class MemLoRAError(Exception):
    """Base class of every error MemLoRA raises on purpose."""


class ConfigError(MemLoRAError, ValueError):
    """A configuration value or argument is invalid."""


class ScopeError(MemLoRAError, ValueError):
    """No scope id was given, or one is malformed."""


class InvalidInputError(MemLoRAError, ValueError):
    """Messages or arguments of the wrong shape."""


class FilterError(InvalidInputError):
    """A metadata filter is malformed."""


class MetadataError(InvalidInputError):
    """Metadata that cannot be stored (nested values, reserved keys, ...)."""


class MemoryNotFoundError(MemLoRAError, KeyError):
    """No memory with that id exists in the given scope."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else "memory not found"


class ModelOutputError(MemLoRAError, ValueError):
    """The model's output could not be parsed into the expected JSON.

    ``raw`` keeps the full text the model produced, for inspection and counting.
    """

    def __init__(self, message: str, *, raw: str, operation: str | None = None) -> None:
        super().__init__(message)
        self.raw = raw
        self.operation = operation


class StorageError(MemLoRAError, RuntimeError):
    """The vector store or the history database failed."""


class GeneratorError(MemLoRAError, RuntimeError):
    """The model backend failed or none is configured."""


class MissingDependencyError(MemLoRAError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"{package} is required for this feature: pip install \"memlora[{extra}]\""
        )
        self.package = package
        self.extra = extra


def require(module: str, extra: str):  # type: ignore[no-untyped-def]
    """Import an optional module or raise ``MissingDependencyError`` naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(module.split(".")[0], extra) from exc

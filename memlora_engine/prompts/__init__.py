"""Prompts are package data, rendered at call time.

Adapters are trained on the exact prompt text, so the prompt files are versioned
with them: :data:`PROMPT_VERSION` is a hash of every template, recorded in adapter
cards. Two styles ship:

* ``"memlora"`` -- the short prompts the expert adapters are trained on;
* ``"mem0"`` -- Mem0's long prompts (Apache-2.0, see ``mem0/NOTICE``), the paper's
  baseline for a base model without adapters.

The ``vqa`` operation (MemLoRA-V) has one prompt, in the ``memlora`` style (Mem0 has
none); it is versioned by :data:`VQA_PROMPT_VERSION`, apart from the text operations'
:data:`PROMPT_VERSION`, so adding it left the text adapters' cards valid.

Templates use ``string.Template`` placeholders (``$date``, ``$conversation``, ...),
so JSON braces in the text need no escaping. The date is always injected by the
caller; nothing is frozen at import time.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources
from string import Template
from typing import Literal

from memlora_engine.errors import ConfigError
from memlora_engine.types import Operation

__all__ = [
    "PROMPT_STYLES",
    "PROMPT_VERSION",
    "VQA_PROMPT_VERSION",
    "PromptStyle",
    "prompt_version",
    "render_prompt",
    "template_text",
]

PromptStyle = Literal["memlora", "mem0"]
PROMPT_STYLES: tuple[str, ...] = ("memlora", "mem0")


@cache
def template_text(style: str, operation: Operation, part: str) -> str:
    """The raw template text of ``style/operation.part.txt`` (part: system or user)."""
    if style not in PROMPT_STYLES:
        raise ConfigError(f"unknown prompt style {style!r}; choose one of {PROMPT_STYLES}")
    name = f"{Operation(operation).value}.{part}.txt"
    try:
        return resources.files(__package__).joinpath(style, name).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"prompt style {style!r} has no {name}") from exc


def render_prompt(style: str, operation: Operation, **values: str) -> list[dict[str, str]]:
    """Render a prompt as chat messages (a system message, then the user message).

    Every placeholder must be given; a missing one raises ``ConfigError``.
    """
    messages = []
    for part in ("system", "user"):
        try:
            content = Template(template_text(style, operation, part)).substitute(values)
        except KeyError as exc:
            raise ConfigError(f"prompt {style}/{operation.value}.{part} needs {exc}") from exc
        messages.append({"role": part, "content": content.strip("\n")})
    return messages


def _version(styles: tuple[str, ...], operations: tuple[Operation, ...]) -> str:
    digest = hashlib.sha256()
    for style in styles:
        for op in operations:
            for part in ("system", "user"):
                digest.update(template_text(style, op, part).encode("utf-8"))
    return digest.hexdigest()[:12]


def prompt_version(operation: Operation | str) -> str:
    """The prompt version an adapter of ``operation`` is valid for (recorded in its card).

    The text operations share :data:`PROMPT_VERSION` (every style); an operation
    versioned apart (``own_prompt_version`` in the registry: ``vqa``) hashes its own
    prompts alone, so adding it left the others' cards valid.
    """
    # The registry imports this module: read it at call time.
    from memlora_engine.operations import OPERATIONS, operation_spec

    spec = operation_spec(operation)
    if spec.own_prompt_version:
        return _version(spec.styles, (spec.operation,))
    return _version(PROMPT_STYLES, tuple(op for op, s in OPERATIONS.items() if not s.own_prompt_version))


def __getattr__(name: str) -> str:
    # Computed lazily so importing the package reads no files.
    if name == "PROMPT_VERSION":
        return prompt_version(Operation.EXTRACTION)  # any text operation: they share it
    if name == "VQA_PROMPT_VERSION":
        return prompt_version(Operation.VQA)
    raise AttributeError(name)

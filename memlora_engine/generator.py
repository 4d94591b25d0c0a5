"""The seam between the engine and a language model.

Anything with a ``generate(request) -> Generation`` method is a generator: the
on-device transformers + peft backbone, a remote teacher, or the scripted fake
in :mod:`memlora_engine.testing`. The request names the *operation* so a
backbone can activate that operation's LoRA adapter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from memlora_engine.types import Operation

__all__ = ["ChatMessage", "Generation", "GenerationRequest", "Generator"]

ChatMessage = dict[str, Any]
"""``{"role": "system" | "user" | "assistant", "content": str}``."""


@dataclass(frozen=True)
class GenerationRequest:
    """One model call.

    Attributes:
        operation: which pipeline operation this is (selects the adapter).
        messages: the rendered prompt as chat messages.
        json_schema: when set, the output must be JSON valid under this schema;
            a backbone that supports constrained decoding enforces it.
        max_new_tokens: upper bound on generated tokens.
        images: PIL images the model must see with the prompt (a backbone with
            ``supports_images = True`` puts them before the text of the last user
            message); the engine only sends them to such a backbone.
    """

    operation: Operation
    messages: list[ChatMessage]
    json_schema: dict[str, Any] | None = None
    max_new_tokens: int = 256
    images: tuple[Any, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Generation:
    """A model's answer with its token counts (for the per-operation stats)."""

    text: str
    input_tokens: int = 0
    output_tokens: int = 0


@runtime_checkable
class Generator(Protocol):
    """What the engine needs from a model backend."""

    def generate(self, request: GenerationRequest) -> Generation:
        """Run one call and return the generated text."""
        ...

    def has_adapter(self, operation: Operation) -> bool:
        """True when ``operation`` runs on its own trained adapter.

        The engine uses the configured prompt style for adapter operations and the
        fallback style (Mem0's long prompts by default) for base-model operations.
        """
        ...

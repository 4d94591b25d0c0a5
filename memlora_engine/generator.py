"""The seam between the engine and a language model.

Anything with a ``generate(request) -> Generation`` method is a generator: the
on-device transformers + peft backbone, a remote teacher, or the scripted fake
in :mod:`memlora_engine.testing`. The request names the *operation* so a
backbone can activate that operation's LoRA adapter.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from memlora_engine.types import Operation

__all__ = [
    "ChatMessage",
    "Generation",
    "GenerationRequest",
    "Generator",
    "SupportsAdapters",
    "SupportsAsyncGeneration",
    "SupportsBatchGeneration",
    "SupportsContextLength",
    "SupportsImages",
    "SupportsJsonSchema",
    "SupportsStreaming",
    "SupportsTokenCount",
]

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
            ``supports_images = True``, see :class:`SupportsImages`, puts them before
            the text of the last user message); the engine only sends them to such a backbone.
        use_adapter: False runs the base model even when ``operation`` has an adapter
            (a server's base-model name, see :mod:`memlora_engine.serving`); the operation
            then only labels the call.
    """

    operation: Operation
    messages: list[ChatMessage]
    json_schema: dict[str, Any] | None = None
    max_new_tokens: int = 256
    images: tuple[Any, ...] = ()
    use_adapter: bool = True
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Generation:
    """A model's answer with its token counts (for the per-operation stats)."""

    text: str
    input_tokens: int = 0
    output_tokens: int = 0


@runtime_checkable
class Generator(Protocol):
    """What the engine needs from a model backend: one call in, its text out.

    What a generator can do beyond that it declares with the capability protocols
    below (subclassing them, or having their members); the engine, the evaluation
    and the integrations check them with ``isinstance``.
    """

    def generate(self, request: GenerationRequest) -> Generation:
        """Run one call and return the generated text."""
        ...


@runtime_checkable
class SupportsAdapters(Protocol):
    """A generator with per-operation trained adapters.

    Without this capability every operation counts as running on the base model.
    """

    def has_adapter(self, operation: Operation) -> bool:
        """True when ``operation`` runs on its own trained adapter.

        The engine uses the configured prompt style for adapter operations and the
        fallback style (Mem0's long prompts by default) for base-model operations
        (see :meth:`~memlora_engine.operations.OperationSpec.prompt_style`).
        """
        ...


@runtime_checkable
class SupportsAsyncGeneration(Protocol):
    """A generator with a native coroutine (a remote server): awaiting it does not block the event loop.

    Generators without it are called from async code in a worker thread
    (``asyncio.to_thread(generator.generate, request)``).
    """

    async def agenerate(self, request: GenerationRequest) -> Generation:
        """Run one call without blocking the running event loop."""
        ...


@runtime_checkable
class SupportsBatchGeneration(Protocol):
    """A generator that may decode several requests in one batch; ``supports_batch_generation`` says whether this one does.

    Each output of :meth:`generate_batch` is the one :meth:`~Generator.generate` gives for
    that request alone (greedy decoding). The engine batches the update step's per-fact
    calls through it (:func:`~memlora_engine.steps.decide_updates`).
    """

    @property
    def supports_batch_generation(self) -> bool:
        """True when :meth:`generate_batch` runs the requests together."""
        ...

    def generate_batch(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """Run ``requests`` (of one operation) and return their outputs in order."""
        ...


@runtime_checkable
class SupportsImages(Protocol):
    """A generator that may take images; ``supports_images`` says whether this one does.

    Only when it is True does the engine send pixels (extraction and ``vqa``) and route
    image questions to ``vqa``; a generator without the capability is text-only.
    """

    @property
    def supports_images(self) -> bool:
        """True for a vision-language model."""
        ...


@runtime_checkable
class SupportsJsonSchema(Protocol):
    """A generator that may decode under ``request.json_schema``; ``supports_json_schema`` says whether this one does.

    When it is True, every output of a request that carries a schema is valid JSON
    under it (unless cut off by ``max_new_tokens``). Tool calling
    (:mod:`memlora_engine.tool_calls`) relies on it; the engine's own operations send
    their schema either way.
    """

    @property
    def supports_json_schema(self) -> bool:
        """True when outputs are constrained to the request's JSON schema."""
        ...


@runtime_checkable
class SupportsTokenCount(Protocol):
    """A generator that counts tokens with its own tokenizer."""

    def count_tokens(self, text: str) -> int:
        """Number of tokens ``text`` encodes to (no special tokens)."""
        ...


@runtime_checkable
class SupportsContextLength(Protocol):
    """A generator that knows how many tokens one call may hold, its prompt and output together."""

    @property
    def context_length(self) -> int:
        """The most tokens one call's prompt and output may hold."""
        ...


@runtime_checkable
class SupportsStreaming(Protocol):
    """A generator that yields its text in chunks as it is decoded."""

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        """Yield the generated text of ``request`` piece by piece.

        A generator function may end with ``return Generation(...)`` (the whole text
        and its token counts) when it runs to the end; callers that read it (such as
        ``ChatMemLoRA``'s usage metadata) take it with ``yield from``.
        """
        ...

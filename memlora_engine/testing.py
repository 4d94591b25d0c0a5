"""Fakes for tests, docs and demos: a scripted generator and a deterministic embedder.

Production code never imports this module; the embedder is the library's
:class:`~memlora_engine.embeddings.hashing.HashingEmbedder`, re-exported here as
``DeterministicEmbedder``.

They stand in for the parts *around* the unit under test (the model, the embedding
model); the engine, Chroma and the history run for real. :class:`InMemoryStore`
(from :mod:`memlora_engine.store.in_memory`) stands in for Chroma where the store
is not under test.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from memlora_engine.embeddings.hashing import HashingEmbedder
from memlora_engine.errors import GeneratorError
from memlora_engine.generator import (
    Generation,
    GenerationRequest,
    SupportsAdapters,
    SupportsContextLength,
    SupportsImages,
    SupportsJsonSchema,
)
from memlora_engine.store.in_memory import InMemoryStore
from memlora_engine.types import Operation

__all__ = ["ContextLengthGenerator", "DeterministicEmbedder", "InMemoryStore", "ScriptedGenerator"]

Response = str | Callable[[GenerationRequest], str]


class ScriptedGenerator(SupportsAdapters, SupportsImages, SupportsJsonSchema):
    """Answers each operation from a script.

    Args:
        script: per operation, either a list of outputs returned in order (the last
            one repeats once the list is used up, unless ``strict``), or a function
            of the request.
        adapters: operations reported as having a trained adapter (all by default),
            which decides the prompt style the engine renders.
        strict: raise instead of repeating the last output.
        supports_images: act as a vision model (the engine then sends images with
            extraction and routes image questions to ``vqa``); the images a request
            carried are in ``calls[i].images``.
        supports_json_schema: act as a backbone with constrained decoding (the default,
            like ``HFBackbone``), which tool calling needs; the script is trusted to
            answer requests that carry a ``json_schema`` with JSON valid under it.

    ``calls`` keeps every request, for assertions on prompts.
    """

    supports_images: bool = False
    supports_json_schema: bool = True

    def __init__(
        self,
        script: Mapping[str | Operation, Sequence[str] | Callable[[GenerationRequest], str]] | None = None,
        *,
        adapters: Iterable[str | Operation] | None = None,
        strict: bool = False,
        supports_images: bool = False,
        supports_json_schema: bool = True,
    ) -> None:
        self._script = {Operation(k): (v if callable(v) else list(v)) for k, v in (script or {}).items()}
        self._positions = {op: 0 for op in self._script}
        self._adapters = set(Operation) if adapters is None else {Operation(a) for a in adapters}
        self._strict = strict
        self.supports_images = supports_images
        self.supports_json_schema = supports_json_schema
        self._lock = threading.Lock()
        self.calls: list[GenerationRequest] = []

    def has_adapter(self, operation: Operation) -> bool:
        return Operation(operation) in self._adapters

    def generate(self, request: GenerationRequest) -> Generation:
        with self._lock:
            self.calls.append(request)
            entry = self._script.get(request.operation)
            if entry is None:
                raise GeneratorError(f"ScriptedGenerator has no script for {request.operation.value!r}")
            if callable(entry):
                text = entry(request)
            else:
                position = self._positions[request.operation]
                if position >= len(entry) and (self._strict or not entry):
                    raise GeneratorError(f"ScriptedGenerator script for {request.operation.value!r} is used up")
                text = entry[min(position, len(entry) - 1)]
                self._positions[request.operation] = position + 1
        prompt_words = sum(len(str(m.get("content", "")).split()) for m in request.messages)
        return Generation(text=text, input_tokens=prompt_words, output_tokens=len(text.split()))


class ContextLengthGenerator(ScriptedGenerator, SupportsContextLength):
    """A :class:`ScriptedGenerator` that declares how many tokens one call may hold, as the backbones do.

    A separate class because the capability is declared by having ``context_length``: a plain
    ``ScriptedGenerator`` stands for a generator that does not say (a remote server).
    """

    def __init__(self, script: Mapping[str | Operation, Sequence[str] | Callable[[GenerationRequest], str]] | None = None,
                 *, context_length: int = 8192, **options: Any) -> None:
        super().__init__(script, **options)  # adapters, strict, supports_images, ...
        self._context_length = context_length

    @property
    def context_length(self) -> int:
        return self._context_length


DeterministicEmbedder = HashingEmbedder
"""The fast offline :class:`~memlora_engine.embeddings.hashing.HashingEmbedder` (the same class, under its test name)."""

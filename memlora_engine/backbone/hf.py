"""The on-device backbone: one transformers model, one peft LoRA adapter per operation.

All adapters sit in a single :class:`peft.PeftModel`; a call activates its
operation's adapter (a pointer swap: no merging, no weight copies, no module walk; see
:mod:`memlora_engine.backbone._switch`) inside :meth:`HFBackbone.operation` and
restores the previous one in ``finally``. An operation without an adapter runs the
base model with the adapters switched off, and :meth:`HFBackbone.has_adapter` says so,
which makes the engine choose its base-model prompt style.

With ``vocabulary="latin"`` the output head computes only the rows of the tokens the
experts can write (:mod:`memlora_engine.backbone._vocab`), swapped in for the duration
of a call, so the model seen outside a call (e.g. by training) keeps its full head.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from memlora_engine.backbone._prefix import PrefixCache, common_length
from memlora_engine.backbone._render import render_messages
from memlora_engine.backbone._switch import AdapterSwitch
from memlora_engine.backbone._vocab import VOCABULARIES, latin_token_ids, reduced_head
from memlora_engine.backbone.constrained import JsonConstraint
from memlora_engine.errors import ConfigError, GeneratorError, require
from memlora_engine.generator import (
    Generation,
    GenerationRequest,
    SupportsAdapters,
    SupportsBatchGeneration,
    SupportsContextLength,
    SupportsJsonSchema,
    SupportsStreaming,
    SupportsTokenCount,
)
from memlora_engine.types import Operation

__all__ = ["HFBackbone"]

logger = logging.getLogger(__name__)

AdapterSource = str | os.PathLike[str]


class HFBackbone(SupportsAdapters, SupportsJsonSchema, SupportsTokenCount, SupportsContextLength, SupportsStreaming,
                 SupportsBatchGeneration):
    """A :class:`~memlora_engine.generator.Generator` on a local transformers model.

    It has per-operation adapters, decodes under a request's JSON schema (when
    ``constrained``), counts tokens with its tokenizer and streams (the capability
    protocols of :mod:`memlora_engine.generator`).

    Args:
        model: a ``PreTrainedModel`` (causal LM), already on its device and dtype.
        tokenizer: its tokenizer (fast, for constrained decoding).
        adapters: LoRA adapter per operation: a local directory or a hub id. Operations
            left out run the base model.
        constrained: decode requests that carry a ``json_schema`` under that schema.
        name: a label for logs and benchmarks.
        vocabulary: ``"full"`` (default) or ``"latin"``: the tokens the output head
            computes (see :mod:`memlora_engine.backbone._vocab`; ``load_backbone``
            defaults to ``"latin"``).
        cache_dir: where the constrained-decoding tokenizer index is cached across
            processes; None (default) keeps it in memory only.
        prefix_cache: reuse the keys and values of prompt prefixes shared between calls of
            one adapter (the operation's system prompt, the update calls' old memories),
            so a call prefills only its new tail (:mod:`memlora_engine.backbone._prefix`).
            Off by default: the same greedy tokens in float32 (tests), but in bfloat16 the
            split prefill rounds differently and gemma-3-270m's greedy output changed on 1
            of 5 conv-26 calls (docs/backbone.md).
        batch_generation: :meth:`generate_batch` decodes its requests in one padded batch
            (else one by one): -47 % CPU seconds per per-fact update call on gemma-3-270m
            (docs/backbone.md); off by default until its bfloat16 outputs are checked equal
            on many more calls than measured so far.

    Thread-safe: calls are serialised by a lock (one model, one set of adapter switches).

    Example:
        >>> from memlora_engine.backbone import load_backbone  # doctest: +SKIP
        >>> backbone = load_backbone("gemma-3-270m")  # doctest: +SKIP
        >>> memory = Memory(generator=backbone)  # doctest: +SKIP
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        adapters: Mapping[str | Operation, AdapterSource] | None = None,
        constrained: bool = True,
        name: str | None = None,
        vocabulary: str = "full",
        cache_dir: str | os.PathLike[str] | None = None,
        prefix_cache: bool = False,
        batch_generation: bool = False,
    ) -> None:
        if vocabulary not in VOCABULARIES:
            raise ConfigError(f"vocabulary must be one of {VOCABULARIES}, got {vocabulary!r}")
        self.model = model
        self.tokenizer = tokenizer
        self.constrained = constrained
        self.name = name or getattr(getattr(model, "config", None), "name_or_path", None) or type(model).__name__
        self._lock = threading.RLock()
        self._adapters: dict[Operation, str] = {}
        eos = tokenizer.eos_token_id
        if eos is None:
            raise ConfigError(f"tokenizer of {self.name} has no eos token")
        self._eos_ids = sorted({int(eos), *_ids(getattr(model.generation_config, "eos_token_id", None))})
        pad = tokenizer.pad_token_id
        self._pad_id = int(pad) if pad is not None else int(eos)
        self._constraint = JsonConstraint(
            tokenizer, int(eos), cache_dir=Path(cache_dir) if cache_dir is not None else None
        )
        self.vocabulary = vocabulary
        self._kept_ids: list[int] | None = None
        self._head: tuple[tuple[Any, ...], Any] | None = None  # (full head's identity, reduced head)
        self._switch: AdapterSwitch | None = None
        self.prefix_cache: PrefixCache | None = PrefixCache() if prefix_cache else None
        self.batch_generation = batch_generation
        for operation, source in (adapters or {}).items():
            self.add_adapter(operation, source)
        self.model.eval()

    # -- adapters ---------------------------------------------------------------------------
    @property
    def adapters(self) -> dict[Operation, str]:
        """Operation -> peft adapter name, for the operations that have one."""
        return dict(self._adapters)

    def add_adapter(self, operation: str | Operation, source: AdapterSource) -> None:
        """Load a LoRA adapter for ``operation`` (frozen, not activated)."""
        op = Operation(operation)
        peft = require("peft", "hf")
        path = os.fspath(source)
        # Not the bare operation name: peft keeps adapters in ModuleDicts, where "update"
        # would clash with ModuleDict.update.
        name = f"memlora_{op.value}"
        with self._lock:
            try:
                if isinstance(self.model, peft.PeftModel):
                    if name in self.model.peft_config:
                        self.model.delete_adapter(name)
                    self.model.load_adapter(path, adapter_name=name, is_trainable=False)
                else:
                    self.model = peft.PeftModel.from_pretrained(self.model, path, adapter_name=name, is_trainable=False)
            except (OSError, ValueError, KeyError, RuntimeError) as exc:
                raise ConfigError(f"cannot load the {op.value} adapter from {path!r}: {exc}") from exc
            self.model.eval()
            self._adapters[op] = name
            self._switch = AdapterSwitch(self.model)
            if self.prefix_cache is not None:  # states computed with the old weights
                self.prefix_cache.clear()
        logger.info("loaded %s adapter from %s", op.value, path)

    def has_adapter(self, operation: Operation) -> bool:
        """True when ``operation`` runs on its own adapter (else: the base model)."""
        return Operation(operation) in self._adapters

    @property
    def supports_json_schema(self) -> bool:
        """True when requests with a ``json_schema`` are decoded under it (``constrained``)."""
        return self.constrained

    @property
    def supports_batch_generation(self) -> bool:
        """True when :meth:`generate_batch` runs its requests in one batch (``batch_generation``)."""
        return self.batch_generation

    @contextmanager
    def operation(self, operation: str | Operation, *, use_adapter: bool = True) -> Iterator[Any]:
        """Activate ``operation``'s adapter (or switch adapters off) for inference; restore on exit.

        ``use_adapter=False`` runs the base model whatever the operation.
        Yields the model to call. Holds the backbone lock for the duration.
        """
        torch = require("torch", "hf")
        op = Operation(operation)
        with self._lock, torch.inference_mode(), self._output_head():
            switch = self._switch
            if switch is None:  # no adapter loaded: the plain model
                yield self.model
                return
            previous = switch.state()
            adapter = self._adapters.get(op) if use_adapter else None
            if adapter is None:
                switch.disable()
            elif previous != (adapter, False):
                switch.activate(adapter)
            else:  # already active: nothing to switch or restore
                yield self.model
                return
            try:
                yield self.model
            finally:
                switch.restore(previous)

    @contextmanager
    def _output_head(self) -> Iterator[None]:
        """Swap the reduced output head in for one call (no-op for ``vocabulary="full"``)."""
        if self.vocabulary == "full":
            yield
            return
        causal_lm = self.model.get_base_model() if self._switch is not None else self.model
        full = causal_lm.get_output_embeddings()
        causal_lm.set_output_embeddings(self._reduced_head(full))
        try:
            yield
        finally:
            causal_lm.set_output_embeddings(full)

    def _reduced_head(self, full: Any) -> Any:
        # Rebuilt when the head's storage, dtype or device changes (e.g. model.to(dtype)).
        identity = (full.weight.data_ptr(), full.weight.dtype, full.weight.device)
        if self._head is None or self._head[0] != identity:
            if self._kept_ids is None:
                table = self._constraint.token_table()
                self._kept_ids = latin_token_ids(table.tokens, table.special_ids, self._eos_ids)
                logger.info("%s: output head reduced to %d of %d tokens", self.name, len(self._kept_ids), len(table.tokens))
            self._head = (identity, reduced_head(full, self._kept_ids))
        return self._head[1]

    # -- tokens -----------------------------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        """Number of tokens ``text`` encodes to (no special tokens)."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    @property
    def context_length(self) -> int:
        """The language model's ``max_position_embeddings`` (a vision-language model's text config's)."""
        return int(self.model.config.get_text_config().max_position_embeddings)

    def _encode(self, request: GenerationRequest) -> Any:
        text, templated = render_messages(self.tokenizer, request.messages)
        return self.tokenizer(text, return_tensors="pt", add_special_tokens=not templated)

    def _adapter_key(self, request: GenerationRequest) -> str | None:
        """The adapter :meth:`operation` runs ``request`` with (None: the base model)."""
        if self._switch is None or not request.use_adapter:
            return None
        return self._adapters.get(Operation(request.operation))

    def _cached_prefix(self, model: Any, request: GenerationRequest, inputs: Any) -> dict[str, Any]:
        """``cache`` (``generate``'s keyword) holding the longest cached prefix of the prompt (inside :meth:`operation`)."""
        if self.prefix_cache is None:
            return {}
        past = self.prefix_cache.past_for(model, self._adapter_key(request), inputs["input_ids"][0].tolist())
        return {} if past is None else {"cache": past}

    def _generate_kwargs(self, request: GenerationRequest, inputs: Any) -> dict[str, Any]:
        transformers = require("transformers", "hf")
        prompt_length = int(inputs["input_ids"].shape[1])
        processors = transformers.LogitsProcessorList()
        if request.json_schema is not None and self.constrained:
            processors.append(self._constraint.processor(request.json_schema, prompt_length))
        return {**inputs, "generation_config": self._greedy_config(request.max_new_tokens), "logits_processor": processors}

    def _greedy_config(self, max_new_tokens: int) -> Any:
        """The ``GenerationConfig`` of every call: greedy, stopping at the model's eos tokens."""
        transformers = require("transformers", "hf")
        return transformers.GenerationConfig(
            max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=self._eos_ids, pad_token_id=self._pad_id,
        )

    # -- generation -------------------------------------------------------------------------
    def generate(self, request: GenerationRequest) -> Generation:
        """Greedy-decode one request with its operation's adapter (see :meth:`operation`)."""
        inputs = self._encode(request)
        prompt_length = int(inputs["input_ids"].shape[1])
        kwargs = self._generate_kwargs(request, inputs)
        try:
            with self.operation(request.operation, use_adapter=request.use_adapter) as model:
                output = model.generate(**kwargs, **self._cached_prefix(model, request, inputs))
        except (RuntimeError, ValueError, IndexError) as exc:
            raise GeneratorError(f"{self.name} failed on {request.operation.value}: {exc}") from exc
        new_tokens = output[0, prompt_length:]
        text = self.tokenizer.decode(new_tokens, skip_special_tokens=True)
        return Generation(text=text, input_tokens=prompt_length, output_tokens=int(new_tokens.shape[0]))

    def generate_batch(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """Greedy-decode ``requests`` of one operation together; each output is :meth:`generate`'s for it.

        The rows share their common prompt prefix (from the prefix cache when it is on:
        its states are computed once for the batch) and are padded between that prefix and
        their own tails; each row has its own JSON matcher and stops at its own eos. A row
        that outgrew the model's sliding attention window (where padding would shift what
        the window sees) is decoded again alone. Requests of several operations, or
        ``batch_generation=False``, run one by one.
        """
        requests = list(requests)
        if (not self.batch_generation or len(requests) < 2
                or len({(Operation(r.operation), r.use_adapter) for r in requests}) > 1):
            return [self.generate(r) for r in requests]
        torch = require("torch", "hf")
        transformers = require("transformers", "hf")
        first = requests[0]
        prompts = [self._encode(r)["input_ids"][0].tolist() for r in requests]
        schemas = [r.json_schema if self.constrained else None for r in requests]
        try:
            with self.operation(first.operation, use_adapter=first.use_adapter) as model:
                shared, past = 0, None
                if self.prefix_cache is not None:
                    common = min(min(common_length(prompts[0], p) for p in prompts), min(map(len, prompts)) - 1)
                    shared, past = self.prefix_cache.shared_past(model, self._adapter_key(first), prompts[0][:common])
                width = max(len(p) for p in prompts) - shared
                rows, mask = [], []
                for prompt in prompts:
                    padding = width - (len(prompt) - shared)
                    rows.append(prompt[:shared] + [self._pad_id] * padding + prompt[shared:])
                    mask.append([1] * shared + [0] * padding + [1] * (len(prompt) - shared))
                if past is not None:
                    past.batch_repeat_interleave(len(rows))
                device = next(model.parameters()).device
                processors = transformers.LogitsProcessorList()
                if any(schema is not None for schema in schemas):
                    processors.append(self._constraint.batch_processor(schemas, shared + width, self._eos_ids))
                output = model.generate(
                    input_ids=torch.tensor(rows, device=device), attention_mask=torch.tensor(mask, device=device),
                    generation_config=self._greedy_config(max(r.max_new_tokens for r in requests)),
                    logits_processor=processors,
                    **({} if past is None else {"cache": past}),
                )
        except (RuntimeError, ValueError, IndexError) as exc:
            raise GeneratorError(f"{self.name} failed on a batch of {first.operation.value}: {exc}") from exc
        window = self._sliding_window()
        results = []
        for row, (request, prompt) in enumerate(zip(requests, prompts, strict=True)):
            tokens = output[row, shared + width:].tolist()
            end = next((i + 1 for i, t in enumerate(tokens) if t in self._eos_ids), len(tokens))
            tokens = tokens[: min(end, request.max_new_tokens)]
            if window is not None and shared + width + len(tokens) > window - 1:
                results.append(self.generate(request))  # the padded row's window saw other tokens
                continue
            text = self.tokenizer.decode(tokens, skip_special_tokens=True)
            results.append(Generation(text=text, input_tokens=len(prompt), output_tokens=len(tokens)))
        return results

    def _sliding_window(self) -> int | None:
        config = self.model.config.get_text_config(decoder=True)
        window = getattr(config, "sliding_window", None)  # an optional field of the model's config
        layer_types = getattr(config, "layer_types", None) or ()
        if window is None or (layer_types and "sliding_attention" not in layer_types):
            return None
        return int(window)

    def stream(self, request: GenerationRequest) -> Generator[str, None, Generation]:
        """Yield the generated text in chunks as it is decoded.

        Generation runs in a worker thread (holding the lock and the adapter scope);
        closing the iterator early stops it at the next token. Run to the end, the
        generator returns the whole :class:`Generation` with its token counts.
        """
        transformers = require("transformers", "hf")
        inputs = self._encode(request)
        prompt_length = int(inputs["input_ids"].shape[1])
        kwargs = self._generate_kwargs(request, inputs)
        streamer = transformers.TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        stop = threading.Event()
        errors: list[BaseException] = []
        outputs: list[Any] = []

        class _Stop(transformers.StoppingCriteria):  # type: ignore[name-defined]
            def __call__(self, input_ids: Any, scores: Any, **_: Any) -> bool:
                return stop.is_set()

        def work() -> None:
            try:
                with self.operation(request.operation, use_adapter=request.use_adapter) as model:
                    outputs.append(model.generate(
                        **kwargs, **self._cached_prefix(model, request, inputs), streamer=streamer,
                        stopping_criteria=transformers.StoppingCriteriaList([_Stop()]),
                    ))
            except BaseException as exc:  # re-raised in the consumer thread
                errors.append(exc)
                streamer.end()

        worker = threading.Thread(target=work, name="memlora-stream", daemon=True)
        worker.start()
        pieces = []
        try:
            for chunk in streamer:
                if chunk:
                    pieces.append(chunk)
                    yield chunk
        finally:
            stop.set()
            worker.join()
        if errors:
            raise GeneratorError(f"{self.name} failed on {request.operation.value}: {errors[0]}") from errors[0]
        output_tokens = int(outputs[0].shape[1]) - prompt_length
        return Generation(text="".join(pieces), input_tokens=prompt_length, output_tokens=output_tokens)

    # -- info -------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """Name, dtype, parameter count and adapters, for logs and the CLI."""
        params = sum(p.numel() for p in self.model.parameters())
        return {
            "name": self.name,
            "dtype": str(getattr(self.model, "dtype", "?")).replace("torch.", ""),
            "parameters": params,
            "adapters": {op.value: name for op, name in self._adapters.items()},
            "constrained": self.constrained,
            "chat_template": bool(getattr(self.tokenizer, "chat_template", None)),
        }

    def __repr__(self) -> str:
        adapters = ",".join(op.value for op in self._adapters) or "none"
        return f"HFBackbone({self.name!r}, adapters={adapters}, constrained={self.constrained})"


def _ids(value: Any) -> list[int]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [int(v) for v in value]
    return [int(value)]

"""The llama.cpp runtime: the shipped GGUF as it is, one GGUF LoRA adapter per operation.

:class:`LlamaCppBackbone` is the second runtime behind the engine's
:class:`~memlora_engine.generator.Generator` protocol (the first is
:class:`~memlora_engine.backbone.HFBackbone`, which training keeps using). It runs the
model's GGUF file through llama.cpp (``llama-cpp-python``) with its own quantisation
(Q4_K_M for gemma-3-270m) and does everything around the model as the transformers
runtime does, with the same code:

* prompts: :func:`~memlora_engine.backbone._render.render_messages` and the Hugging Face
  tokenizer the project builds from the same GGUF, so llama.cpp is fed the token ids the
  transformers runtime prefills (it never tokenises a prompt itself);
* adapters: the peft experts converted once to llama.cpp's GGUF LoRA format
  (:mod:`memlora_engine.backbone._gguf_cache`), all loaded at start, and switched per call
  with llama.cpp's adapter API (``llama_set_adapters_lora``) inside :meth:`operation`, which
  restores the previous adapter in ``finally``;
* decoding: greedy, the request's ``max_new_tokens``, the same stop tokens; a request's
  JSON schema applied to llama.cpp's logits by :class:`~memlora_engine.backbone.JsonConstraint`
  (llguidance), and ``vocabulary="latin"`` restricting the choice to the tokens the
  transformers runtime's reduced head computes;
* output: the tokenizer's ``decode(..., skip_special_tokens=True)``.

Install: ``pip install "memlora[llamacpp]"`` (``llama-cpp-python`` compiles from source).
"""

from __future__ import annotations

import ctypes
import logging
import os
import tempfile
import threading
from collections.abc import Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from memlora_engine.backbone._gguf_cache import gguf_lora
from memlora_engine.backbone._prefix import common_length
from memlora_engine.backbone._render import render_messages
from memlora_engine.backbone._vocab import VOCABULARIES, latin_token_ids
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

__all__ = ["LlamaCppBackbone"]

logger = logging.getLogger(__name__)

EXTRA = "llamacpp"


class LlamaCppBackbone(SupportsAdapters, SupportsJsonSchema, SupportsTokenCount, SupportsContextLength,
                       SupportsStreaming, SupportsBatchGeneration):
    """A :class:`~memlora_engine.generator.Generator` on llama.cpp.

    Args:
        model_path: the model's GGUF file.
        tokenizer: the Hugging Face tokenizer of the same vocabulary (it renders and encodes
            prompts, decodes outputs and indexes the vocabulary for llguidance).
        adapters: LoRA adapter per operation: a llama.cpp GGUF LoRA file, or a peft adapter
            directory (converted into ``cache_dir``, or into a temporary file without one).
            Operations left out run the base model.
        eos_token_ids: stop tokens besides the tokenizer's eos (the model's
            ``generation_config``; ``load_backbone`` passes them).
        constrained: decode requests that carry a ``json_schema`` under that schema.
        name: a label for logs and benchmarks.
        vocabulary: ``"full"`` (default) or ``"latin"``: the tokens greedy decoding may pick
            (see :mod:`memlora_engine.backbone._vocab`; ``load_backbone`` defaults to ``"latin"``,
            as for the transformers runtime, whose reduced head it then matches).
        cache_dir: the MemLoRA cache root: converted adapters go to ``gguf-lora/``, the
            constrained-decoding tokenizer index to ``token-index/``; None writes nothing there.
        num_threads: llama.cpp threads (prefill and decode); every usable core by default.
        n_ctx: the context length llama.cpp allocates (prompt + output of one call).
        reuse_prefix: keep the previous call's KV cache and, when the next call runs under the
            same adapter, prefill only the part of its prompt past the common prefix.

    Thread-safe: calls are serialised by a lock (one context, one set of adapters).

    Example:
        >>> from memlora_engine.backbone import load_backbone  # doctest: +SKIP
        >>> backbone = load_backbone("gemma-3-270m", runtime="llama.cpp")  # doctest: +SKIP
        >>> memory = Memory(generator=backbone)  # doctest: +SKIP
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        tokenizer: Any,
        *,
        adapters: Mapping[str | Operation, str | os.PathLike[str]] | None = None,
        eos_token_ids: Sequence[int] = (),
        constrained: bool = True,
        name: str | None = None,
        vocabulary: str = "full",
        cache_dir: str | os.PathLike[str] | None = None,
        num_threads: int | None = None,
        n_ctx: int = 8192,
        reuse_prefix: bool = True,
    ) -> None:
        llama_cpp = require("llama_cpp", EXTRA)
        if vocabulary not in VOCABULARIES:
            raise ConfigError(f"vocabulary must be one of {VOCABULARIES}, got {vocabulary!r}")
        eos = tokenizer.eos_token_id
        if eos is None:
            raise ConfigError(f"tokenizer of {model_path} has no eos token")
        from memlora_engine.backbone.loader import cpu_count

        self.model_path = Path(model_path)
        self.tokenizer = tokenizer
        self.constrained = constrained
        self.name = name or self.model_path.stem
        self.vocabulary = vocabulary
        self.num_threads = num_threads or cpu_count()
        self.reuse_prefix = reuse_prefix
        self._cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._eos_ids = sorted({int(eos), *(int(i) for i in eos_token_ids)})
        self._constraint = JsonConstraint(
            tokenizer, int(eos), cache_dir=self._cache_dir / "token-index" if self._cache_dir is not None else None
        )
        self._lock = threading.RLock()
        try:
            self._llm = llama_cpp.Llama(
                model_path=str(self.model_path), n_ctx=n_ctx, n_batch=512, n_threads=self.num_threads,
                n_threads_batch=self.num_threads, logits_all=False, verbose=False,
            )
        except ValueError as exc:  # llama-cpp-python's "Failed to load model from file"
            raise GeneratorError(f"llama.cpp cannot load {self.model_path}: {exc}") from exc
        self._n_vocab = int(self._llm.n_vocab())
        if self._n_vocab != len(tokenizer):
            raise ConfigError(
                f"{self.model_path.name} has {self._n_vocab} tokens but its tokenizer {len(tokenizer)}: "
                "they must be the same vocabulary"
            )
        self._kept: Any = None  # int64 array: the ids vocabulary="latin" may pick
        self._adapters: dict[Operation, tuple[Path, Any]] = {}  # op -> (source, llama_adapter_lora_p)
        self._active: Operation | None = None  # whose adapter llama.cpp applies now
        # what llama.cpp's KV cache holds after the last call: (the adapter applied, its token ids); None: unknown
        self._kv: tuple[Operation | None, list[int]] | None = None
        # the KV cache of the last prompt of each other adapter, parked when a call switched away from it:
        # adapter -> (its prompt's token ids, llama.cpp's serialised sequence state)
        self._parked: dict[Operation | None, tuple[list[int], Any]] = {}
        for operation, source in (adapters or {}).items():
            self.add_adapter(operation, source)

    # -- adapters ---------------------------------------------------------------------------
    @property
    def adapters(self) -> dict[Operation, Path]:
        """Operation -> the adapter loaded for it, as given (a GGUF LoRA file or a peft directory)."""
        return {op: path for op, (path, _) in self._adapters.items()}

    @property
    def active_adapter(self) -> Operation | None:
        """The operation whose adapter llama.cpp applies now (None: the base model)."""
        return self._active

    def add_adapter(self, operation: str | Operation, source: str | os.PathLike[str]) -> None:
        """Load ``operation``'s LoRA adapter (a GGUF LoRA file or a peft directory); not activated.

        A peft directory is converted to a GGUF LoRA file in ``cache_dir`` (once per content),
        or, without a cache, in a temporary directory removed after loading: llama.cpp copies
        the tensors when it loads them.
        """
        op = Operation(operation)
        path = Path(source)
        with self._lock:
            if path.is_file():
                handle = self._load_lora(op, path)
            elif path.is_dir() and self._cache_dir is not None:
                handle = self._load_lora(op, gguf_lora(path, self._cache_dir / "gguf-lora"))
            elif path.is_dir():
                with tempfile.TemporaryDirectory(prefix="memlora-lora-") as scratch:
                    handle = self._load_lora(op, gguf_lora(path, Path(scratch)))
            else:
                raise ConfigError(f"the {op.value} adapter {source!r} is neither a GGUF file nor a peft directory")
            if op in self._adapters:  # replaced: free the old one (switched off first if applied)
                if self._active == op:
                    self._apply(None)
                self._kv = None  # a prompt kept for reuse was computed under the old weights
                self._parked.pop(op, None)
                require("llama_cpp", EXTRA).llama_adapter_lora_free(self._adapters[op][1])
            self._adapters[op] = (path, handle)
        logger.info("loaded %s adapter from %s", op.value, source)

    def _load_lora(self, operation: Operation, gguf_file: Path) -> Any:
        llama_cpp = require("llama_cpp", EXTRA)
        with _llama_warnings_hidden():
            handle = llama_cpp.llama_adapter_lora_init(self._llm.model, str(gguf_file).encode())
        if not handle:
            raise ConfigError(f"llama.cpp cannot load the {operation.value} adapter {gguf_file} "
                              "(load it with llama_cpp's verbose logging for the reason)")
        return handle

    def has_adapter(self, operation: Operation) -> bool:
        """True when ``operation`` runs on its own adapter (else: the base model)."""
        return Operation(operation) in self._adapters

    @property
    def supports_json_schema(self) -> bool:
        """True when requests with a ``json_schema`` are decoded under it (``constrained``)."""
        return self.constrained

    @property
    def supports_batch_generation(self) -> bool:
        """False: :meth:`generate_batch` runs its requests one by one."""
        return False

    def _apply(self, operation: Operation | None) -> None:
        """Make llama.cpp apply ``operation``'s adapter (None: none) from the next decode on."""
        llama_cpp = require("llama_cpp", EXTRA)
        if operation is None:
            status = llama_cpp.llama_set_adapters_lora(self._llm.ctx, None, 0, None)
        else:
            handles = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(self._adapters[operation][1])
            status = llama_cpp.llama_set_adapters_lora(self._llm.ctx, handles, 1, (ctypes.c_float * 1)(1.0))
        if status != 0:
            raise GeneratorError(f"llama.cpp refused to switch adapters (status {status})")
        self._active = operation

    @contextmanager
    def operation(self, operation: str | Operation, *, use_adapter: bool = True) -> Iterator[Any]:
        """Apply ``operation``'s adapter (or none) for the calls inside; restore the previous one on exit.

        ``use_adapter=False`` (or an operation without an adapter) runs the base model.
        Yields the ``llama_cpp.Llama``. Holds the backbone lock for the duration.
        """
        op = Operation(operation)
        target = op if use_adapter and op in self._adapters else None
        with self._lock:
            self._kv = None  # whatever runs inside may change llama.cpp's KV cache
            previous = self._active
            if target == previous:  # already applied: nothing to switch or restore
                yield self._llm
                return
            self._apply(target)
            try:
                yield self._llm
            finally:
                self._apply(previous)

    # -- tokens -----------------------------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        """Number of tokens ``text`` encodes to (no special tokens)."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    @property
    def context_length(self) -> int:
        """The context llama.cpp allocated (``n_ctx``): a longer call is refused."""
        return int(self._llm.n_ctx())

    def encode(self, request: GenerationRequest) -> list[int]:
        """The prompt's token ids, rendered and encoded as the transformers runtime does."""
        text, templated = render_messages(self.tokenizer, request.messages)
        return [int(i) for i in self.tokenizer(text, add_special_tokens=not templated)["input_ids"]]

    def _kept_ids(self) -> Any:
        """For ``vocabulary="latin"``: the sorted numpy array of the ids the reduced head computes (else None)."""
        if self.vocabulary == "full":
            return None
        if self._kept is None:
            np = require("numpy", "hf")
            table = self._constraint.token_table()
            self._kept = np.asarray(latin_token_ids(table.tokens, table.special_ids, self._eos_ids), dtype=np.int64)
            logger.info("%s: decoding restricted to %d of %d tokens", self.name, self._kept.size, self._n_vocab)
        return self._kept

    # -- generation -------------------------------------------------------------------------
    def _tokens(self, request: GenerationRequest, prompt: list[int]) -> Iterator[int]:
        """Yield the greedy tokens of ``request`` (the last one is a stop token unless the budget ran out).

        Each step reads llama.cpp's last-position logits in place (a numpy view, no copy) and
        looks only at the candidates: the kept ids (``vocabulary="latin"``), narrowed to the
        schema's allowed tokens when the request is constrained. ``argmax`` over the sorted
        candidates returns the lowest id among equal maxima, as an argmax over the full row
        with every other token at ``-inf`` does.
        """
        llama_cpp = require("llama_cpp", EXTRA)
        np = require("numpy", "hf")
        if len(prompt) + request.max_new_tokens > self._llm.n_ctx():
            raise GeneratorError(
                f"{request.operation.value}: {len(prompt)} prompt tokens + {request.max_new_tokens} new tokens "
                f"exceed the llama.cpp context ({self._llm.n_ctx()}; load it with a larger n_ctx)"
            )
        grammar = None
        if request.json_schema is not None and self.constrained:
            grammar = self._constraint.token_mask(request.json_schema, self._n_vocab)
        kept = self._kept_ids()
        # Read under the lock: another thread's call may change llama.cpp's KV cache meanwhile.
        with self._lock:
            cached = self._kv if self.reuse_prefix else None
            with self.operation(request.operation, use_adapter=request.use_adapter) as llm:
                failed = False
                try:
                    if self.reuse_prefix:
                        cached = self._swap_kv(llm, cached)
                    self._prefill(llm, prompt, cached)
                    for _ in range(request.max_new_tokens):
                        # The last position's logits, as llama.cpp keeps them (valid until the next eval).
                        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(self._n_vocab,))
                        allowed = grammar.allowed() if grammar is not None else None
                        if allowed is None:
                            candidates = kept
                        else:
                            candidates = np.flatnonzero(allowed) if kept is None else kept[allowed[kept]]
                        if candidates is None:
                            token = int(logits.argmax())
                        elif candidates.size:
                            token = int(candidates[logits[candidates].argmax()])
                        else:  # nothing allowed (cannot happen: eos is always kept): the full row's argmax at -inf
                            token = 0
                        yield token
                        if token in self._eos_ids:
                            return
                        if grammar is not None:
                            grammar.consume([token])
                        llm.eval([token])
                except RuntimeError as exc:  # llama_decode failures
                    failed = True
                    raise GeneratorError(f"{self.name} failed on {request.operation.value}: {exc}") from exc
                finally:  # the prompt's KV is complete once the prefill returned (a stream closed early too)
                    if not failed and llm.n_tokens >= len(prompt):
                        # its prompt only: generated tokens were computed one by one, not as a prefill computes them
                        self._kv = (self._active, list(prompt))

    def _swap_kv(self, llm: Any, live: tuple[Operation | None, list[int]] | None) -> tuple[Operation | None, list[int]] | None:
        """Park the KV cache of another adapter's prompt and bring back the active adapter's parked one.

        A turn alternates adapters (extraction, then update for each fact, then the next
        turn's extraction), so the previous prompt is rarely one of the same adapter, yet each
        operation's prompts share a long prefix with its own previous prompt (the system
        prompt, the session date). Each adapter's last prompt is therefore kept as llama.cpp's
        serialised sequence state (about 18 KB per token on gemma-3-270m; the copy takes well
        under a millisecond) and written back before that adapter's next call: the KV bytes
        are the ones its own prefill computed, so :meth:`_prefill` reuses them under the same
        rules as a prefix that never left the cache. Returns what the cache holds now.
        """
        llama_cpp = require("llama_cpp", EXTRA)
        if live is not None and live[0] == self._active:
            return live
        if live is not None and len(live[1]) <= llm.n_batch:  # longer prompts are never reused (_prefill)
            size = llama_cpp.llama_state_seq_get_size(llm.ctx, 0)
            data = (ctypes.c_uint8 * size)()
            if llama_cpp.llama_state_seq_get_data(llm.ctx, data, size, 0) == size:
                self._parked[live[0]] = (live[1], data)
        parked = self._parked.get(self._active)
        if parked is None:
            return None
        ids, data = parked
        # llama.cpp clears the sequence and reads the parked cells in its place (0: it could not)
        if llama_cpp.llama_state_seq_set_data(llm.ctx, data, len(data), 0) != len(data):
            del self._parked[self._active]
            llm.reset()
            return None
        return self._active, ids

    def _prefill(self, llm: Any, prompt: list[int], cached: tuple[Operation | None, list[int]] | None) -> None:
        """Evaluate ``prompt``, reusing the KV cache of the previous prompt's common prefix under the same adapter.

        llama-cpp-python's ``eval`` removes the KV cache from position ``n_tokens`` on
        (``llama_memory_seq_rm``) before it decodes, so setting ``n_tokens`` to the common
        prefix keeps exactly that prefix. The rest must be computed as a whole prefill computes
        it: llama.cpp's CPU matmuls take a batch's rows in groups of 4 (the repacked Q4_K
        weights) and small batches another way, and a prompt row computed in another grouping
        got logits up to 2.0 apart on gemma-3-270m. So the reused prefix is a multiple of 4
        tokens, at least 8 tokens are prefilled again, and only prompts of one llama.cpp batch
        (``n_batch``) reuse anything; with that, the last position's logits were bit-identical to
        a whole prefill in every split checked (docs/backbone.md).
        """
        common = 0
        if cached is not None and cached[0] == self._active and len(prompt) <= llm.n_batch:
            common = max(0, min(common_length(cached[1], prompt), len(prompt) - 8)) // 4 * 4
        if common:
            llm.n_tokens = common
        else:
            llm.reset()
        llm.eval(prompt[common:])

    def _decode(self, tokens: Sequence[int]) -> str:
        return str(self.tokenizer.decode(list(tokens), skip_special_tokens=True))

    def generate(self, request: GenerationRequest) -> Generation:
        """Greedy-decode one request with its operation's adapter (see :meth:`operation`)."""
        prompt = self.encode(request)
        tokens = list(self._tokens(request, prompt))
        return Generation(text=self._decode(tokens), input_tokens=len(prompt), output_tokens=len(tokens))

    def generate_batch(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """Decode ``requests`` one by one (llama.cpp batching is not wired up here)."""
        return [self.generate(request) for request in requests]

    def stream(self, request: GenerationRequest) -> Generator[str, None, Generation]:
        """Yield the generated text in chunks as it is decoded (whole characters only).

        Run to the end, the generator returns the whole :class:`Generation`; closing it
        early stops decoding and restores the adapter state.
        """
        prompt = self.encode(request)
        tokens: list[int] = []
        sent = ""
        for token in self._tokens(request, prompt):
            tokens.append(token)
            text = self._decode(tokens)
            if text.endswith("\ufffd") or not text.startswith(sent):  # half a character so far
                continue
            if len(text) > len(sent):
                yield text[len(sent):]
                sent = text
        text = self._decode(tokens)
        if len(text) > len(sent):
            yield text[len(sent):]
        return Generation(text=text, input_tokens=len(prompt), output_tokens=len(tokens))

    # -- info -------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """Runtime, model file, threads and adapters, for logs and the CLI."""
        return {
            "name": self.name,
            "runtime": "llama.cpp",
            "gguf": str(self.model_path),
            "threads": self.num_threads,
            "n_ctx": int(self._llm.n_ctx()),
            "adapters": {op.value: str(path) for op, path in self.adapters.items()},
            "constrained": self.constrained,
            "vocabulary": self.vocabulary,
        }

    def close(self) -> None:
        """Free the model, its context and its adapters (the backbone is unusable afterwards)."""
        with self._lock:
            self._adapters.clear()  # llama.cpp frees adapters with their model
            self._parked.clear()
            self._active = None
            self._llm.close()

    def __repr__(self) -> str:
        adapters = ",".join(op.value for op in self._adapters) or "none"
        return f"LlamaCppBackbone({self.name!r}, adapters={adapters}, constrained={self.constrained})"


@contextmanager
def _llama_warnings_hidden() -> Iterator[None]:
    """Keep llama.cpp's warnings off stderr for the duration (loading an adapter).

    Loading a LoRA adapter warns once per tensor whose base weight llama.cpp repacked for
    the CPU ("cannot use buft 'CPU_REPACK', fallback to CPU": 54 lines for the three experts),
    which is expected and harmless. llama-cpp-python 0.3.36 prints them although the model was
    opened with ``verbose=False``: its table of ggml's log levels predates their renumbering,
    so warnings pass as errors. Its log callback prints only what its ``llama-cpp-python``
    logger's level lets through, so that level is raised here and restored afterwards.
    """
    log = logging.getLogger("llama-cpp-python")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)

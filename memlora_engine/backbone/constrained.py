"""JSON-schema constrained decoding with llguidance.

Small models often break JSON (a missing bracket, chatter before the object). With
``constrained=True`` the backbone masks, at every decoding step, each token that
would leave the request's JSON schema, so extraction and update outputs always
parse (unless cut off by ``max_new_tokens``).

Why llguidance (measured on this project's 2-core CPU, gemma-3's 262k vocabulary;
numbers in ``docs/backbone.md``): a 7.7 MB wheel with no dependencies, a few seconds to
index the tokenizer once (cached on disk by ``load_backbone``), and well under a millisecond per token to compute a mask,
which is noise next to the model's ~150 ms per decoded token. lm-format-enforcer is
pure Python and much slower per token on a large vocabulary; xgrammar pulls triton;
outlines-core compiles a regex index per schema; transformers-cfg takes EBNF and is
slow on large vocabularies.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from memlora_engine.backbone._token_index import TokenTable, ll_tokenizer
from memlora_engine.errors import ConfigError, require

__all__ = ["JsonConstraint", "JsonTokenMask"]

logger = logging.getLogger(__name__)


class JsonConstraint:
    """Builds per-request logits processors that keep output valid under a JSON schema.

    Args:
        tokenizer: a fast Hugging Face tokenizer (its vocabulary is indexed once, lazily).
        eos_token_id: the token that ends generation once the JSON is complete.
        cache_dir: where the tokenizer index is cached for later processes
            (:mod:`memlora_engine.backbone._token_index`); None: nothing is written.
    """

    def __init__(self, tokenizer: Any, eos_token_id: int, *, cache_dir: Path | None = None) -> None:
        self._hf_tokenizer = tokenizer
        self._eos = int(eos_token_id)
        self._cache_dir = cache_dir
        self._index_pair: tuple[Any, TokenTable] | None = None
        self._grammars: dict[str, str] = {}
        self._lock = threading.Lock()

    def _index(self) -> tuple[Any, TokenTable]:
        with self._lock:
            if self._index_pair is None:
                start = time.perf_counter()
                self._index_pair = ll_tokenizer(self._hf_tokenizer, self._eos, self._cache_dir)
                logger.info("indexed the tokenizer for constrained decoding in %.1f s", time.perf_counter() - start)
            return self._index_pair

    def _tokenizer(self) -> Any:
        return self._index()[0]

    def token_table(self) -> TokenTable:
        """Every token's bytes and the special ids (indexing the tokenizer on first use)."""
        return self._index()[1]

    def _grammar(self, schema: dict[str, Any]) -> str:
        key = json.dumps(schema, sort_keys=True)
        grammar = self._grammars.get(key)
        if grammar is None:
            llguidance = require("llguidance", "hf")
            # Compact JSON: no free whitespace, so a small model cannot pad forever.
            grammar = llguidance.LLMatcher.grammar_from_json_schema(
                schema, defaults={"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}
            )
            self._grammars[key] = grammar
        return grammar

    def processor(self, schema: dict[str, Any], prompt_length: int) -> _JsonLogitsProcessor:
        """A fresh logits processor for one ``generate`` call whose prompt has ``prompt_length`` tokens."""
        return self.batch_processor([schema], prompt_length, ())

    def _matcher(self, schema: dict[str, Any]) -> Any:
        llguidance = require("llguidance", "hf")
        matcher = llguidance.LLMatcher(self._tokenizer(), self._grammar(schema), log_level=0)
        if matcher.is_error():
            raise ConfigError(f"invalid JSON schema for constrained decoding: {matcher.get_error()}")
        return matcher

    def batch_processor(self, schemas: list[dict[str, Any] | None], prompt_length: int,
                        stop_ids: Sequence[int]) -> _JsonLogitsProcessor:
        """A logits processor for a batch of rows, row ``i`` under ``schemas[i]`` (None: unconstrained).

        Every row's prompt (padded) has ``prompt_length`` tokens. A row that has produced one of
        ``stop_ids`` is finished: what ``generate`` appends to it afterwards (padding) is not
        fed to its matcher.
        """
        matchers = [None if schema is None else self._matcher(schema) for schema in schemas]
        return _JsonLogitsProcessor(matchers, self._tokenizer().vocab_size, prompt_length, self._eos, stop_ids)

    def token_mask(self, schema: dict[str, Any], vocab: int) -> JsonTokenMask:
        """One call's grammar state as numpy masks, for a runtime that picks its tokens itself (llama.cpp)."""
        return JsonTokenMask(self._matcher(schema), self._tokenizer().vocab_size, vocab, self._eos)


class JsonTokenMask:
    """One ``generate`` call's grammar state: the tokens allowed next, as a numpy bool array.

    The numpy counterpart of the logits processor below, for a runtime that reads its
    logits as a numpy array and picks the token itself: :meth:`allowed` before each pick,
    :meth:`consume` with the token picked (unless it is a stop token).
    """

    def __init__(self, matcher: Any, grammar_vocab: int, vocab: int, eos_token_id: int) -> None:
        from llguidance.numpy import allocate_token_bitmask

        self._matcher = matcher
        self._vocab = vocab
        self._eos = eos_token_id
        # llguidance's packed mask (int32 words; bit j of word i is token 32 i + j), filled in place at each step
        self._bitmask = allocate_token_bitmask(1, grammar_vocab)
        self._warned = False

    def allowed(self) -> Any | None:
        """Bool array over the vocabulary: the tokens the schema allows next; None when the matcher failed."""
        if self._matcher.is_error():
            if not self._warned:  # should not happen: we only ever pick allowed tokens
                logger.warning("constrained decoding left the grammar: %s", self._matcher.get_error())
                self._warned = True
            return None
        import numpy as np
        from llguidance.numpy import fill_next_token_bitmask

        allowed = np.zeros(self._vocab, dtype=bool)
        if self._matcher.is_stopped():
            allowed[self._eos] = True
            return allowed
        fill_next_token_bitmask(self._matcher, self._bitmask)
        bits = np.unpackbits(self._bitmask.view(np.uint8), bitorder="little")
        n = min(self._vocab, bits.shape[0])
        allowed[:n] = bits[:n]
        return allowed

    def consume(self, tokens: list[int]) -> None:
        """Advance the grammar past ``tokens`` (the ones picked since the last call)."""
        self._matcher.consume_tokens(tokens)


class _JsonLogitsProcessor:
    """A transformers ``LogitsProcessor``: feeds each row's new tokens to its matcher, masks the rest."""

    def __init__(self, matchers: list[Any], grammar_vocab: int, prompt_length: int, eos_token_id: int,
                 stop_ids: Sequence[int]) -> None:
        self._matchers = matchers
        self._grammar_vocab = grammar_vocab
        self._masks: list[JsonTokenMask | None] | None = None  # one per matcher, made at the first call (vocab size)
        self._prompt_length = prompt_length
        self._consumed = 0
        self._eos = eos_token_id
        self._stop_ids = frozenset(stop_ids)
        self._finished = [False] * len(matchers)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        vocab = scores.shape[-1]
        if self._masks is None:
            self._masks = [None if m is None else JsonTokenMask(m, self._grammar_vocab, vocab, self._eos)
                           for m in self._matchers]
        generated = input_ids.shape[1] - self._prompt_length
        new = input_ids[:, self._prompt_length + self._consumed :].tolist() if generated > self._consumed else None
        self._consumed = generated
        masks = []
        for row, state in enumerate(self._masks):
            if new is not None and not self._finished[row]:
                tokens = new[row]
                stop = next((i for i, t in enumerate(tokens) if t in self._stop_ids), None)
                if stop is not None:
                    self._finished[row] = True
                    tokens = tokens[:stop]
                if state is not None and tokens:
                    state.consume(tokens)
            allowed = None if state is None or self._finished[row] else state.allowed()
            masks.append(None if allowed is None else torch.from_numpy(allowed))
        if all(mask is None for mask in masks):
            return scores
        allowed = torch.stack([torch.ones(vocab, dtype=torch.bool) if m is None else m for m in masks])
        return scores.masked_fill(~allowed, float("-inf"))

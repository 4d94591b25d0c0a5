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

__all__ = ["JsonConstraint"]

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

    def batch_processor(self, schemas: list[dict[str, Any] | None], prompt_length: int,
                        stop_ids: Sequence[int]) -> _JsonLogitsProcessor:
        """A logits processor for a batch of rows, row ``i`` under ``schemas[i]`` (None: unconstrained).

        Every row's prompt (padded) has ``prompt_length`` tokens. A row that has produced one of
        ``stop_ids`` is finished: what ``generate`` appends to it afterwards (padding) is not
        fed to its matcher.
        """
        llguidance = require("llguidance", "hf")
        matchers: list[Any] = []
        for schema in schemas:
            if schema is None:
                matchers.append(None)
                continue
            matcher = llguidance.LLMatcher(self._tokenizer(), self._grammar(schema), log_level=0)
            if matcher.is_error():
                raise ConfigError(f"invalid JSON schema for constrained decoding: {matcher.get_error()}")
            matchers.append(matcher)
        return _JsonLogitsProcessor(matchers, prompt_length, self._eos, stop_ids)


class _JsonLogitsProcessor:
    """A transformers ``LogitsProcessor``: feeds each row's new tokens to its matcher, masks the rest."""

    def __init__(self, matchers: list[Any], prompt_length: int, eos_token_id: int, stop_ids: Sequence[int]) -> None:
        self._matchers = matchers
        self._prompt_length = prompt_length
        self._consumed = 0
        self._eos = eos_token_id
        self._stop_ids = frozenset(stop_ids)
        self._finished = [False] * len(matchers)
        self._warned = False

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        generated = input_ids.shape[1] - self._prompt_length
        new = input_ids[:, self._prompt_length + self._consumed :].tolist() if generated > self._consumed else None
        self._consumed = generated
        masks = []
        for row, matcher in enumerate(self._matchers):
            if new is not None and not self._finished[row]:
                tokens = new[row]
                stop = next((i for i, t in enumerate(tokens) if t in self._stop_ids), None)
                if stop is not None:
                    self._finished[row] = True
                    tokens = tokens[:stop]
                if matcher is not None and tokens:
                    matcher.consume_tokens(tokens)
            masks.append(None if matcher is None or self._finished[row] else self._allowed(matcher, scores.shape[-1]))
        if all(mask is None for mask in masks):
            return scores
        allowed = torch.stack([torch.ones(scores.shape[-1], dtype=torch.bool) if m is None else m for m in masks])
        return scores.masked_fill(~allowed, float("-inf"))

    def _allowed(self, matcher: Any, vocab: int) -> Any | None:
        import numpy as np
        import torch

        if matcher.is_error():
            if not self._warned:  # should not happen: we only ever sample allowed tokens
                logger.warning("constrained decoding left the grammar: %s", matcher.get_error())
                self._warned = True
            return None
        allowed = torch.zeros(vocab, dtype=torch.bool)
        if matcher.is_stopped():
            allowed[self._eos] = True
        else:
            bits = np.unpackbits(np.frombuffer(matcher.compute_bitmask(), dtype=np.uint8), bitorder="little")
            n = min(vocab, bits.shape[0])
            allowed[:n] = torch.from_numpy(bits[:n].astype(bool))
        return allowed

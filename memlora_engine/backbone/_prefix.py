"""Reusing the KV states of prompt prefixes across calls (prefix caching).

Every call of one operation starts with the same tokens: the operation's system
prompt (extraction's and generation's name the date, the same for a whole session),
and the update step's one-call-per-fact prompts share the numbered old memories as
well. Prefilling those tokens again on every call is wasted work: :class:`PrefixCache`
keeps the keys and values of such prefixes and hands a copy to ``generate``, which
then prefills only the call's tail.

Which prefixes: the longest token prefix a call shares with the previous call of the
same adapter (at least ``min_tokens`` long), as vLLM's automatic prefix caching finds
them, so nothing about the prompts is hard-coded here. A stored prefix is reused by
every later call whose token ids start with it.

The key of a stored prefix is the adapter that ran it (a LoRA adapter on the
attention projections changes the keys and values) and the prefix's exact token
ids. Entries are evicted least recently used; :meth:`PrefixCache.clear` drops them
all, which the backbone does whenever an adapter is loaded or replaced. Weights
changed behind the backbone's back (training the model it holds) need a ``clear()``.

The states of a prefix computed on their own are those of the same tokens inside a
longer prompt (a causal model) up to rounding: in float32 the greedy tokens are the
uncached path's (``tests/test_backbone_prefix_batch.py``, token for token on a tiny
model), but in bfloat16 the split prefill rounds differently and gemma-3-270m's greedy
output changed on one conv-26 extraction call (docs/backbone.md), which is why
``HFBackbone(prefix_cache=...)`` is off by default.
"""

from __future__ import annotations

import copy
import logging
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from typing import Any

from memlora_engine.errors import ConfigError, require

__all__ = ["PrefixCache", "common_length"]

logger = logging.getLogger(__name__)

AdapterKey = Hashable
"""Which weights computed a prefix: an adapter name, or None for the base model."""


def common_length(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens ``a`` and ``b`` share."""
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


class PrefixCache:
    """KV states of prompt prefixes, per adapter, reused across ``generate`` calls.

    Args:
        max_entries: prefixes kept (least recently used evicted). A 300-token prefix of
            gemma-3-270m in bfloat16 is about 5.5 MB.
        min_tokens: shortest prefix worth storing, and the least a new prefix must add
            to a stored one it extends.
    """

    def __init__(self, *, max_entries: int = 8, min_tokens: int = 16) -> None:
        if max_entries < 1 or min_tokens < 1:
            raise ConfigError(f"max_entries and min_tokens must be >= 1, got {max_entries}, {min_tokens}")
        self.max_entries = max_entries
        self.min_tokens = min_tokens
        self._entries: OrderedDict[tuple[AdapterKey, tuple[int, ...]], Any] = OrderedDict()
        self._last: dict[AdapterKey, tuple[int, ...]] = {}
        self.hits = 0
        self.reused_tokens = 0

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget every stored prefix (after the weights that computed them changed)."""
        self._entries.clear()
        self._last.clear()

    def past_for(self, model: Any, adapter: AdapterKey, ids: Sequence[int]) -> Any | None:
        """A private copy of the states of the longest stored prefix of ``ids`` (None: none).

        Stores the prefix ``ids`` shares with the previous call of ``adapter`` first, when
        it is new and long enough, computing its states with ``model`` (which must be
        running ``adapter``). The last token of ``ids`` is never part of the prefix:
        ``generate`` needs at least one token to prefill.
        """
        ids = tuple(int(i) for i in ids)
        best = self._longest_stored(adapter, ids, limit=len(ids) - 1)
        previous = self._last.get(adapter)
        self._last[adapter] = ids
        if previous is not None:
            shared = min(common_length(previous, ids), len(ids) - 1)
            base = 0 if best is None else len(best[1])
            if shared >= self.min_tokens and shared - base >= self.min_tokens:
                best = self._store(model, adapter, ids[:shared], best)
        if best is None:
            return None
        self._entries.move_to_end(best)
        self.hits += 1
        self.reused_tokens += len(best[1])
        return copy.deepcopy(self._entries[best])

    def shared_past(self, model: Any, adapter: AdapterKey, prefix: Sequence[int]) -> tuple[int, Any | None]:
        """States of ``prefix`` (stored first when new and long enough), or of its longest stored prefix.

        For a batch of prompts that all start with ``prefix``. Returns ``(length, states)``:
        the number of tokens the states cover, and a private copy of them (``(0, None)``: none).
        """
        prefix = tuple(int(i) for i in prefix)
        best = self._longest_stored(adapter, prefix, limit=len(prefix))
        base = 0 if best is None else len(best[1])
        if len(prefix) >= self.min_tokens and len(prefix) - base >= self.min_tokens:
            best = self._store(model, adapter, prefix, best)
        if best is None:
            return 0, None
        self._entries.move_to_end(best)
        self.hits += 1
        self.reused_tokens += len(best[1])
        return len(best[1]), copy.deepcopy(self._entries[best])

    def _longest_stored(self, adapter: AdapterKey, ids: tuple[int, ...],
                        limit: int) -> tuple[AdapterKey, tuple[int, ...]] | None:
        """The longest stored prefix of ``ids`` of at most ``limit`` tokens."""
        best: tuple[AdapterKey, tuple[int, ...]] | None = None
        for key in self._entries:
            stored_adapter, prefix = key
            if (stored_adapter == adapter and len(prefix) <= limit and ids[: len(prefix)] == prefix
                    and (best is None or len(prefix) > len(best[1]))):
                best = key
        return best

    def _store(self, model: Any, adapter: AdapterKey, prefix: tuple[int, ...],
               start: tuple[AdapterKey, tuple[int, ...]] | None) -> tuple[AdapterKey, tuple[int, ...]]:
        torch = require("torch", "hf")
        transformers = require("transformers", "hf")
        if start is None:
            past = transformers.DynamicCache(config=model.config)
            done = 0
        else:  # extend a stored prefix: only the new tokens are computed
            past = copy.deepcopy(self._entries[start])
            done = len(start[1])
        device = next(model.parameters()).device
        tail = torch.tensor([prefix[done:]], dtype=torch.long, device=device)
        model(input_ids=tail, cache=past, use_cache=True, logits_to_keep=1)
        key = (adapter, prefix)
        self._entries[key] = past
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        logger.debug("stored a %d-token prefix for adapter %s", len(prefix), adapter)
        return key

"""A reduced output vocabulary: the head reads only the rows of tokens we can emit.

gemma-3's tied output head is 262,144 x 640: in bfloat16, 320 MiB of the ~518 MiB a
decoded token reads, i.e. most of the decode time on a memory-bound CPU. Most of
those rows are tokens of scripts MemLoRA's experts never write (CJK, Cyrillic,
Devanagari, ...). With ``vocabulary="latin"`` the backbone keeps, once per model:

* every token whose text is made only of Latin-script characters: ASCII (printable,
  tab, newline), Latin-1 Supplement and Latin Extended-A (accented names: "José",
  "Zoë", "Łódź"), typographic punctuation (U+2010-U+203A: dashes, curly quotes,
  ellipsis), the euro and trade-mark signs;
* every single-byte token (gemma's byte fallback), so any text can still be spelled;
* the eos token(s).

For gemma-3 that is about 1 token in 5 (the exact count is in docs/backbone.md). At
each step the head computes those rows only (one contiguous matrix, copied once) and
gives every other token ``-inf``. Greedy decoding then picks exactly the token the full
head would pick among the kept ones: the reduction is a constraint (like the JSON
schema mask), never an approximation of the kept logits. A token outside the set is
never produced; where that matters (a user writing Greek or Chinese) load with
``vocabulary="full"``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from memlora_engine.errors import require

__all__ = ["VOCABULARIES", "latin_token_ids", "reduced_head"]

VOCABULARIES = ("full", "latin")

_LATIN_RANGES = (
    (0x09, 0x0A),
    (0x0D, 0x0D),
    (0x20, 0x7E),  # ASCII printable
    (0xA0, 0x17F),  # Latin-1 Supplement, Latin Extended-A
    (0x2010, 0x203A),  # dashes, quotes, bullets, ellipsis, per mille, guillemets
    (0x20AC, 0x20AC),  # euro
    (0x2122, 0x2122),  # trade mark
)
_LATIN = frozenset(c for low, high in _LATIN_RANGES for c in range(low, high + 1))


def _is_latin(token: bytes) -> bool:
    if len(token) == 1:  # byte fallback: keeps every text spellable
        return True
    try:
        text = token.decode("utf-8")
    except UnicodeDecodeError:  # a piece of a multi-byte character
        return False
    return bool(text) and all(ord(ch) in _LATIN for ch in text)


def latin_token_ids(tokens: list[bytes], special_ids: Iterable[int], always: Iterable[int]) -> list[int]:
    """Sorted ids of the Latin-script tokens (see the module docstring), plus ``always``.

    Args:
        tokens: every token's bytes, by id.
        special_ids: special tokens (control tokens, never text): dropped unless in ``always``.
        always: ids to keep whatever their text (the eos tokens).
    """
    special = set(special_ids)
    kept = {i for i, token in enumerate(tokens) if i not in special and _is_latin(token)}
    return sorted(kept | set(always))


@functools.cache
def _head_class() -> Any:
    torch = require("torch", "hf")

    class ReducedHead(torch.nn.Module):  # type: ignore[name-defined,misc]
        """Computes the kept rows of an output head; every other token gets ``-inf``."""

        def __init__(self, full_head: Any, token_ids: list[int]) -> None:
            super().__init__()
            weight = full_head.weight
            ids = torch.tensor(token_ids, dtype=torch.long, device=weight.device)
            # One contiguous copy: gathering the rows at every token would read more than it saves.
            self.register_buffer("weight", weight.detach().index_select(0, ids).contiguous(), persistent=False)
            bias = full_head.bias
            self.register_buffer("bias", None if bias is None else bias.detach().index_select(0, ids), persistent=False)
            self.register_buffer("ids", ids, persistent=False)
            self.out_features = int(weight.shape[0])

        def forward(self, hidden: Any) -> Any:
            logits = torch.nn.functional.linear(hidden, self.weight, self.bias)
            out = logits.new_full((*logits.shape[:-1], self.out_features), float("-inf"))
            return out.index_copy_(-1, self.ids, logits)

    return ReducedHead


def reduced_head(full_head: Any, token_ids: list[int]) -> Any:
    """An ``nn.Module`` standing in for ``full_head`` (an ``nn.Linear``) that computes ``token_ids`` rows only.

    Its output has the full vocabulary width, ``-inf`` outside ``token_ids``, so
    logits processors and token ids work unchanged.
    """
    return _head_class()(full_head, token_ids)

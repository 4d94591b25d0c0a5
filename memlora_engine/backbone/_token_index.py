"""The tokenizer index llguidance needs, with an on-disk cache of its slow part.

llguidance wants every token's bytes. Building its tokenizer from a Hugging Face
tokenizer (``llguidance.hf.from_tokenizer``) serialises the whole tokenizer to JSON
and re-parses it in Rust: seconds for gemma-3's 262,144 tokens (4.8 s on an idle
2-core machine), paid on the first constrained call of every process. The token
bytes never change for a given tokenizer, so we keep them in one ``.npz`` file per
tokenizer (offsets + concatenated bytes + the special-token ids) and, on later runs,
hand them to llguidance through its ``TokenizerWrapper`` (the same constructor the
``from_tokenizer`` path ends in, minus the JSON round trip).

The file name carries a key over the tokenizer's files (or its serialised JSON when
it has no files), its length, the eos id and the llguidance version: a changed
tokenizer gets a new file, and the stale one is removed when the new one is written.
Files are only written where a caller passes a directory (``load_backbone`` passes the
MemLoRA cache dir); a bare :class:`~memlora_engine.backbone.JsonConstraint` writes
nothing.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memlora_engine.errors import ConfigError, require

__all__ = ["TokenTable", "index_key", "ll_tokenizer"]

logger = logging.getLogger(__name__)

_FORMAT = "1"
_PREFIX = "llguidance-tokens-"
# Files in a tokenizer directory that define its vocabulary.
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json")


@dataclass(frozen=True)
class TokenTable:
    """Every token's bytes and which ids are special (what llguidance indexes)."""

    tokens: list[bytes]
    special_ids: list[int]


def index_key(tokenizer: Any, eos_token_id: int) -> str:
    """A digest that changes whenever the tokenizer's vocabulary could have changed."""
    llguidance = require("llguidance", "hf")
    digest = hashlib.sha256()
    digest.update(f"{_FORMAT}|{getattr(llguidance, '__version__', '?')}|{len(tokenizer)}|{eos_token_id}".encode())
    directory = Path(str(getattr(tokenizer, "name_or_path", "") or ""))
    files = [directory / name for name in _TOKENIZER_FILES if (directory / name).is_file()]
    if files:  # hashing the 30 MB of files is ~50 ms; serialising the tokenizer is seconds
        for path in files:
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
        # tokens added in memory after loading are not in the files
        digest.update(repr(sorted(tokenizer.get_added_vocab().items())).encode())
    else:
        digest.update(tokenizer.backend_tokenizer.to_str().encode())
    return digest.hexdigest()[:24]


def _build(tokenizer: Any, eos_token_id: int) -> tuple[Any, TokenTable]:
    llguidance_hf = require("llguidance.hf", "hf")
    try:
        ll = llguidance_hf.from_tokenizer(tokenizer, eos_token=eos_token_id)
    except ValueError as exc:  # slow (non-Rust) tokenizers are not supported
        raise ConfigError(f"constrained decoding needs a fast tokenizer: {exc}") from exc
    size = int(ll.vocab_size)
    table = TokenTable(
        tokens=[ll.decode_bytes([i]) for i in range(size)],
        special_ids=[i for i in range(size) if ll.is_special_token(i)],
    )
    return ll, table


def _save(path: Path, table: TokenTable) -> None:
    import numpy as np

    lengths = np.fromiter((len(t) for t in table.tokens), dtype=np.int64, count=len(table.tokens))
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    data = np.frombuffer(b"".join(table.tokens), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(handle, "wb") as out:
            np.savez(out, offsets=offsets, data=data, special=np.asarray(table.special_ids, dtype=np.int64))
        os.replace(tmp, path)  # atomic: a reader sees the old file or the whole new one
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    for stale in path.parent.glob(f"{_PREFIX}*.npz"):
        if stale != path:
            stale.unlink(missing_ok=True)


def _load(path: Path) -> TokenTable | None:
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as archive:
            offsets, data, special = archive["offsets"], archive["data"].tobytes(), archive["special"]
    except (OSError, ValueError, KeyError) as exc:
        logger.warning("ignoring an unreadable token index %s (%s); rebuilding it", path, exc)
        return None
    bounds = offsets.tolist()
    return TokenTable([data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)], [int(i) for i in special])


class _CachedVocabulary:
    """What ``llguidance.TokenizerWrapper`` reads: token bytes, special ids, and an encoder."""

    def __init__(self, tokenizer: Any, table: TokenTable, eos_token_id: int) -> None:
        self.eos_token_id = eos_token_id
        self.bos_token_id = tokenizer.bos_token_id
        self.tokens: Sequence[bytes] = table.tokens
        self.special_token_ids: Sequence[int] = table.special_ids
        self._tokenizer = tokenizer

    def __call__(self, text: bytes | str) -> list[int]:
        # llguidance passes valid UTF-8 (it tokenises any trailing partial character itself)
        string = text.decode("utf-8", errors="replace") if isinstance(text, bytes) else text
        return list(self._tokenizer.encode(string, add_special_tokens=False))


def ll_tokenizer(tokenizer: Any, eos_token_id: int, cache_dir: Path | None = None) -> tuple[Any, TokenTable]:
    """llguidance's tokenizer for ``tokenizer`` and its token table.

    Args:
        tokenizer: a fast Hugging Face tokenizer.
        eos_token_id: the token that ends generation.
        cache_dir: where the token table is cached; None reads and writes nothing.
    """
    if cache_dir is None:
        return _build(tokenizer, eos_token_id)
    path = cache_dir / f"{_PREFIX}{index_key(tokenizer, eos_token_id)}.npz"
    table = _load(path) if path.is_file() else None
    if table is None:
        ll, table = _build(tokenizer, eos_token_id)
        try:
            _save(path, table)
        except OSError as exc:  # a read-only cache costs time, not correctness
            logger.warning("cannot write the token index to %s: %s", path, exc)
        return ll, table
    llguidance = require("llguidance", "hf")
    wrapper = llguidance.TokenizerWrapper(_CachedVocabulary(tokenizer, table, eos_token_id))
    return llguidance.LLTokenizer(wrapper, eos_token=eos_token_id), table

"""Conversation-level splits: a conversation is never divided between splits.

LoCoMo questions about one conversation share its speakers and events, so a
question-level split would leak the test conversation into training. The dev
file (8 conversations) is split 6 / 1 / 1 by :data:`DEV_SPLITS`:

* ``test`` = ``conv-26``: the first LoCoMo conversation, with questions of all
  five categories (Caroline and Melanie; 19 sessions, 199 questions);
* ``validation`` = ``conv-30``: the smallest (19 sessions, 105 questions), cheap
  for adapter selection;
* ``train`` = the other six (``conv-41``, ``conv-42``, ``conv-43``, ``conv-44``,
  ``conv-47``, ``conv-49``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from memlora_engine.data.locomo import Conversation
from memlora_engine.errors import ConfigError

__all__ = ["DEV_SPLITS", "HELD_OUT", "SPLIT_NAMES", "require_training", "select_conversations", "select_split", "split_conversations"]

SPLIT_NAMES = ("train", "validation", "test", "all")

DEV_SPLITS: Mapping[str, tuple[str, ...]] = {
    "train": ("conv-41", "conv-42", "conv-43", "conv-44", "conv-47", "conv-49"),
    "validation": ("conv-30",),
    "test": ("conv-26",),
}
"""The dev file's split, by ``sample_id`` (6 train / 1 validation / 1 test)."""

HELD_OUT: frozenset[str] = frozenset((*DEV_SPLITS["validation"], *DEV_SPLITS["test"]))
"""The validation and test conversations: never a source of training data."""


def _check_disjoint(splits: Mapping[str, Sequence[str]]) -> None:
    seen: dict[str, str] = {}
    for name, ids in splits.items():
        for sample_id in ids:
            if sample_id in seen:
                raise ConfigError(f"conversation {sample_id!r} is in both {seen[sample_id]!r} and {name!r}")
            seen[sample_id] = name


def split_conversations(
    conversations: Sequence[Conversation], splits: Mapping[str, Sequence[str]] = DEV_SPLITS
) -> dict[str, list[Conversation]]:
    """Group conversations by split; conversations in no split go to ``"unassigned"``."""
    _check_disjoint(splits)
    by_id = {c.sample_id: c for c in conversations}
    out: dict[str, list[Conversation]] = {name: [by_id[i] for i in ids if i in by_id] for name, ids in splits.items()}
    assigned = {i for ids in splits.values() for i in ids}
    out["unassigned"] = [c for c in conversations if c.sample_id not in assigned]
    return out


def select_split(
    conversations: Sequence[Conversation],
    split: str,
    splits: Mapping[str, Sequence[str]] = DEV_SPLITS,
) -> list[Conversation]:
    """The conversations of ``split`` (``"all"``: every one, in file order).

    A file none of whose ids are in ``splits`` (another LoCoMo-format file) has no
    named splits: ask for ``"all"`` or pass your own ``splits``.

    Raises:
        ConfigError: an unknown split, or one that selects nothing from this file.
    """
    if split == "all":
        return list(conversations)
    if split not in splits:
        raise ConfigError(f"unknown split {split!r}; choose one of {sorted([*splits, 'all'])}")
    selected = split_conversations(conversations, splits)[split]
    if not selected:
        raise ConfigError(
            f"split {split!r} ({', '.join(splits[split])}) selects no conversation of this file; "
            "use --split all or give the conversation ids"
        )
    return selected


def select_conversations(
    conversations: Sequence[Conversation], *, ids: str | None, splits: str, source: str = "the data file"
) -> list[Conversation]:
    """The conversations named by comma-separated ``ids`` (all must exist), else those of the comma-separated ``splits``."""
    if ids:
        wanted = [c.strip() for c in ids.split(",") if c.strip()]
        by_id = {c.sample_id: c for c in conversations}
        missing = [w for w in wanted if w not in by_id]
        if missing:
            raise ConfigError(f"no conversation {missing} in {source}")
        return [by_id[w] for w in wanted]
    return [c for split in splits.split(",") for c in select_split(conversations, split.strip())]


def require_training(conversations: Sequence[Conversation], what: str) -> None:
    """Refuse a validation or test conversation of :data:`DEV_SPLITS` as a source of ``what``.

    Raises:
        ConfigError: naming the first held-out conversation found.
    """
    for conversation in conversations:
        if conversation.sample_id in HELD_OUT:
            raise ConfigError(f"{conversation.sample_id} is a validation/test conversation: "
                              f"{what} comes from training conversations only")

"""How a LoCoMo conversation is fed to ``Memory.add``: two turns per call, speaker names kept.

The evaluation harness ingests conversations this way and distillation replays them
the same way, so the adapters train on the calls they are scored on: both use these
two functions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from memlora_engine.data.locomo import Conversation, Session, Turn

__all__ = ["session_windows", "window_messages"]


def session_windows(session: Session) -> Iterator[tuple[Turn, ...]]:
    """The session's turns two at a time (the last window may hold one)."""
    turns = session.turns
    for start in range(0, len(turns), 2):
        yield turns[start : start + 2]


def window_messages(
    conversation: Conversation,
    turns: Sequence[Turn],
    *,
    captions: bool = True,
    image_content: Callable[[Turn], str | list[dict[str, Any]]] | None = None,
) -> list[dict[str, Any]]:
    """The messages passed to ``Memory.add`` for one window.

    The first speaker is the ``user``, the second the ``assistant``; each message keeps
    the speaker's name.

    Args:
        conversation: the conversation the turns belong to (its speakers set the roles).
        turns: the window's turns (see :func:`session_windows`).
        captions: append a shared photo's caption to the turn's text.
        image_content: the content of a turn that shares a photo (e.g. text and image
            parts); default: its text, rendered as ``captions`` says.
    """
    return [
        {
            "role": conversation.role_of(t.speaker),
            "content": image_content(t) if image_content is not None and t.img_url else t.rendered(captions=captions),
            "name": t.speaker,
        }
        for t in turns
    ]

"""Chat sessions: the short-term, verbatim buffer of recent turns, beside long-term memory.

The integrations keep a conversation's recent messages here (LangChain chat
history, LlamaIndex memory); nothing here is extracted or embedded. Sessions
belong to a scope, so forgetting the scope (``Memory.delete_all``) clears them.
``Memory.append_chat``, ``chat_messages`` and ``clear_chat`` delegate to
:class:`ChatSessions` (``Memory.chats``); :meth:`ChatSessions.session` binds one
(scope, session id) for a caller that only ever uses one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from memlora_engine._time import Timestamp, iso, resolve
from memlora_engine.messages import normalize_messages
from memlora_engine.sessions import SessionStore
from memlora_engine.types import Scope

__all__ = ["ChatSession", "ChatSessions"]


class ChatSessions:
    """Every chat session of one memory, by (scope, session id). Thread-safe.

    Args:
        store: where messages persist.
        clock: "now", for messages appended without a timestamp.
    """

    def __init__(self, store: SessionStore, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._clock = clock

    def append(self, scope: Scope, session_id: str, messages: Any, timestamp: Timestamp = None) -> None:
        """Append one message or a list (any shape ``Memory.add`` takes) to the session.

        A message dict may carry ``"extra"`` (a JSON-able dict) that comes back as is.

        Raises:
            InvalidInputError: a bad message, session id, ``extra`` or ``timestamp``.
        """
        raw = messages if isinstance(messages, list) else [messages]
        normalized = normalize_messages(raw)
        for source, message in zip(raw, normalized):
            if isinstance(source, dict) and source.get("extra"):
                message["extra"] = source["extra"]
        self._store.append(scope, session_id, normalized, iso(resolve(timestamp, self._clock)))

    def messages(self, scope: Scope, session_id: str, limit: int | None = None) -> list[dict[str, Any]]:
        """The session's messages (``role``, ``content``, ``created_at``[, ``name``, ``extra``]), oldest first.

        ``limit``: only the last ``limit`` messages.
        """
        return self._store.messages(scope, session_id, limit)

    def clear(self, scope: Scope, session_id: str) -> int:
        """Forget one session (long-term memories stay). Returns the messages removed."""
        return self._store.clear(scope, session_id)

    def session(self, scope: Scope, session_id: str) -> ChatSession:
        """A handle on one session of ``scope``."""
        return ChatSession(self, scope, session_id)


@dataclass(frozen=True)
class ChatSession:
    """One (scope, session id) of :class:`ChatSessions`."""

    sessions: ChatSessions
    scope: Scope
    session_id: str

    def append(self, messages: Any, timestamp: Timestamp = None) -> None:
        """See :meth:`ChatSessions.append`."""
        self.sessions.append(self.scope, self.session_id, messages, timestamp)

    def messages(self, limit: int | None = None) -> list[dict[str, Any]]:
        """See :meth:`ChatSessions.messages`."""
        return self.sessions.messages(self.scope, self.session_id, limit)

    def clear(self) -> int:
        """See :meth:`ChatSessions.clear`."""
        return self.sessions.clear(self.scope, self.session_id)

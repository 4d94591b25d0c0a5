"""The LoCoMo loader, re-exported: it lives in :mod:`memlora_engine.data.locomo` (shared with training)."""

from __future__ import annotations

from memlora_engine.data.locomo import (
    CATEGORY_NAMES,
    QA,
    Conversation,
    Observation,
    Session,
    Turn,
    load_locomo,
    parse_evidence,
    parse_locomo,
    parse_session_datetime,
    session_of,
)

__all__ = [
    "CATEGORY_NAMES",
    "Conversation",
    "Observation",
    "QA",
    "Session",
    "Turn",
    "load_locomo",
    "parse_evidence",
    "parse_locomo",
    "parse_session_datetime",
    "session_of",
]

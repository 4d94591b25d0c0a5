"""Data shared by training and evaluation: LoCoMo, its dev splits, its session windows, its photos, the VQA records.

Training and evaluation both import this package and never each other. Importing it
is light (standard library only). Nothing from LoCoMo ships with MemLoRA (CC BY-NC
4.0): point :func:`load_locomo` at your own copy.
"""

from __future__ import annotations

from memlora_engine.data.image_cache import IMAGE_EXTENSIONS, FetchResult, fetch_images, image_kind, resolve_image
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
)
from memlora_engine.data.splits import DEV_SPLITS, select_conversations, select_split, split_conversations
from memlora_engine.data.vqa import ONE_WORD_HINT, RECORD_FIELDS, load_vqa_benchmark
from memlora_engine.data.windows import session_windows, window_messages

__all__ = [
    "CATEGORY_NAMES",
    "Conversation",
    "DEV_SPLITS",
    "FetchResult",
    "IMAGE_EXTENSIONS",
    "ONE_WORD_HINT",
    "Observation",
    "QA",
    "RECORD_FIELDS",
    "Session",
    "Turn",
    "fetch_images",
    "image_kind",
    "load_locomo",
    "load_vqa_benchmark",
    "parse_evidence",
    "parse_locomo",
    "parse_session_datetime",
    "resolve_image",
    "select_conversations",
    "select_split",
    "session_windows",
    "split_conversations",
    "window_messages",
]

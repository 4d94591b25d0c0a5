"""Reading LoCoMo-format files: conversations, sessions, turns, QA, observations.

The loader accepts any file shaped like LoCoMo (a JSON list of samples with
``sample_id``, ``conversation``, ``qa`` and optionally ``observation``,
``session_summary`` and ``event_summary``) and repairs the known quirks of the
released data instead of dropping questions:

* evidence ids that are joined in one string (``"D8:6; D9:17"``, ``"D9:1 D4:4"``)
  are split; ids with a stray colon (``"D:11:26"``) are repaired; ids that do not
  parse (``"D"``) or name no turn of the conversation are kept aside in
  :attr:`QA.invalid_evidence`, never silently lost;
* answers that are numbers (``2022``) become strings;
* category 5 (adversarial) questions have ``adversarial_answer`` and usually no
  ``answer``;
* category 3 answers may list ``;``-separated alternatives (the official scorer
  keeps the first);
* ``session_N_date_time`` may exist for sessions that have no turns;
* observation evidence may be a list of ids or one comma-joined string.

Nothing from the data set ships with MemLoRA (LoCoMo is CC BY-NC 4.0): point
:func:`load_locomo` at your own copy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from memlora_engine.errors import InvalidInputError

__all__ = [
    "CATEGORY_NAMES",
    "QA",
    "Conversation",
    "Observation",
    "Session",
    "Turn",
    "load_locomo",
    "parse_evidence",
    "parse_locomo",
    "parse_session_datetime",
]

CATEGORY_NAMES: dict[int, str] = {
    1: "multi-hop",
    2: "temporal",
    3: "open-domain",
    4: "single-hop",
    5: "adversarial",
}
"""LoCoMo's QA categories as the published papers name them."""

_SESSION_KEY = re.compile(r"^session_(\d+)$")
_DATE_TIME = re.compile(
    r"^\s*(\d{1,2}):(\d{2})\s*([ap])\.?m\.?\s+on\s+(\d{1,2})\s+([A-Za-z]+),?\s+(\d{4})\s*$", re.IGNORECASE
)
_DIA_ID = re.compile(r"^D(\d+):(\d+)$")
_EVIDENCE_TOKEN = re.compile(r"D[^\s,;]*")
_MONTHS = {
    name: number
    for number, names in enumerate(
        [("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"), ("may",), ("june", "jun"),
         ("july", "jul"), ("august", "aug"), ("september", "sep", "sept"), ("october", "oct"),
         ("november", "nov"), ("december", "dec")],
        start=1,
    )
    for name in names
}


def parse_session_datetime(text: str) -> datetime:
    """Parse LoCoMo's session time, e.g. ``"1:56 pm on 8 May, 2023"`` -> 2023-05-08 13:56.

    Raises:
        InvalidInputError: the text is not in that format.
    """
    match = _DATE_TIME.match(text or "")
    if not match:
        raise InvalidInputError(f"not a LoCoMo session date-time: {text!r}")
    hour, minute, half, day, month_name, year = match.groups()
    month = _MONTHS.get(month_name.lower())
    if month is None:
        raise InvalidInputError(f"unknown month {month_name!r} in {text!r}")
    hour_24 = int(hour) % 12 + (12 if half.lower() == "p" else 0)
    try:
        return datetime(int(year), month, int(day), hour_24, int(minute))
    except ValueError as exc:
        raise InvalidInputError(f"invalid date in {text!r}: {exc}") from exc


def _evidence_tokens(raw: Any) -> Iterator[str]:
    if raw is None:
        return
    items = raw if isinstance(raw, list) else [raw]
    for item in items:
        if isinstance(item, list):
            yield from _evidence_tokens(item)
            continue
        text = str(item).strip()
        tokens = _EVIDENCE_TOKEN.findall(text)
        if not tokens and text:
            yield text
        yield from tokens


def parse_evidence(raw: Any, known: Iterable[str] | None = None) -> tuple[list[str], list[str]]:
    """Split raw evidence into (valid dia_ids, invalid strings).

    Joined ids are split on ``;``, ``,`` and whitespace, ``D:11:26`` becomes
    ``D11:26``; with ``known`` (the conversation's dia_ids) an id naming no turn is
    invalid. Order is kept, duplicates dropped.
    """
    known_set = set(known) if known is not None else None
    valid: list[str] = []
    invalid: list[str] = []
    for token in _evidence_tokens(raw):
        candidate = token.rstrip(".")
        if not _DIA_ID.match(candidate):
            repaired = re.sub(r"^D:(\d+):(\d+)$", r"D\1:\2", candidate)
            candidate = repaired if _DIA_ID.match(repaired) else candidate
        ok = _DIA_ID.match(candidate) is not None and (known_set is None or candidate in known_set)
        target = valid if ok else invalid
        if (candidate if ok else token) not in target:
            target.append(candidate if ok else token)
    return valid, invalid


def session_of(dia_id: str) -> int:
    """The session number of a dia_id (``"D3:7"`` -> 3)."""
    match = _DIA_ID.match(dia_id)
    if not match:
        raise InvalidInputError(f"not a dia_id: {dia_id!r}")
    return int(match.group(1))


@dataclass(frozen=True)
class Turn:
    """One utterance. ``img_url`` / ``blip_caption`` are set on turns that share a photo."""

    dia_id: str
    speaker: str
    text: str
    blip_caption: str | None = None
    img_url: tuple[str, ...] = ()
    query: str | None = None

    def rendered(self, *, captions: bool = True) -> str:
        """The turn's text, with its photo caption appended when ``captions``."""
        if captions and self.blip_caption:
            return f"{self.text} [shares a photo: {self.blip_caption}]".strip()
        return self.text


@dataclass(frozen=True)
class Session:
    index: int
    date_time: datetime | None
    date_time_text: str | None
    turns: tuple[Turn, ...]


@dataclass(frozen=True)
class Observation:
    """One observation LoCoMo's authors wrote about a speaker, with its source turns."""

    session: int
    speaker: str
    text: str
    evidence: tuple[str, ...]


@dataclass(frozen=True)
class QA:
    """One question.

    Attributes:
        answer: the gold answer as text (None for category 5 when the file has none).
        adversarial_answer: category 5's distractor answer.
        evidence: dia_ids of the turns that support the answer (repaired).
        invalid_evidence: evidence strings that name no turn of the conversation.
    """

    index: int
    question: str
    category: int
    answer: str | None
    evidence: tuple[str, ...]
    invalid_evidence: tuple[str, ...] = ()
    adversarial_answer: str | None = None

    @property
    def category_name(self) -> str:
        return CATEGORY_NAMES.get(self.category, f"category-{self.category}")

    @property
    def reference(self) -> str | None:
        """The answer the official scorer compares with (category 3: the first ``;`` alternative)."""
        if self.answer is None:
            return None
        return self.answer.split(";")[0].strip() if self.category == 3 else self.answer

    @property
    def evidence_sessions(self) -> set[int]:
        return {session_of(e) for e in self.evidence}


@dataclass(frozen=True)
class Conversation:
    sample_id: str
    speaker_a: str
    speaker_b: str
    sessions: tuple[Session, ...]
    qa: tuple[QA, ...]
    observations: tuple[Observation, ...] = ()
    session_summaries: dict[int, str] = field(default_factory=dict)
    orphan_date_times: dict[int, str] = field(default_factory=dict)

    @property
    def turns(self) -> list[Turn]:
        return [t for s in self.sessions for t in s.turns]

    @property
    def dia_ids(self) -> set[str]:
        return {t.dia_id for s in self.sessions for t in s.turns}

    def role_of(self, speaker: str) -> str:
        """First speaker -> ``user``, second -> ``assistant`` (the paper's mapping)."""
        return "user" if speaker == self.speaker_a else "assistant"


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def _turn(raw: dict[str, Any], sample_id: str) -> Turn:
    try:
        dia_id, speaker = str(raw["dia_id"]), str(raw["speaker"])
    except KeyError as exc:
        raise InvalidInputError(f"{sample_id}: a turn lacks {exc}") from exc
    urls = raw.get("img_url") or []  # a turn without a photo has no URL (not the text "()")
    return Turn(
        dia_id=dia_id,
        speaker=speaker,
        text=_text(raw.get("text")) or "",
        blip_caption=_text(raw.get("blip_caption")) or None,
        img_url=tuple(str(u) for u in urls if u) if isinstance(urls, list) else (str(urls),),
        query=_text(raw.get("query")),
    )


def _observations(raw: Any, known: set[str]) -> list[Observation]:
    out: list[Observation] = []
    if not isinstance(raw, dict):
        return out
    for key, per_speaker in raw.items():
        match = re.match(r"^session_(\d+)_observation$", key)
        if not match or not isinstance(per_speaker, dict):
            continue
        for speaker, items in per_speaker.items():
            for item in items or []:
                if isinstance(item, list) and item:
                    text, evidence = str(item[0]), item[1] if len(item) > 1 else None
                else:
                    text, evidence = str(item), None
                valid, _ = parse_evidence(evidence, known)
                out.append(Observation(int(match.group(1)), speaker, text, tuple(valid)))
    return sorted(out, key=lambda o: o.session)


def parse_locomo(samples: list[dict[str, Any]]) -> list[Conversation]:
    """Build :class:`Conversation` objects from parsed LoCoMo JSON."""
    if not isinstance(samples, list):
        raise InvalidInputError("a LoCoMo file holds a JSON list of samples")
    conversations = []
    for number, sample in enumerate(samples):
        sample_id = str(sample.get("sample_id", f"sample-{number}"))
        conv = sample.get("conversation")
        if not isinstance(conv, dict) or "speaker_a" not in conv or "speaker_b" not in conv:
            raise InvalidInputError(f"{sample_id}: no conversation with speaker_a/speaker_b")
        sessions = []
        for key in conv:
            match = _SESSION_KEY.match(key)
            if not match:
                continue
            index = int(match.group(1))
            stamp = conv.get(f"session_{index}_date_time")
            turns = tuple(_turn(t, sample_id) for t in conv[key] or [])
            sessions.append(Session(index, parse_session_datetime(stamp) if stamp else None, stamp, turns))
        sessions.sort(key=lambda s: s.index)
        have = {s.index for s in sessions}
        orphans = {}
        for key, value in conv.items():
            match = re.match(r"^session_(\d+)_date_time$", key)
            if match and int(match.group(1)) not in have:
                orphans[int(match.group(1))] = str(value)
        known = {t.dia_id for s in sessions for t in s.turns}
        qa = []
        for index, raw in enumerate(sample.get("qa") or []):
            valid, invalid = parse_evidence(raw.get("evidence"), known)
            qa.append(
                QA(
                    index=index,
                    question=str(raw.get("question", "")),
                    category=int(raw.get("category", 0)),
                    answer=_text(raw.get("answer")),
                    evidence=tuple(valid),
                    invalid_evidence=tuple(invalid),
                    adversarial_answer=_text(raw.get("adversarial_answer")),
                )
            )
        summaries = {}
        for key, value in (sample.get("session_summary") or {}).items():
            match = re.match(r"^session_(\d+)_summary$", key)
            if match:
                summaries[int(match.group(1))] = str(value)
        conversations.append(
            Conversation(
                sample_id=sample_id,
                speaker_a=str(conv["speaker_a"]),
                speaker_b=str(conv["speaker_b"]),
                sessions=tuple(sessions),
                qa=tuple(qa),
                observations=tuple(_observations(sample.get("observation"), known)),
                session_summaries=summaries,
                orphan_date_times=orphans,
            )
        )
    return conversations


def load_locomo(path: str | Path) -> list[Conversation]:
    """Load a LoCoMo-format JSON file (see the module docstring for the quirks handled)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"cannot read LoCoMo file {path}: {exc}") from exc
    return parse_locomo(data)

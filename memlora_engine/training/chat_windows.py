"""Chat-shaped extraction windows: one person's turn, then what an assistant app would say.

The distilled extraction examples are LoCoMo's two-turn windows: two named friends,
the second one's reply following up on the first. A LangChain or LlamaIndex app sends
something else: the user's message (named, when the app names the speaker) and its
assistant's reply, which is often a short acknowledgement, or no reply at all when
the turn is added before the answer. The shipped extraction expert reads those badly
(``results/answers/scripts/extraction_replies_probe.py``: twelve stated facts, 12 found
after a follow-up reply, 9 after "Noted.", 3 alone, 0 after "Got it, I will remember
that."). It learned that the reply carries the signal.

This module writes extraction calls in the chat shape from the dev *training*
conversations only, no model needed. Each example takes one LoCoMo turn of a speaker
as the user's message (``role: user``, named by the speaker) and, by ``kind``:

* ``acknowledgement`` -- an unnamed assistant's short reply from
  :data:`ACKNOWLEDGEMENTS`;
* ``alone`` -- no reply;
* ``reply`` -- the other speaker's next turn of the session as an unnamed assistant's
  reply (what the assistant says is not a fact about the user).

The target is the turn's own ``observation`` facts: those whose evidence is that turn
alone. A turn with a fact resting on it *and* on other turns is not used (the target
would be half there); the ``reply`` kind leaves the reply turn's own facts out of the
target (they are the assistant's, not the user's) and counts them. Turns without a fact give ``{"facts": []}``, at most
``empty_share`` of the examples, so the expert keeps chit-chat empty.

Every prompt is the one the engine renders (through a real
:class:`~memlora_engine.Memory`, like the multi-fact windows); targets go through
:func:`~memlora_engine.training.cleaning.clean_output`. Examples mentioning
``memlora demo``'s story are skipped, and the acknowledgements leave out the ones the
probe and the consolidation check use ("Noted.", "Got it ..."), so those stay a measure.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memlora_engine.data.locomo import Conversation, Session, Turn
from memlora_engine.data.splits import require_training
from memlora_engine.errors import ConfigError
from memlora_engine.training.cleaning import clean_output, dump_json
from memlora_engine.training.data import call_chars, record_in_manifest
from memlora_engine.training.multi_fact import ExtractionRenderer, facts_distribution
from memlora_engine.training.synthetic_update import demo_free
from memlora_engine.types import Operation

__all__ = ["ACKNOWLEDGEMENTS", "CHAT_WINDOWS_ID", "KINDS", "ChatWindowExamples", "generate_chat_window_examples",
           "write_chat_windows"]

CHAT_WINDOWS_ID = "chat-windows"
"""The pseudo-conversation id of the examples (``<data>/extraction/chat-windows.jsonl``)."""

KINDS = {"acknowledgement": 0.5, "alone": 0.25, "reply": 0.25}
"""What follows the user's turn, and each kind's share of the examples."""

ACKNOWLEDGEMENTS = (
    "Okay!",
    "Okay, thanks for telling me.",
    "Thanks for sharing that.",
    "Understood, I'll keep that in mind.",
    "Sounds good.",
    "I see.",
    "Thanks, good to know.",
    "Alright!",
    "Cool, thanks for letting me know.",
    "Sure thing.",
    "Makes sense.",
    "I'll make a note of it.",
    "Thank you, that's helpful.",
    "Great, thanks!",
    "Oh, interesting!",
    "Understood.",
)
"""Short assistant replies. Not "Noted." nor "Got it ...": the replies-probe and the
consolidation check use those, so they measure what the expert learned from others."""


@dataclass
class ChatWindowExamples:
    """The examples drawn and what was left out on the way.

    Attributes:
        examples: distillation-format records (``messages``, ``target``, ``raw``, ``context``).
        candidates: turns there were to draw from.
        skipped: turns not used, per reason (``partial_fact``: a fact rests on the turn
            and on another one; ``no_reply``: ``reply`` kind but the session has no
            next turn of the other speaker; ``empty_quota``: a turn without a fact once
            ``empty_share`` is reached; ``demo_story``, ``too_long``, ``no_text``).
        reply_dropped_facts: facts resting on the reply turn, left out of ``reply`` targets.
    """

    examples: list[dict[str, Any]] = field(default_factory=list)
    candidates: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    reply_dropped_facts: int = 0


def _turn_facts(conversation: Conversation) -> dict[str, list[str] | None]:
    """Each turn's own facts (evidence that turn alone); None where a fact also rests on other turns."""
    valid = conversation.dia_ids
    facts: dict[str, list[str] | None] = {d: [] for d in valid}
    for obs in conversation.observations:
        known = [e for e in obs.evidence if e in valid]
        text = " ".join(obs.text.split())
        if not known or not text:
            continue
        if len(set(known)) > 1:
            for dia_id in known:
                facts[dia_id] = None
            continue
        own = facts[known[0]]
        if own is not None and text not in own:
            own.append(text)
    return facts


def generate_chat_window_examples(conversations: Sequence[Conversation], count: int, *, seed: int = 0,
                                  empty_share: float = 0.3, max_chars: int = 2000,
                                  captions: bool = True) -> ChatWindowExamples:
    """Up to ``count`` chat-shaped extraction examples (fewer when the turns run out).

    Turns are shuffled; each is used at most once, with a kind drawn by
    :data:`KINDS`'s shares.

    Args:
        conversations: dev *training* conversations (with observations).
        count: how many examples (calls) to write.
        seed: the same seed, conversations and count give the same examples.
        empty_share: at most this share of the examples has no fact.
        max_chars: prompt + target characters per example.
        captions: photo captions in the turns, as ``memlora distill`` (default) renders them.

    Raises:
        ConfigError: a validation or test conversation of the dev split was given, or a
            share outside [0, 1].
    """
    require_training(conversations, "the chat-window extraction data")
    if not 0.0 <= empty_share <= 1.0:
        raise ConfigError(f"empty_share must be in [0, 1], got {empty_share}")
    candidates: list[tuple[Conversation, Session, int]] = [
        (c, s, i) for c in conversations for s in c.sessions if s.date_time is not None for i in range(len(s.turns))]
    result = ChatWindowExamples(candidates=len(candidates))
    own = {c.sample_id: _turn_facts(c) for c in conversations}
    rng = random.Random(seed)
    rng.shuffle(candidates)
    kinds, weights = list(KINDS), list(KINDS.values())
    skipped: Counter[str] = Counter()
    empty = 0
    renderer = ExtractionRenderer(captions)
    try:
        for conversation, session, index in candidates:
            if len(result.examples) >= count:
                break
            kind = rng.choices(kinds, weights)[0]
            turn = session.turns[index]
            facts = own[conversation.sample_id][turn.dia_id]
            if facts is None:
                skipped["partial_fact"] += 1
                continue
            if not facts and empty >= empty_share * count:
                skipped["empty_quota"] += 1
                continue
            messages: list[dict[str, Any]] = [{"role": "user", "name": turn.speaker,
                                               "content": turn.rendered(captions=captions)}]
            reply: Turn | None = None
            if kind == "acknowledgement":
                messages.append({"role": "assistant", "content": rng.choice(ACKNOWLEDGEMENTS)})
            elif kind == "reply":
                reply = next((t for t in session.turns[index + 1:] if t.speaker != turn.speaker), None)
                if reply is None:
                    skipped["no_reply"] += 1
                    continue
                messages.append({"role": "assistant", "content": reply.rendered(captions=captions)})
            raw = dump_json({"facts": facts})
            target = clean_output(Operation.EXTRACTION, raw)
            prompt = renderer.render_messages(messages, session)
            if prompt is None:
                skipped["no_text"] += 1
                continue
            if not demo_free(json.dumps(prompt, ensure_ascii=False) + raw):
                skipped["demo_story"] += 1
                continue
            if call_chars(prompt, target) > max_chars:
                skipped["too_long"] += 1
                continue
            if reply is not None:
                result.reply_dropped_facts += len(own[conversation.sample_id][reply.dia_id] or [])
            empty += not facts
            result.examples.append({
                "id": f"{CHAT_WINDOWS_ID}/{Operation.EXTRACTION.value}/{len(result.examples)}",
                "operation": Operation.EXTRACTION.value,
                "conversation": CHAT_WINDOWS_ID,
                "messages": prompt,
                "target": target,
                "raw": raw,
                "context": {"source": conversation.sample_id, "session": session.index, "kind": kind,
                            "dia_ids": [turn.dia_id] + ([reply.dia_id] if reply is not None else [])},
            })
    finally:
        renderer.close()
    result.skipped = dict(sorted(skipped.items()))
    return result


def write_chat_windows(out_dir: str | Path, conversations: Sequence[Conversation], count: int, *, seed: int = 0,
                       empty_share: float = 0.3, captions: bool = True) -> dict[str, Any]:
    """Write up to ``count`` chat-window examples into the distillation cache; return their statistics.

    Writes ``<out_dir>/extraction/chat-windows.jsonl`` (``memlora train extraction
    --with-chat-windows``), the statistics to ``chat-windows.stats.json`` beside it and
    into ``manifest.json`` (``"chat_windows"`` -> ``"extraction"``).
    """
    out = Path(out_dir)
    drawn = generate_chat_window_examples(conversations, count, seed=seed, empty_share=empty_share, captions=captions)
    path = out / Operation.EXTRACTION.value / f"{CHAT_WINDOWS_ID}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in drawn.examples), encoding="utf-8")
    stats = {
        "count": len(drawn.examples), "requested": count, "seed": seed, "empty_share": empty_share,
        "captions": captions, "conversations": [c.sample_id for c in conversations],
        "candidates": drawn.candidates, "skipped": drawn.skipped,
        "kinds": dict(Counter(str(r["context"]["kind"]) for r in drawn.examples)),
        "reply_dropped_facts": drawn.reply_dropped_facts,
        "facts": facts_distribution(drawn.examples),
    }
    path.with_suffix(".stats.json").write_text(json.dumps(stats, indent=1), encoding="utf-8")
    record_in_manifest(out, "chat_windows", Operation.EXTRACTION,
                       {k: stats[k] for k in ("count", "seed", "empty_share", "captions", "conversations")})
    return stats

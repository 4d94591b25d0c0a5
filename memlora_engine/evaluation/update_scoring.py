"""Scoring for the update benchmark (``memlora eval update``): pure functions, no model.

A case is right when the multiset of changes the update step would apply equals the
gold one: ``(event, id)`` pairs over ADD, UPDATE and DELETE, with ADD's id ignored
(``("ADD", None)``: a new memory has no old id) and NONE left out (it changes
nothing). Output that cannot be parsed is wrong, whatever the gold.

The confusion matrix is per decision. Each gold decision is paired with what the
model did about it:

1. a gold decision on an old memory (UPDATE, DELETE, NONE) takes the UPDATE or
   DELETE the model applied to that id;
2. the model's ADDs go to the gold ADDs first, then, in case order, to gold
   decisions whose memory the model left alone (a refinement or a repeat ADDed as
   new is ``UPDATE -> ADD`` or ``NONE -> ADD``);
3. a gold ADD still unpaired takes an UPDATE the model applied to a memory no gold
   decision names (the new fact written over an unrelated memory);
4. any gold decision left is ``-> NONE``: nothing changed for it (an explicit NONE
   and silence have the same effect, so they count alike);
5. predictions left over form the row ``-`` (no gold decision asked for them), and
   a case whose output could not be parsed puts all its gold decisions in ``FAILED``.

Recall of an event is its diagonal cell over its row; precision is the diagonal
over its column (the ``-`` row included).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "COLUMNS",
    "EVENTS",
    "FAILED",
    "NO_GOLD",
    "ROWS",
    "CaseScore",
    "Decision",
    "align",
    "changes",
    "exact_match",
    "format_summary",
    "summarize",
]

EVENTS = ("ADD", "UPDATE", "DELETE", "NONE")
NO_GOLD = "-"  # matrix row: a change no gold decision asked for
FAILED = "FAILED"  # matrix column: the output could not be parsed
ROWS = (*EVENTS, NO_GOLD)
COLUMNS = (*EVENTS, FAILED)
_CHANGES = ("ADD", "UPDATE", "DELETE")


@dataclass(frozen=True)
class Decision:
    """One decision: an event and, except for ADD, the model id of the old memory it acts on."""

    event: str
    id: str | None = None


@dataclass(frozen=True)
class CaseScore:
    """What the scorer needs from one case: gold, the applied changes (None: unparsable), rejected ops."""

    gold: tuple[Decision, ...]
    predicted: tuple[Decision, ...] | None
    rejected: int = 0


def changes(decisions: Sequence[Decision]) -> Counter[tuple[str, str | None]]:
    """The multiset of ``(event, id)`` changes: NONE dropped, ADD's id ignored."""
    return Counter((d.event, None if d.event == "ADD" else d.id) for d in decisions if d.event in _CHANGES)


def exact_match(gold: Sequence[Decision], predicted: Sequence[Decision] | None) -> bool:
    """True when ``predicted`` applies exactly the gold changes (unparsable output: False)."""
    return predicted is not None and changes(gold) == changes(predicted)


def align(gold: Sequence[Decision], predicted: Sequence[Decision] | None) -> list[tuple[str, str]]:
    """``(gold event, predicted event)`` pairs for one case (the rules in the module docstring)."""
    if predicted is None:
        return [(g.event, FAILED) for g in gold]
    acting = {d.id: d.event for d in predicted if d.event in ("UPDATE", "DELETE")}
    gold_ids = {g.id for g in gold if g.event != "ADD"}
    stray = [d.event for d in predicted if d.event in ("UPDATE", "DELETE") and d.id not in gold_ids]
    adds = sum(d.event == "ADD" for d in predicted)
    pairs: list[tuple[str, str]] = []
    unpaired: list[Decision] = []
    for g in gold:
        if g.event != "ADD" and g.id in acting:
            pairs.append((g.event, acting[g.id]))
        else:
            unpaired.append(g)
    unpaired.sort(key=lambda g: g.event != "ADD")  # stable: gold ADDs first, then case order
    left: list[Decision] = []
    for g in unpaired:
        if adds:
            pairs.append((g.event, "ADD"))
            adds -= 1
        else:
            left.append(g)
    for g in left:
        if g.event == "ADD" and "UPDATE" in stray:
            stray.remove("UPDATE")
            pairs.append(("ADD", "UPDATE"))
        else:
            pairs.append((g.event, "NONE"))
    pairs += [(NO_GOLD, "ADD")] * adds + [(NO_GOLD, event) for event in stray]
    return pairs


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def summarize(cases: Sequence[CaseScore]) -> dict[str, Any]:
    """Exact-match rate, the confusion matrix, per-event recall and precision, failure counts."""
    matrix = {row: dict.fromkeys(COLUMNS, 0) for row in ROWS}
    exact = 0
    for case in cases:
        exact += exact_match(case.gold, case.predicted)
        for gold_event, predicted_event in align(case.gold, case.predicted):
            matrix[gold_event][predicted_event] += 1
    per_event: dict[str, dict[str, Any]] = {}
    for event in EVENTS:
        row = sum(matrix[event].values())
        column = sum(matrix[r][event] for r in ROWS)
        hit = matrix[event][event]
        per_event[event] = {"gold": row, "predicted": column, "correct": hit,
                            "recall": _ratio(hit, row), "precision": _ratio(hit, column)}
    return {
        "cases": len(cases),
        "exact": exact,
        "exact_match": _ratio(exact, len(cases)),
        "parse_failures": sum(case.predicted is None for case in cases),
        "rejected_ops": sum(case.rejected for case in cases),
        "cases_with_rejections": sum(case.rejected > 0 for case in cases),
        "per_event": per_event,
        "confusion": matrix,
    }


def _pct(value: float | None) -> str:
    return "  n/a" if value is None else f"{100 * value:5.1f}"


def format_summary(summary: dict[str, Any], name: str = "") -> str:
    """The summary as plain-text tables (exact match, per-event recall/precision, confusion matrix)."""
    rate = summary["exact_match"]
    lines = [
        f"{name + ': ' if name else ''}exact match {summary['exact']}/{summary['cases']} = {_pct(rate).strip()} %"
        f" | parse failures {summary['parse_failures']} | rejected ops {summary['rejected_ops']}"
        f" (in {summary['cases_with_rejections']} cases)",
        f"  {'event':<7} {'gold':>5} {'pred':>5} {'recall %':>9} {'precision %':>12}",
    ]
    for event, stats in summary["per_event"].items():
        lines.append(f"  {event:<7} {stats['gold']:>5} {stats['predicted']:>5} {_pct(stats['recall']):>9}"
                     f" {_pct(stats['precision']):>12}")
    lines.append("  confusion (rows: gold, columns: predicted)")
    lines.append("  " + f"{'':<7}" + "".join(f"{c:>8}" for c in COLUMNS))
    for row, counts in summary["confusion"].items():
        lines.append("  " + f"{row:<7}" + "".join(f"{counts[c]:>8}" for c in COLUMNS))
    return "\n".join(lines)

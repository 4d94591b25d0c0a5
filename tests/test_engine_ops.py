"""Validation of update ops: id remapping and rejection, table-driven."""

from __future__ import annotations

import pytest

from memlora_engine.ops import fact_into_unchanged_update, plan_operations
from memlora_engine.parsing import RawOp
from memlora_engine.types import Event, MemoryRecord


def _record(id_: str, text: str) -> MemoryRecord:
    return MemoryRecord(id=id_, text=text, hash="h", created_at="2026-01-01T00:00:00+00:00", user_id="u")


ID_MAP = {"0": _record("uuid-tea", "Likes tea"), "1": _record("uuid-oslo", "Lives in Oslo")}


@pytest.mark.parametrize(
    ("ops", "planned", "reasons"),
    [
        ([RawOp("7", "Has a dog", "ADD", None)], [(Event.ADD, "Has a dog", None)], []),
        ([RawOp("0", "Likes green tea", "UPDATE", "Likes tea")], [(Event.UPDATE, "Likes green tea", "uuid-tea")], []),
        ([RawOp("1", "Lives in Oslo", "delete", None)], [(Event.DELETE, "Lives in Oslo", "uuid-oslo")], []),
        ([RawOp("0", "Likes tea", "NONE", None)], [], []),
        # an UPDATE that changes nothing is a NONE, not a write
        ([RawOp("0", "Likes tea", "UPDATE", None)], [], []),
        # rejections: unknown id (including a real id the model must never see), missing text, bad event
        ([RawOp("9", "x", "UPDATE", None)], [], ["unknown_id"]),
        ([RawOp("uuid-tea", "x", "UPDATE", None)], [], ["unknown_id"]),
        ([RawOp("uuid-of-another-user", None, "DELETE", None)], [], ["unknown_id"]),
        ([RawOp("0", None, "UPDATE", None)], [], ["missing_text"]),
        ([RawOp("0", "", "UPDATE", None)], [], ["missing_text"]),
        ([RawOp(None, None, "ADD", None)], [], ["missing_text"]),
        ([RawOp("0", "x", "MERGE", None)], [], ["unknown_event"]),
        ([RawOp(None, None, None, None)], [], ["unknown_event"]),
        # two ops on one memory: the first wins
        (
            [RawOp("0", "Likes coffee", "UPDATE", None), RawOp("0", None, "DELETE", None)],
            [(Event.UPDATE, "Likes coffee", "uuid-tea")],
            ["conflicting_op"],
        ),
        # the same ADD twice is planned once
        ([RawOp("5", "Has a dog", "ADD", None), RawOp("6", "Has a dog", "ADD", None)], [(Event.ADD, "Has a dog", None)], []),
    ],
)
def test_plan_operations(ops, planned, reasons) -> None:
    got, rejected = plan_operations(ops, ID_MAP)
    assert [(p.event, p.text, p.target.id if p.target else None) for p in got] == planned
    assert [r.reason for r in rejected] == reasons


LISTING = [ID_MAP["0"], ID_MAP["1"]]


@pytest.mark.parametrize(
    ("fact", "ops", "read"),
    [
        # the model named the memory the fact changes and copied its text: the fact is the UPDATE's text
        ("Moved to Bergen", [RawOp("1", "Lives in Oslo", "UPDATE", "Lives in Oslo")],
         [RawOp("1", "Moved to Bergen", "UPDATE", "Lives in Oslo")]),
        # the fact is the memory already: nothing to read (the UPDATE is a NONE)
        ("Lives in Oslo", [RawOp("1", "Lives in Oslo", "UPDATE", None)], None),
        # another op decides the fact: the unchanged UPDATE stays a NONE
        ("Moved to Bergen", [RawOp("1", "Lives in Oslo", "UPDATE", None), RawOp("2", "Moved to Bergen", "ADD", None)],
         None),
        ("Likes green tea", [RawOp("1", "Lives in Oslo", "UPDATE", None), RawOp("0", "Likes green tea", "UPDATE", None)],
         None),
        # an UPDATE that changes its memory, a NONE, an ADD of the old text: not an unchanged UPDATE
        ("Moved to Bergen", [RawOp("1", "Moved to Bergen", "UPDATE", None)], None),
        ("Moved to Bergen", [RawOp("1", "Lives in Oslo", "NONE", None)], None),
        ("Moved to Bergen", [RawOp("2", "Lives in Oslo", "ADD", None)], None),
        # an id outside the listing, or two unchanged UPDATEs (which memory?): left to the other checks
        ("Moved to Bergen", [RawOp("5", "Lives in Oslo", "UPDATE", None)], None),
        ("Moved to Bergen", [RawOp("0", "Likes tea", "UPDATE", None), RawOp("1", "Lives in Oslo", "UPDATE", None)],
         None),
    ],
    ids=["copied-text", "repeat", "added-too", "other-update", "real-update", "none", "readd", "unknown-id",
         "two-unchanged"],
)
def test_fact_into_unchanged_update(fact, ops, read) -> None:
    assert fact_into_unchanged_update(fact, ops, LISTING) == read

"""Parsing what small models emit: table-driven."""

from __future__ import annotations

import pytest

from memlora_engine.errors import ModelOutputError
from memlora_engine.parsing import RawOp, collapse_repeated_items, parse_facts, parse_update_ops, strip_thinking


@pytest.mark.parametrize(
    ("raw", "facts"),
    [
        ('{"facts": ["Likes tea", "Lives in Oslo"]}', ["Likes tea", "Lives in Oslo"]),
        ('{"facts": []}', []),
        ("<think>the user said tea {\"facts\": [\"wrong\"]}</think>{\"facts\": [\"Likes tea\"]}", ["Likes tea"]),
        ("reasoning first</think>\n{\"facts\": [\"Likes tea\"]}", ["Likes tea"]),
        ('```json\n{"facts": ["Likes tea"]}\n```', ["Likes tea"]),
        ('Sure! Here you go: {"facts": ["Likes tea"]} Hope this helps.', ["Likes tea"]),
        ("{'facts': ['Likes tea']}", ["Likes tea"]),
        ('["Likes tea", "Has a dog"]', ["Likes tea", "Has a dog"]),
        ('{"facts": ["Likes tea", "Has a d', ["Likes tea"]),  # cut mid-string: fragment dropped
        ('{"facts": ["Likes tea", "Has a dog"', ["Likes tea", "Has a dog"]),  # cut after a whole item
        ('{"facts": ["  Likes   tea ", "Likes tea", "", 42, null, {"x": 1}, true]}', ["Likes tea", "42"]),
    ],
)
def test_parse_facts_recovers(raw: str, facts: list[str]) -> None:
    assert parse_facts(raw) == facts


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "I could not find any facts.",
        "<think>still thinking when the tokens ran out {\"facts\": [\"x\"]}",
        '{"memories": ["Likes tea"]}',
        '{"facts": "Likes tea"}',
        "\x00\x01\x02",
    ],
)
def test_parse_facts_rejects_unusable_output_keeping_raw(raw: str) -> None:
    with pytest.raises(ModelOutputError) as info:
        parse_facts(raw)
    assert info.value.raw == raw
    assert info.value.operation == "extraction"


@pytest.mark.parametrize(
    ("raw", "ops"),
    [
        (
            '{"memory": [{"id": "0", "text": "Likes green tea", "event": "UPDATE", "old_memory": "Likes tea"}]}',
            [RawOp("0", "Likes green tea", "UPDATE", "Likes tea")],
        ),
        ('[{"id": 1, "text": "x", "event": "add"}]', [RawOp("1", "x", "add", None)]),
        ('{"memory": [{"id": "0", "text": "a", "event": "NONE"}, "junk"]}',
         [RawOp("0", "a", "NONE", None), RawOp(None, None, None, None)]),
        ('{"memory": [{"id": "0", "text": "a", "event": "ADD"}, {"id": "1", "text": "Loves ch',
         [RawOp("0", "a", "ADD", None)]),
        ('{"memory": []}', []),
    ],
)
def test_parse_update_ops(raw: str, ops: list[RawOp]) -> None:
    assert parse_update_ops(raw) == ops


@pytest.mark.parametrize("raw", ["no json here", '{"facts": []}', '{"memory": {"id": "0"}}'])
def test_parse_update_ops_rejects(raw: str) -> None:
    with pytest.raises(ModelOutputError) as info:
        parse_update_ops(raw)
    assert info.value.raw == raw


def test_strip_thinking_keeps_text_outside_blocks() -> None:
    assert strip_thinking("<THINKING>x</THINKING>{}") == "{}"
    assert strip_thinking('{"a": 1}') == '{"a": 1}'


@pytest.mark.parametrize(
    ("text", "collapsed", "looped"),
    [
        ("Bach, Mozart", "Bach, Mozart", False),  # a list: as it is
        ("red, green, blue.", "red, green, blue.", False),
        ("Lisbon", "Lisbon", False),
        ("fish, chicken, fish, chicken, fish, chicken,", "fish, chicken", True),  # cut at a separator
        ("painting, drawing, painting, drawing, painting, pai", "painting, drawing", True),  # cut inside an item
        ("a bowl, a bowl with a lid, a bowl with a lid, a bowl wi", "a bowl, a bowl with a lid", True),
        ("Kind; caring; Caring;  caring", "Kind, caring", True),  # case, spacing, semicolons
        ("music, art, music, jazz", "music, art, jazz", True),  # a last item never written before is kept
    ],
)
def test_collapse_repeated_items(text: str, collapsed: str, looped: bool) -> None:
    assert collapse_repeated_items(text) == (collapsed, looped)

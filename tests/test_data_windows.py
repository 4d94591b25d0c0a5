"""Session windows: how a LoCoMo conversation is cut into ``Memory.add`` calls (shared by training and evaluation)."""

from __future__ import annotations

from typing import Any

from memlora_engine.data import Turn, parse_locomo, session_windows, window_messages


def _conversation(turn_count: int = 5) -> Any:
    speakers = ("Ana", "Ben")
    turns = [
        {"speaker": speakers[i % 2], "dia_id": f"D1:{i + 1}", "text": f"line {i + 1}"} for i in range(turn_count)
    ]
    turns[2].update(img_url=["http://example.invalid/a.jpg"], blip_caption="a photo of tomatoes")
    sample = {
        "sample_id": "syn",
        "conversation": {"speaker_a": "Ana", "speaker_b": "Ben", "session_1_date_time": "9:05 am on 3 March, 2024",
                         "session_1": turns, "session_2": []},
        "qa": [],
    }
    return parse_locomo([sample])[0]


def test_session_windows_take_two_turns_at_a_time_the_last_may_hold_one() -> None:
    conv = _conversation(5)
    windows = [tuple(t.dia_id for t in w) for w in session_windows(conv.sessions[0])]
    assert windows == [("D1:1", "D1:2"), ("D1:3", "D1:4"), ("D1:5",)]
    assert list(session_windows(conv.sessions[1])) == []  # a session without turns has no window


def test_window_messages_map_speakers_to_roles_and_keep_names() -> None:
    conv = _conversation(4)
    messages = window_messages(conv, conv.sessions[0].turns[:2])
    assert messages == [
        {"role": "user", "content": "line 1", "name": "Ana"},
        {"role": "assistant", "content": "line 2", "name": "Ben"},
    ]


def test_window_messages_append_the_photo_caption_unless_told_not_to() -> None:
    conv = _conversation(4)
    turns = conv.sessions[0].turns[2:4]
    with_captions = window_messages(conv, turns)
    assert with_captions[0]["content"] == "line 3 [shares a photo: a photo of tomatoes]"
    assert with_captions[1]["content"] == "line 4"
    assert window_messages(conv, turns, captions=False)[0]["content"] == "line 3"


def test_image_content_replaces_only_turns_that_share_a_photo() -> None:
    conv = _conversation(4)
    seen: list[Turn] = []

    def parts(turn: Turn) -> list[dict[str, Any]]:
        seen.append(turn)
        return [{"type": "text", "text": turn.text}, {"type": "image", "image": "a.jpg", "caption": None}]

    messages = window_messages(conv, conv.sessions[0].turns[2:4], image_content=parts)
    assert messages[0]["content"] == [{"type": "text", "text": "line 3"},
                                      {"type": "image", "image": "a.jpg", "caption": None}]
    assert messages[1]["content"] == "line 4"
    assert [t.dia_id for t in seen] == ["D1:3"]

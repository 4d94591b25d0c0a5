"""``memlora bench``'s context measures: quantiles, bandwidth, the turns it ingests."""

from __future__ import annotations

import pytest

from memlora_engine.commands._bench_compare import _turns, memory_bandwidth_gbs, percentile
from memlora_engine.commands.demo import SESSIONS


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [
        ([3.0], 0.95, 3.0),
        ([1.0, 2.0, 3.0, 4.0], 0.5, 2.0),
        ([float(i) for i in range(1, 21)], 0.95, 19.0),
        ([float(i) for i in range(1, 101)], 0.95, 95.0),
        ([5.0, 1.0, 4.0, 2.0, 3.0], 1.0, 5.0),
    ],
)
def test_percentile_is_nearest_rank(values, fraction, expected):
    assert percentile(values, fraction) == expected


def test_memory_bandwidth_is_positive():
    assert memory_bandwidth_gbs(mib=4, repeat=2) > 0


def test_turns_cover_every_message_once_and_start_with_the_user():
    turns = _turns()
    assert [m for _, messages in turns for m in messages] == [m for _, messages in SESSIONS for m in messages]
    assert all(messages[0]["role"] == "user" for _, messages in turns)
    assert len(turns) > len(SESSIONS)

"""Four writer processes and a forgetting process on one embedded store (issue #19).

After every round: the store is not corrupt (``PRAGMA integrity_check`` from a child
process), every scope's ``get_all`` equals an exhaustive search and every new memory
is found by a search for its own text, and no file of the data directory holds a
byte of any forgotten round's text, after reads of the other scopes. At the end:
nothing lost, nothing doubled, store == history (``_adversary.run_adversary``).
``MEMLORA_RELIABILITY_TRIALS`` sets the rounds (default 2); ``figures.py`` runs the
issue's long figures and records the counters.
"""

from __future__ import annotations

from pathlib import Path

from _adversary import FAILURES, run_adversary
from rel_helpers import trials


def test_writers_beside_a_forgetter(data_dir: Path) -> None:
    counters = run_adversary(data_dir, trials(2))
    assert counters["rounds_done"] == counters["rounds"], counters["errors"]
    assert {k: counters[k] for k in FAILURES if counters[k]} == {}, counters
    assert counters["memories"] > 0

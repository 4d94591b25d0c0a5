"""kill -9 in the middle of writes, many times: after restart nothing acknowledged is lost,
no batch is half-applied, and the store and the audit history agree."""

from __future__ import annotations

import json
import os
import random
import signal
import time

from rel_helpers import assert_consistent, files_containing, open_memory, trials, worker

from memlora_engine.repository import FAULT_POINTS


def _check(data_dir, ack_log) -> int:
    memory = open_memory(data_dir)  # recovers interrupted batches
    try:
        assert_consistent(memory)
        history = memory.history_store._db.query("SELECT memory_id, event, new_text FROM history")
        seen = {(m, e, t) for m, e, t in history}
        acked = [json.loads(line) for line in ack_log.read_text().splitlines()] if ack_log.exists() else []
        for record in acked:
            if "forgot" in record:  # an acknowledged forget leaves nothing, anywhere on disk
                assert memory.get_all(user_id=record["forgot"]) == []
                assert files_containing(data_dir, record["token"].encode()) == []
                continue
            for event in record["events"]:  # every acknowledged change is in the audit trail
                assert (event["id"], event["event"], event["text"] if event["event"] != "DELETE" else None) in seen
        # no half-applied batch: a token's two facts were added together or not at all
        tokens: dict[str, set[str]] = {}
        for _, event, text in history:
            if event == "ADD" and text and " fact " in text:
                tok, _, which = text.rpartition(" fact ")
                tokens.setdefault(tok, set()).add(which)
        assert all(v == {"a", "b"} for v in tokens.values()), tokens
        return len(acked)
    finally:
        memory.close()


def test_kill_9_at_random_moments(data_dir, tmp_path) -> None:
    rng = random.Random(int(os.environ.get("MEMLORA_RELIABILITY_SEED", "7")))
    ack_log = tmp_path / "acks.jsonl"
    acked = 0
    for _ in range(trials(12)):
        proc = worker("crash", str(data_dir), str(ack_log))
        if rng.random() < 0.2:
            time.sleep(rng.uniform(0.0, 2.0))  # during start-up and recovery of the last crash
        else:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            time.sleep(rng.uniform(0.0, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        acked = _check(data_dir, ack_log)
    assert acked > 0  # the children did get work done between kills


def test_faults_injected_between_write_steps(data_dir, tmp_path) -> None:
    rng = random.Random(11)
    ack_log = tmp_path / "acks.jsonl"
    for trial in range(trials(12)):
        point = FAULT_POINTS[trial % len(FAULT_POINTS)]
        proc = worker("crash", str(data_dir), str(ack_log), f"{point}:{rng.randint(1, 4)}")
        try:
            proc.communicate(timeout=120)
        finally:
            proc.kill()
        assert proc.returncode == 137, f"fault point {point} never reached"
        _check(data_dir, ack_log)

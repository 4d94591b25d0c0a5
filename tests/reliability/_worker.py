"""A worker process for the reliability tests (run as a script, never imported by pytest).

    _worker.py mixed DIR NAME N     concurrent adds/updates/deletes/searches; prints a JSON summary
    _worker.py crash DIR ACKLOG [POINT:N]
                                    adds forever (until killed), logging each acknowledged add;
                                    with POINT:N, dies like kill -9 the Nth time a write reaches
                                    POINT (one of memlora_engine.repository.FAULT_POINTS)
"""

from __future__ import annotations

import json
import os
import re
import sys

from memlora_engine import Memory, MemoryConfig
from memlora_engine.generator import GenerationRequest
from memlora_engine.repository import FAULT_POINTS, FaultHook
from memlora_engine.testing import DeterministicEmbedder, ScriptedGenerator

_TOKEN = re.compile(r"tok-\d+-\d+")


def _prompt(request: GenerationRequest) -> str:
    return "\n".join(str(m.get("content", "")) for m in request.messages)


def _extract(request: GenerationRequest) -> str:
    tok = _TOKEN.findall(_prompt(request))[-1]
    return json.dumps({"facts": [f"{tok} fact a", f"{tok} fact b"]})


def _update(request: GenerationRequest) -> str:
    prompt = _prompt(request)
    tok = _TOKEN.findall(prompt)[-1]
    ops = [{"id": "0", "text": f"{tok} updated", "event": "UPDATE"}, {"id": "1", "text": "", "event": "DELETE"}]
    ops += [{"id": "new", "text": f"{tok} fact {x}", "event": "ADD"} for x in "ab"]
    return json.dumps({"memory": ops})


def die_at(spec: str) -> FaultHook:
    """A fault hook that exits the process with 137 (no cleanup) the Nth time it hears POINT."""
    point, _, nth = spec.partition(":")
    if point not in FAULT_POINTS:
        raise SystemExit(f"unknown fault point {point!r}; one of {FAULT_POINTS}")
    hits = 0

    def hook(reached: str) -> None:
        nonlocal hits
        if reached == point:
            hits += 1
            if hits >= int(nth or 1):
                os._exit(137)

    return hook


def crash(data_dir: str, ack_log: str, fault: str | None = None) -> None:
    gen = ScriptedGenerator({"extraction": _extract, "update": _update})
    memory = Memory(MemoryConfig(data_dir=data_dir), generator=gen, embedder=DeterministicEmbedder(384),
                    faults=die_at(fault) if fault else None)
    ack = open(ack_log, "a", encoding="utf-8")
    print("ready", flush=True)

    def log(record: dict) -> None:
        ack.write(json.dumps(record) + "\n")
        ack.flush()
        os.fsync(ack.fileno())

    pid = os.getpid()
    for i in range(10**9):
        tok = f"tok-{pid}-{i}"
        if i % 6 == 5:  # a scope that is created, then forgotten
            side = f"side-{pid}-{i}"
            memory.add(f"{tok} secret of {side}", user_id=side, infer=False)
            memory.append_chat("s", f"{tok} chat of {side}", user_id=side)
            memory.delete_all(user_id=side)
            log({"forgot": side, "token": tok})
            continue
        result = memory.add(f"user: remember {tok}", user_id=f"u{i % 3}")
        log({"token": tok, "user": f"u{i % 3}", "events": [e.to_dict() for e in result]})


def mixed(data_dir: str, name: str, count: int) -> None:
    memory = Memory(MemoryConfig(data_dir=data_dir), generator=ScriptedGenerator({}), embedder=DeterministicEmbedder(384))
    summary: dict = {"added": {}, "deleted": [], "updated": {}, "common": [], "misses": 0}
    for i in range(count):
        text = f"{name} item{i} marker{name}{i}"
        (event,) = memory.add(text, user_id="shared", infer=False)
        summary["added"][event.id] = text
        own = memory.add(text, user_id=name, infer=False).events[0]
        summary["common"] += [e.id for e in memory.add(f"common fact {i % 7}", user_id="shared", infer=False)]
        # An exhaustive search (limit past the collection size): the test embedder's
        # hashed bag of words makes some texts orthogonal to every other one, and on
        # such a plateau HNSW's greedy top-3 can miss the only match (about 1 query
        # in 300 at 200 rounds), which is index recall, not a stale view.
        hits = memory.search(text, user_id="shared", limit=100_000)
        summary["misses"] += not any(h.id == event.id for h in hits)
        if i % 3 == 0:
            memory.update(own.id, text + " revised", user_id=name)
            summary["updated"][own.id] = text + " revised"
        if i % 5 == 4:
            memory.delete(event.id, user_id="shared")
            summary["deleted"].append(event.id)
    print(json.dumps(summary))


if __name__ == "__main__":
    mode, *rest = sys.argv[1:]
    if mode == "crash":
        crash(*rest)
    elif mode == "mixed":
        mixed(rest[0], rest[1], int(rest[2]))
    else:
        raise SystemExit(f"unknown mode {mode}")

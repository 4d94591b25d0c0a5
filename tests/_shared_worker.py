"""A worker process of the server-mode tests (run as a script, never imported by pytest).

    _shared_worker.py CONFIG_JSON write            add a fact and a chat turn for alice; prints the memory id
    _shared_worker.py CONFIG_JSON update ID        update that memory; prints alice's chat session
    _shared_worker.py CONFIG_JSON dup AT N         at time AT, add N facts twice (as given, then inferred)
                                                   to one scope; prints the events

CONFIG_JSON is a MemoryConfig as a dict.
"""

from __future__ import annotations

import json
import sys
import time

from memlora_engine import Memory, MemoryConfig
from memlora_engine.generator import GenerationRequest
from memlora_engine.testing import DeterministicEmbedder, ScriptedGenerator


def _facts(n: int) -> list[str]:
    return [f"Shared fact number {i}" for i in range(n)]


def main(config: dict, mode: str, *args: str) -> None:
    n = int(args[1]) if mode == "dup" else 0

    def update(request: GenerationRequest) -> str:
        # Always ADD every fact: only the engine's duplicate checks can keep it stored once.
        return json.dumps({"memory": [{"id": "new", "text": f, "event": "ADD"} for f in _facts(n)]})

    script = {"extraction": ['{"facts": ["Lives in Oslo"]}'] if mode != "dup" else [json.dumps({"facts": _facts(n)})],
              "update": update}
    memory = Memory(MemoryConfig.from_dict(config), generator=ScriptedGenerator(script),
                    embedder=DeterministicEmbedder())
    if mode == "write":
        (event,) = memory.add("I live in Oslo", user_id="alice")
        memory.append_chat("s1", [{"role": "user", "content": "hi from A"}], user_id="alice")
        print(json.dumps({"id": event.id}))
    elif mode == "update":
        memory.update(args[0], "Lives in Bergen", user_id="alice")
        print(json.dumps({"chat": memory.chat_messages("s1", user_id="alice")}))
    elif mode == "dup":
        time.sleep(max(0.0, float(args[0]) - time.time()))
        events = []
        for fact in _facts(n):
            events += [e.to_dict() for e in memory.add(fact, user_id="dup", infer=False)]
        events += [e.to_dict() for e in memory.add("user: the facts again", user_id="dup")]
        print(json.dumps({"events": events}))
    else:
        raise SystemExit(f"unknown mode {mode}")
    memory.close()


if __name__ == "__main__":
    main(json.loads(sys.argv[1]), sys.argv[2], *sys.argv[3:])

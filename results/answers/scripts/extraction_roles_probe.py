"""What the shipped extraction expert extracts from `memlora demo`'s sessions, by how the turns are rendered.

The expert was trained on LoCoMo two-turn windows whose speakers are names
("Maria: ...\\nJohn: ..."). This probe calls the engine's extraction step (shipped
adapters, the engine's prompt and JSON constraint) on each demo session:

* ``whole``: the session's three messages in one call, roles only (what ``memlora demo`` adds);
* ``single``: each user message alone, roles only;
* ``roles``: two-message windows (the first user message with its reply; the reply with
  the next user message), rendered ``user:`` / ``assistant:`` as the integrations send them;
* ``named``: the same windows with the user's name as the speaker (a message ``name``);
* ``whole-named``: the whole session in one call with the user's name (session 7);
* ``capitals``: the two-message windows with the speakers named ``User`` / ``Assistant``
  (a name where a role was: does any name help, or the person's?) (session 7).

Usage: ``python results/answers/scripts/extraction_roles_probe.py [--threads 1]``.
"""

from __future__ import annotations

import argparse

from memlora_engine.backbone import load_backbone
from memlora_engine.commands.demo import SESSIONS
from memlora_engine.config import MemoryConfig
from memlora_engine.messages import render_conversation
from memlora_engine.stats import Stats
from memlora_engine.steps import ModelCaller, extract_facts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    caller = ModelCaller(MemoryConfig(), load_backbone(num_threads=args.threads), Stats())
    totals: dict[str, int] = {}
    for when, messages in SESSIONS:
        date = when[:10]
        named = [dict(m, name="Alice") if m["role"] == "user" else m for m in messages]
        capitals = [dict(m, name=m["role"].capitalize()) for m in messages]
        variants = {
            "whole": [messages],
            "single": [[m] for m in messages if m["role"] == "user"],
            "roles": [messages[0:2], messages[1:3]],
            "named": [named[0:2], named[1:3]],
            "whole-named": [named],
            "capitals": [capitals[0:2], capitals[1:3]],
        }
        print(f"=== session of {date}")
        for label, windows in variants.items():
            facts = [f for w in windows for f in extract_facts(caller, render_conversation(w), date=date)]
            totals[label] = totals.get(label, 0) + len(facts)
            print(f"  {label:11s} {len(windows)} call(s): {facts}")
    print("facts in all:", totals)


if __name__ == "__main__":
    main()

"""Does the shipped extraction expert need a conversational reply? One statement, four kinds of assistant reply.

An assistant in a LangChain or LlamaIndex app often acknowledges a stated fact
briefly ("Noted.") or not at all (the turn is added before the reply). This probe
sends twelve hand-written first-person statements, each with its speaker named,
through the engine's extraction step (shipped adapters, the engine's prompt and JSON
constraint) as a two-message window with each kind of reply:

* ``none``: the user message alone;
* ``noted``: "Noted.";
* ``remember``: "Got it, I will remember that.";
* ``follow-up``: a reply that follows up on the statement (the LoCoMo style the expert
  was trained on).

It prints, per kind, how many statements gave a fact, and how many of those name the
speaker. The statements are this probe's own (not training data, not the demo's).

Usage: ``python results/answers/scripts/extraction_replies_probe.py [--adapter DIR] [--threads 1]``
(``--adapter``: an extraction adapter instead of the shipped one).
"""

from __future__ import annotations

import argparse

from memlora_engine.adapters import shipped_adapters
from memlora_engine.backbone import load_backbone
from memlora_engine.backbone.models import DEFAULT_MODEL
from memlora_engine.config import MemoryConfig
from memlora_engine.messages import render_conversation
from memlora_engine.stats import Stats
from memlora_engine.steps import ModelCaller, extract_facts

STATEMENTS = [
    ("Nadia", "I'm allergic to peanuts, so please keep that in mind.", "Of course! Have you had a bad reaction before?"),
    ("Omar", "I just got promoted to team lead at the bakery.", "Congratulations! How does your new role feel?"),
    ("Beatriz", "My daughter Lina starts school next week.", "How exciting! Is she looking forward to it?"),
    ("Felix", "I sold my old piano last weekend.", "Oh wow, was it hard to let it go?"),
    ("Hana", "I've been training for the Berlin marathon since March.", "Impressive! How is the training going?"),
    ("Ivan", "We're moving to Tallinn in the spring.", "Big change! What made you pick Tallinn?"),
    ("Jules", "I prefer tea over coffee these days.", "Nice! Do you have a favourite kind of tea?"),
    ("Keiko", "My cat Mochi turned ten yesterday.", "Happy birthday to Mochi! Did you celebrate?"),
    ("Luca", "I'm learning to fly small planes on weekends.", "That sounds thrilling! How many hours have you flown?"),
    ("Maren", "I quit my job at the bank to start a pottery studio.", "Brave move! How is the studio coming along?"),
    ("Pablo", "My brother Diego is visiting from Lima next month.", "Lovely! What are you planning to do together?"),
    ("Rosa", "I volunteer at the animal shelter every Saturday.", "That's kind of you! What do you do there?"),
]

REPLIES = {"none": None, "noted": "Noted.", "remember": "Got it, I will remember that.", "follow-up": ""}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--adapter", help="an extraction adapter dir (default: the shipped one)")
    args = parser.parse_args()
    adapters = dict(shipped_adapters(DEFAULT_MODEL))
    if args.adapter:
        adapters["extraction"] = args.adapter
    caller = ModelCaller(MemoryConfig(), load_backbone(adapters=adapters, num_threads=args.threads), Stats())
    for kind, reply in REPLIES.items():
        with_fact = naming = 0
        for name, said, follow_up in STATEMENTS:
            messages = [{"role": "user", "name": name, "content": said}]
            if reply is not None:
                messages.append({"role": "assistant", "content": reply or follow_up})
            facts = extract_facts(caller, render_conversation(messages), date="2025-03-01")
            with_fact += bool(facts)
            naming += any(name in f for f in facts)
            print(f"  {kind:9s} {name}: {facts}")
        print(f"{kind}: {with_fact}/{len(STATEMENTS)} statements gave a fact, {naming} naming the speaker")


if __name__ == "__main__":
    main()

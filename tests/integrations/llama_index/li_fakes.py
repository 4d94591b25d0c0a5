"""The scripted model of these tests: it echoes user statements as facts and ADDs them all."""

from __future__ import annotations

import json

from memlora_engine import GenerationRequest
from memlora_engine.testing import ScriptedGenerator

__all__ = ["add_all", "echo_facts", "extraction_calls", "reply", "scripted_model"]


def echo_facts(request: GenerationRequest) -> str:
    """Extraction: every user line of the conversation becomes a fact, word for word."""
    conversation = request.messages[-1]["content"]
    lines = [line.removeprefix("user: ").strip() for line in conversation.splitlines() if line.startswith("user: ")]
    return json.dumps({"facts": lines})


def add_all(request: GenerationRequest) -> str:
    """Update: ADD every new fact (nothing is merged or deleted)."""
    facts = json.loads(request.messages[-1]["content"].rsplit("New facts:", 1)[1])
    return json.dumps({"memory": [{"id": "new", "text": f, "event": "ADD"} for f in facts]})


def reply(request: GenerationRequest) -> str:
    """Generation: a short reply naming the last user message (for chat engines and agents)."""
    return f"Noted: {request.messages[-1]['content'][-40:]}"


def extraction_calls(generator: ScriptedGenerator) -> list[GenerationRequest]:
    return [c for c in generator.calls if c.operation.value == "extraction"]


def scripted_model() -> ScriptedGenerator:
    return ScriptedGenerator({"extraction": echo_facts, "update": add_all, "generation": reply})

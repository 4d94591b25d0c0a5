"""Scripted model outputs for the LangChain integration tests (and their child processes).

The engine, Chroma, the session buffer and the LangChain classes all run for real;
only the small model is replaced, by a script that behaves like a plausible one:

* extraction remembers each user line as a fact (assistant lines are ignored);
* update adds every new fact (the engine drops exact duplicates);
* generation answers with the memory bullets it finds in its prompt.
"""

from __future__ import annotations

import json
import re
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

from memlora_engine import GenerationRequest, Memory, MemoryConfig
from memlora_engine.testing import DeterministicEmbedder, ScriptedGenerator

_BULLET = re.compile(r"^- (.+)$", re.MULTILINE)


def extract_user_lines(request: GenerationRequest) -> str:
    conversation = request.messages[-1]["content"]
    facts = [line.split(":", 1)[1].strip() for line in conversation.splitlines() if line.startswith("user:")]
    return json.dumps({"facts": [f for f in facts if f]})


def add_every_fact(request: GenerationRequest) -> str:
    facts = json.loads(request.messages[-1]["content"].rsplit("New facts:", 1)[1])
    return json.dumps({"memory": [{"id": str(i), "text": f, "event": "ADD"} for i, f in enumerate(facts)]})


def answer_from_bullets(request: GenerationRequest) -> str:
    prompt = "\n".join(str(m["content"]) for m in request.messages)
    bullets = _BULLET.findall(prompt)
    return ("I remember: " + "; ".join(bullets)) if bullets else "I don't know yet."


def echo_generator() -> ScriptedGenerator:
    return ScriptedGenerator(
        {"extraction": extract_user_lines, "update": add_every_fact, "generation": answer_from_bullets}
    )


def build_memory(data_dir=None) -> Memory:
    """A real engine: on disk under ``data_dir``, else in memory."""
    config = MemoryConfig(store="persistent", data_dir=data_dir) if data_dir else MemoryConfig(store="memory")
    return Memory(config, generator=echo_generator(), embedder=DeterministicEmbedder())


class RecordingChatModel(GenericFakeChatModel):
    """A fake chat model that keeps the messages of every call; ``bind_tools`` is a no-op."""

    seen: list = []

    def _generate(self, messages, stop=None, run_manager=None, **kwargs: Any):
        self.seen.append(list(messages))
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)

    def bind_tools(self, tools, **kwargs: Any):
        return self

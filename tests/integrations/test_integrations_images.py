"""A photo shared through the LangChain and LlamaIndex integrations reaches long-term memory.

Real message classes, a real engine (in-memory Chroma, image store, session buffer) and a
real photograph; only the model is scripted. Its extraction turns each user line into a
fact; with ``supports_images=True`` it plays a VLM, so a request shows whether the pixels
reached the model.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json

import pytest

skimage_data = pytest.importorskip("skimage.data")

from PIL import Image  # noqa: E402

from memlora_engine import GenerationRequest, Memory, MemoryConfig  # noqa: E402
from memlora_engine.testing import DeterministicEmbedder, ScriptedGenerator  # noqa: E402

SAID = "This is my morning coffee"


@pytest.fixture(scope="module")
def coffee() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(skimage_data.coffee()).resize((64, 48)).save(buffer, format="PNG")
    return buffer.getvalue()


def _echo_user_lines(request: GenerationRequest) -> str:
    conversation = request.messages[-1]["content"]
    return json.dumps({"facts": [line.split(":", 1)[1].strip() for line in conversation.splitlines()
                                 if line.startswith("user:")]})


@pytest.fixture
def memory() -> Memory:
    model = ScriptedGenerator({"extraction": _echo_user_lines, "update": ['{"memory": []}']}, supports_images=True)
    return Memory(MemoryConfig(store="memory"), generator=model, embedder=DeterministicEmbedder())


def assert_photo_remembered(memory: Memory, image: bytes, user_id: str = "alice") -> None:
    image_id = hashlib.sha256(image).hexdigest()
    images = [r for r in memory.get_all(user_id=user_id) if r.metadata.get("memory_type") == "image"]
    assert [r.metadata["image_id"] for r in images] == [image_id]
    assert images[0].text.startswith("user shared a photo")
    facts = [r for r in memory.get_all(user_id=user_id) if r.metadata.get("memory_type") != "image"]
    assert facts and all(r.metadata["image_ids"] == image_id for r in facts)
    extraction = [c for c in memory.generator.calls if c.operation.value == "extraction"]
    assert [len(c.images) for c in extraction] == [1]  # the model saw the pixels, once
    assert "[shares a photo: see image 1]" in extraction[0].messages[-1]["content"]


# -- LangChain ---------------------------------------------------------------------------------
@pytest.fixture
def lc_photo(coffee):
    messages = pytest.importorskip("langchain_core.messages")
    url = "data:image/png;base64," + base64.b64encode(coffee).decode("ascii")
    return messages.HumanMessage(content=[{"type": "text", "text": SAID}, {"type": "image_url", "image_url": {"url": url}}])


@pytest.mark.parametrize("arrival", ["together", "reply later"])
def test_langchain_chat_history_remembers_the_photo(memory, coffee, lc_photo, arrival):
    from langchain_core.messages import AIMessage

    from memlora_integrations.langchain import MemLoRAChatMessageHistory, MemLoRARetriever

    history = MemLoRAChatMessageHistory(memory, session_id="s1", user_id="alice")
    if arrival == "together":
        history.add_messages([lc_photo, AIMessage("What a nice cup!")])
    else:  # the human message waits in the session buffer until its reply arrives
        history.add_message(lc_photo)
        history.add_message(AIMessage("What a nice cup!"))
    assert_photo_remembered(memory, coffee)
    assert history.messages[0].content == lc_photo.content  # the buffer gives the message back whole
    docs = MemLoRARetriever(memory=memory, user_id="alice").invoke("the photo alice shared")
    assert any(d.metadata.get("memory_type") == "image" for d in docs)


def test_langchain_legacy_memory_and_middleware_remember_the_photo(memory, coffee, lc_photo):
    from langchain.agents import create_agent
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage

    from memlora_integrations.langchain import MemLoRAMemory, MemLoRAMiddleware

    chat_memory = MemLoRAMemory(memory=memory, user_id="alice")
    chat_memory.save_context({"input": lc_photo.content}, {"response": "What a nice cup!"})
    assert_photo_remembered(memory, coffee)
    assert SAID in chat_memory.load_memory_variables({"input": lc_photo.content})["history"]

    memory.delete_all(user_id="alice")
    memory.generator.calls.clear()
    agent = create_agent(GenericFakeChatModel(messages=iter([AIMessage("What a nice cup!")])),
                         middleware=[MemLoRAMiddleware(memory, user_id="alice")])
    agent.invoke({"messages": [lc_photo]})
    assert_photo_remembered(memory, coffee)


# -- LlamaIndex --------------------------------------------------------------------------------
@pytest.fixture
def li_photo(coffee):
    types = pytest.importorskip("llama_index.core.base.llms.types")
    return types.ChatMessage(role="user", blocks=[types.TextBlock(text=SAID), types.ImageBlock(image=coffee)])


def test_llama_index_memory_remembers_the_photo(memory, coffee, li_photo):
    from llama_index.core.base.llms.types import ChatMessage

    from memlora_integrations.llama_index import MemLoRAMemory

    chat_memory = MemLoRAMemory.from_defaults(memory, user_id="alice", session_id="s1")
    chat_memory.put(li_photo)  # as chat engines do: the user message first, buffered ...
    chat_memory.put(ChatMessage(role="assistant", content="What a nice cup!"))  # ... then the reply ends the turn
    assert_photo_remembered(memory, coffee)
    assert chat_memory.get_all()[0].blocks[1].resolve_image().read() == coffee


async def test_llama_index_memory_block_remembers_the_photo(memory, coffee, li_photo):
    from llama_index.core.base.llms.types import ChatMessage

    from memlora_integrations.llama_index import MemLoRAMemoryBlock

    block = MemLoRAMemoryBlock(memory=memory, user_id="alice")
    await block.aput([li_photo, ChatMessage(role="assistant", content="What a nice cup!")])
    assert_photo_remembered(memory, coffee)

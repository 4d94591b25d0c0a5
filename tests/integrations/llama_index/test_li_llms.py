"""MemLoRALLM: any engine Generator as a LlamaIndex LLM (generation adapter, optional streaming)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.llms import LLM, CustomLLM

from memlora_engine import Generation, GenerationRequest, Operation
from memlora_engine.testing import ContextLengthGenerator, ScriptedGenerator
from memlora_integrations.llama_index import MemLoRALLM


class StreamingGenerator(ScriptedGenerator):
    """The scripted model plus the backbone's optional ``stream(request)``, word by word."""

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        words = self.generate(request).text.split(" ")
        yield from (w if i == 0 else " " + w for i, w in enumerate(words))


def echo(request: GenerationRequest) -> str:
    return "echo: " + request.messages[-1]["content"]


def test_is_a_llama_index_custom_llm_with_chat_metadata() -> None:
    assert issubclass(MemLoRALLM, CustomLLM) and issubclass(MemLoRALLM, LLM)
    llm = MemLoRALLM(generator=ScriptedGenerator({"generation": echo}), context_window=4096, model_name="tiny")
    assert llm.metadata.is_chat_model is True
    assert llm.metadata.is_function_calling_model is False
    assert (llm.metadata.context_window, llm.metadata.model_name) == (4096, "tiny")
    assert llm.class_name() == "MemLoRALLM"


def test_context_window_is_the_generator_s_declared_context() -> None:
    from llama_index.core.memory import ChatMemoryBuffer

    llm = MemLoRALLM(generator=ContextLengthGenerator({"generation": echo}))
    assert llm.metadata.context_window == 8192
    # LlamaIndex sizes what it sends by it: a chat buffer keeps 3/4 of the window
    assert ChatMemoryBuffer.from_defaults(llm=llm).token_limit == 6144
    assert MemLoRALLM(generator=ContextLengthGenerator(), context_window=2048).metadata.context_window == 2048
    assert MemLoRALLM(generator=ScriptedGenerator()).metadata.context_window == 32768  # undeclared: Gemma 3's


def test_a_generator_is_required() -> None:
    with pytest.raises(TypeError, match="generate"):
        MemLoRALLM(generator=object())


def test_chat_sends_one_generation_request_with_the_messages() -> None:
    gen = ScriptedGenerator({"generation": echo})
    llm = MemLoRALLM(generator=gen, max_new_tokens=32)
    response = llm.chat([
        ChatMessage(role="system", content="be brief"),
        ChatMessage(role="user", content="hi"),
        ChatMessage(role="assistant", content="hello"),
        ChatMessage(role="tool", content="42"),
    ])
    assert response.message.role.value == "assistant"
    assert response.message.content == "echo: 42"
    (request,) = gen.calls
    assert request.operation is Operation.GENERATION
    assert request.max_new_tokens == 32
    assert [m["role"] for m in request.messages] == ["system", "user", "assistant", "user"]


def test_complete_wraps_the_prompt_as_a_user_message() -> None:
    gen = ScriptedGenerator({"generation": echo})
    llm = MemLoRALLM(generator=gen, system_prompt="be brief")
    assert llm.complete("hi").text == "echo: hi"
    assert gen.calls[0].messages == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]


def test_without_stream_the_whole_text_is_one_chunk() -> None:
    llm = MemLoRALLM(generator=ScriptedGenerator({"generation": echo}))
    chunks = list(llm.stream_chat([ChatMessage(role="user", content="hi")]))
    assert [c.delta for c in chunks] == ["echo: hi"]
    assert [c.text for c in llm.stream_complete("hi")] == ["echo: hi"]


def test_the_generators_stream_is_used_when_present() -> None:
    llm = MemLoRALLM(generator=StreamingGenerator({"generation": echo}))
    chunks = list(llm.stream_chat([ChatMessage(role="user", content="a b")]))
    assert [c.delta for c in chunks] == ["echo:", " a", " b"]
    assert chunks[-1].message.content == "echo: a b"
    assert [c.delta for c in llm.stream_complete("x")] == ["echo:", " x"]


async def test_async_variants() -> None:
    llm = MemLoRALLM(generator=StreamingGenerator({"generation": echo}))
    messages = [ChatMessage(role="user", content="a b")]
    assert (await llm.achat(messages)).message.content == "echo: a b"
    assert (await llm.acomplete("x")).text == "echo: x"
    assert [c.delta async for c in await llm.astream_chat(messages)] == ["echo:", " a", " b"]
    assert [c.text async for c in await llm.astream_complete("x")][-1] == "echo: x"


def test_any_object_with_generate_is_a_generator() -> None:
    class Fixed:
        def generate(self, request: GenerationRequest) -> Generation:
            return Generation(text="ok", input_tokens=3, output_tokens=1)

        def has_adapter(self, operation: Operation) -> bool:
            return False

    assert MemLoRALLM(generator=Fixed()).complete("hi").text == "ok"


def test_system_messages_are_folded_into_one() -> None:
    gen = ScriptedGenerator({"generation": ["ok"]})
    MemLoRALLM(generator=gen).chat([ChatMessage(role="system", content="Be brief."), ChatMessage(role="system", content="Facts: x"),
                                    ChatMessage(role="user", content="hi")])
    assert gen.calls[0].messages == [{"role": "system", "content": "Be brief.\n\nFacts: x"},
                                     {"role": "user", "content": "hi"}]


async def test_function_agent_refuses_it_with_a_clear_error() -> None:
    # The documented decision: no LlamaIndex function calling (use ReActAgent, or ChatMemLoRA in LangChain).
    from llama_index.core.agent.workflow import FunctionAgent

    llm = MemLoRALLM(generator=ScriptedGenerator({"generation": ["ok"]}))
    assert not llm.metadata.is_function_calling_model
    with pytest.raises(Exception, match="FunctionCallingLLM"):
        await FunctionAgent(tools=[], llm=llm).run(user_msg="hi")

"""ChatMemLoRA: LangChain's standard unit suite, plus generation, streaming and stop handling."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_tests.unit_tests import ChatModelUnitTests

from memlora_engine import Generation, GenerationRequest, Operation
from memlora_engine.testing import ContextLengthGenerator, ScriptedGenerator
from memlora_integrations.langchain import ChatMemLoRA


class StreamingGenerator(ScriptedGenerator):
    """The scripted fake plus the optional backbone methods ``stream`` and ``count_tokens``."""

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        text = self.generate(request).text
        for i in range(0, len(text), 3):
            yield text[i : i + 3]

    def count_tokens(self, text: str) -> int:
        return len(text.split())


def scripted(*outputs: str) -> ScriptedGenerator:
    return ScriptedGenerator({"generation": list(outputs) or ["ok"]})


class TestChatMemLoRAStandard(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[ChatMemLoRA]:
        return ChatMemLoRA

    @property
    def chat_model_params(self) -> dict:
        return {"generator": scripted("Hello from the device.")}


def test_capability_flags_are_honest():
    # Tool calling (and structured output through it) by schema-constrained decoding; no images.
    suite = TestChatMemLoRAStandard()
    assert suite.has_tool_calling and suite.has_structured_output and not suite.supports_image_inputs


def test_sends_a_generation_request_with_roles():
    generator = scripted("Paris.")
    llm = ChatMemLoRA(generator=generator, max_tokens=12, temperature=0.2)
    reply = llm.invoke([SystemMessage("Be brief."), HumanMessage("Capital of France?"), AIMessage("Paris."),
                        ToolMessage("42", tool_call_id="t"), HumanMessage("Sure?")])
    assert reply.content == "Paris."
    request = generator.calls[-1]
    assert request.operation is Operation.GENERATION
    assert request.max_new_tokens == 12 and request.metadata == {"temperature": 0.2}
    assert [m["role"] for m in request.messages] == ["system", "user", "assistant", "user", "user"]
    assert request.messages[3]["content"] == "Tool result: 42"


def test_a_prompt_with_two_system_messages_reaches_the_model_as_one():
    # A prompt's instructions plus remembered facts as a second system message: Gemma's template takes one.
    from langchain_core.prompts import ChatPromptTemplate

    generator = scripted("Oslo.")
    prompt = ChatPromptTemplate.from_messages([("system", "Be brief."), ("system", "Facts:\n{facts}"), ("human", "{q}")])
    (prompt | ChatMemLoRA(generator=generator)).invoke({"facts": "- Alice lives in Oslo", "q": "Where do I live?"})
    assert generator.calls[-1].messages == [
        {"role": "system", "content": "Be brief.\n\nFacts:\n- Alice lives in Oslo"},
        {"role": "user", "content": "Where do I live?"},
    ]


def test_usage_metadata_comes_from_the_generation():
    class Counted:
        def generate(self, request):
            return Generation(text="hi there", input_tokens=7, output_tokens=2)

    reply = ChatMemLoRA(generator=Counted()).invoke("hello")
    assert reply.usage_metadata == {"input_tokens": 7, "output_tokens": 2, "total_tokens": 9}
    assert reply.response_metadata["model_name"] == "memlora"


def test_default_token_budget_and_per_call_override():
    generator = scripted("x")
    llm = ChatMemLoRA(generator=generator)
    llm.invoke("a")
    llm.invoke("a", max_tokens=5)
    assert [c.max_new_tokens for c in generator.calls] == [256, 5]


@pytest.mark.parametrize(
    ("output", "stop", "expected"),
    [
        ("Answer.\nHuman: more", ["\nHuman:"], "Answer."),
        ("no stop here", ["\nHuman:"], "no stop here"),
        ("a|b#c", ["#", "|"], "a"),
        ("", ["x"], ""),
    ],
)
def test_stop_sequences(output, stop, expected):
    assert ChatMemLoRA(generator=scripted(output)).invoke("q", stop=stop).content == expected
    streamed = "".join(c.content for c in ChatMemLoRA(generator=StreamingGenerator({"generation": [output]})).stream(
        "q", stop=stop
    ))
    assert streamed == expected


def test_streams_through_the_generator_when_it_can():
    generator = StreamingGenerator({"generation": ["one two three four"]})
    chunks = [c.content for c in ChatMemLoRA(generator=generator).stream("q")]
    assert len([c for c in chunks if c]) > 1 and "".join(chunks) == "one two three four"


def test_streams_one_chunk_without_a_stream_method():
    chunks = list(ChatMemLoRA(generator=scripted("whole answer")).stream("q"))
    assert [c.content for c in chunks] == ["whole answer"]


def test_streaming_flag_routes_invoke_through_stream():
    generator = StreamingGenerator({"generation": ["abcdefgh"]})
    assert ChatMemLoRA(generator=generator, streaming=True).invoke("q").content == "abcdefgh"


async def test_async_invoke_and_stream():
    llm = ChatMemLoRA(generator=StreamingGenerator({"generation": ["async answer"]}))
    assert (await llm.ainvoke("q")).content == "async answer"
    assert "".join([c.content async for c in llm.astream("q")]) == "async answer"


def test_count_tokens_uses_the_backbone_when_it_can():
    assert ChatMemLoRA(generator=StreamingGenerator()).get_num_tokens("a b c") == 3


def test_profile_says_what_the_generator_declares():
    profile = ChatMemLoRA(generator=ContextLengthGenerator(context_length=1024), max_tokens=24).profile
    assert profile is not None
    assert (profile["max_input_tokens"], profile["max_output_tokens"]) == (1000, 24)  # the context less the output
    assert profile["tool_calling"] is True and profile["image_inputs"] is False
    assert "structured_output" not in profile  # create_agent then structures answers through a tool
    plain = ChatMemLoRA(generator=ScriptedGenerator(supports_json_schema=False)).profile
    assert plain is not None and "max_input_tokens" not in plain and plain["tool_calling"] is False
    assert ChatMemLoRA(generator=ContextLengthGenerator(), profile={"max_input_tokens": 7}).profile == {"max_input_tokens": 7}


def test_summarization_middleware_s_fractional_trigger_reads_the_declared_context():
    from langchain.agents import create_agent
    from langchain.agents.middleware import SummarizationMiddleware

    with pytest.raises(ValueError, match="profile"):  # no declared context: LangChain's own refusal
        SummarizationMiddleware(model=ChatMemLoRA(generator=scripted()), trigger=("fraction", 0.5))
    generator = ContextLengthGenerator({"generation": ["They talked about words.", "Fine."]}, context_length=456)
    llm = ChatMemLoRA(generator=generator)  # 456 - 256 output tokens: 200 input tokens
    agent = create_agent(model=llm, middleware=[
        SummarizationMiddleware(model=llm, trigger=("fraction", 0.5), keep=("messages", 1))])
    long = "word " * 60  # ~75 tokens by LangChain's estimate: two are over half of 200
    agent.invoke({"messages": [HumanMessage(long), AIMessage("ok"), HumanMessage(long), AIMessage("ok"),
                               HumanMessage("And now?")]})
    summary, answer = generator.calls
    assert "Messages to summarize" in summary.messages[-1]["content"]
    assert "They talked about words." in " ".join(m["content"] for m in answer.messages)


def test_from_memory_shares_the_generator(lc_memory):
    assert ChatMemLoRA.from_memory(lc_memory).generator is lc_memory.generator


def test_rejects_what_is_not_a_generator():
    with pytest.raises(ValueError, match="generate"):
        ChatMemLoRA(generator=object())


@pytest.mark.slow
def test_real_backbone_streams_text():
    pytest.importorskip("memlora_engine.backbone")
    llm = ChatMemLoRA.from_backbone(model="gemma-3-270m", max_tokens=8)
    assert llm.generator.has_adapter("generation")  # the shipped experts load by default
    assert isinstance(llm.invoke("Say hello.").content, str)
    assert llm.get_num_tokens("hello world") > 0

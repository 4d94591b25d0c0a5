"""ChatMemLoRA tool calling: bind_tools, create_agent with two tools, structured output.

The model is the engine's scripted generator; every reply it gives for a request
with a schema is checked against that schema (what the backbone's constrained
decoding guarantees), so the schema is tested to admit real calls and refuse others.
"""

from __future__ import annotations

import json

import jsonschema
import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel

from memlora_engine import ConfigError, Generation, GenerationRequest, ModelOutputError
from memlora_engine.testing import ScriptedGenerator
from memlora_integrations.langchain import ChatMemLoRA, MemLoRAMiddleware


@tool
def get_weather(city: str) -> str:
    """Current weather in a city."""
    return f"Sunny and 24C in {city}"


@tool
def get_time(timezone: str) -> str:
    """Current local time in a timezone."""
    return f"10:30 in {timezone}"


def schema_checked(reply):
    """A generation script that validates each of its replies against the request's schema."""

    def answer(request: GenerationRequest) -> str:
        text = reply(request) if callable(reply) else reply
        if request.json_schema is not None:
            jsonschema.validate(json.loads(text), request.json_schema)
        return text

    return ScriptedGenerator({"generation": answer})


def picks_a_tool_then_answers(request: GenerationRequest) -> str:
    """Plays a small model: weather words call get_weather, time words get_time; a tool result is answered."""
    last = request.messages[-1]["content"]
    if last.startswith("Tool result: "):
        return json.dumps({"answer": last.removeprefix("Tool result: ")})
    if "weather" in last.lower():
        return json.dumps({"tool": "get_weather", "arguments": {"city": "Lisbon"}})
    if "time" in last.lower():
        return json.dumps({"tool": "get_time", "arguments": {"timezone": "Europe/Lisbon"}})
    return json.dumps({"answer": "Hello!"})


def test_create_agent_with_two_tools_runs_end_to_end():
    generator = schema_checked(picks_a_tool_then_answers)
    agent = create_agent(model=ChatMemLoRA(generator=generator), tools=[get_weather, get_time],
                         system_prompt="You are a travel helper.")
    result = agent.invoke({"messages": [{"role": "user", "content": "What's the weather in Lisbon?"}]})
    assert [m.type for m in result["messages"]] == ["human", "ai", "tool", "ai"]
    assert result["messages"][1].tool_calls[0]["name"] == "get_weather"
    assert result["messages"][1].tool_calls[0]["args"] == {"city": "Lisbon"}
    assert result["messages"][2].content == "Sunny and 24C in Lisbon"
    assert result["messages"][-1].content == "Sunny and 24C in Lisbon"

    result = agent.invoke({"messages": [{"role": "user", "content": "What time is it there?"}]})
    assert result["messages"][1].tool_calls[0]["name"] == "get_time"
    assert result["messages"][-1].content == "10:30 in Europe/Lisbon"
    # one system message (Gemma's template takes one): the agent's prompt, then the tools
    first = generator.calls[0].messages
    assert [m["role"] for m in first] == ["system", "user"]
    assert first[0]["content"].startswith("You are a travel helper.\n\nYou can use these tools:\n- get_weather:")
    # the model sees its own call in the format it decodes, and the tool's result
    second = generator.calls[1].messages
    assert second[-2] == {"role": "assistant",
                          "content": json.dumps({"tool": "get_weather", "arguments": {"city": "Lisbon"}})}


def test_agent_with_tools_and_memory_middleware(lc_memory):
    memory = lc_memory
    memory.add("Alice lives in Lisbon", user_id="alice", infer=False)
    generator = schema_checked(picks_a_tool_then_answers)
    agent = create_agent(model=ChatMemLoRA(generator=generator), tools=[get_weather, get_time],
                         middleware=[MemLoRAMiddleware(memory, user_id="alice", ingest=False)])
    result = agent.invoke({"messages": [{"role": "user", "content": "Weather where I live?"}]})
    assert result["messages"][-1].content == "Sunny and 24C in Lisbon"
    assert "- Alice lives in Lisbon" in generator.calls[0].messages[0]["content"]


def test_bind_tools_schema_admits_only_the_bound_tools_and_an_answer():
    generator = schema_checked(json.dumps({"tool": "get_weather", "arguments": {"city": "Porto"}}))
    reply = ChatMemLoRA(generator=generator).bind_tools([get_weather, get_time]).invoke("Weather in Porto?")
    assert reply.content == ""
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [("get_weather", {"city": "Porto"})]
    assert reply.tool_calls[0]["id"].startswith("call_")
    schema = generator.calls[0].json_schema
    jsonschema.validate({"answer": "hi"}, schema)
    jsonschema.validate({"tool": "get_time", "arguments": {"timezone": "UTC"}}, schema)
    for wrong in ({"tool": "send_email", "arguments": {}}, {"tool": "get_weather", "arguments": {"town": "x"}},
                  {"tool": "get_weather", "arguments": {}}, {"text": "hi"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(wrong, schema)


@pytest.mark.parametrize(
    ("tool_choice", "allowed", "refused"),
    [
        ("any", {"tool": "get_time", "arguments": {"timezone": "UTC"}}, {"answer": "hi"}),
        ("required", {"tool": "get_time", "arguments": {"timezone": "UTC"}}, {"answer": "hi"}),
        ("get_weather", {"tool": "get_weather", "arguments": {"city": "Oslo"}},
         {"tool": "get_time", "arguments": {"timezone": "UTC"}}),
        ({"type": "function", "function": {"name": "get_weather"}}, {"tool": "get_weather", "arguments": {"city": "x"}},
         {"answer": "hi"}),
        ("none", {"answer": "hi"}, {"tool": "get_weather", "arguments": {"city": "x"}}),
    ],
)
def test_tool_choice_narrows_the_schema(tool_choice, allowed, refused):
    generator = schema_checked(json.dumps(allowed))
    ChatMemLoRA(generator=generator).bind_tools([get_weather, get_time], tool_choice=tool_choice).invoke("q")
    schema = generator.calls[0].json_schema
    jsonschema.validate(allowed, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(refused, schema)


def test_an_answer_is_plain_content_and_streams_as_one_chunk():
    llm = ChatMemLoRA(generator=schema_checked(json.dumps({"answer": "Hi there."}))).bind_tools([get_weather])
    assert llm.invoke([SystemMessage("Be kind."), HumanMessage("hi")]).content == "Hi there."
    chunks = list(llm.stream("hi"))
    assert "".join(c.content for c in chunks) == "Hi there." and not chunks[0].tool_call_chunks


def test_a_streamed_tool_call_arrives_whole():
    llm = ChatMemLoRA(generator=schema_checked(json.dumps({"tool": "get_weather", "arguments": {"city": "Rome"}})))
    chunks = list(llm.bind_tools([get_weather]).stream("Weather in Rome?"))
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged += chunk
    assert [(c["name"], c["args"]) for c in merged.tool_calls] == [("get_weather", {"city": "Rome"})]


def test_tool_messages_in_the_prompt_follow_the_call_format():
    generator = schema_checked(json.dumps({"answer": "24C."}))
    ChatMemLoRA(generator=generator).bind_tools([get_weather]).invoke([
        HumanMessage("Weather in Rome?"),
        AIMessage("", tool_calls=[{"name": "get_weather", "args": {"city": "Rome"}, "id": "c1"}]),
        ToolMessage("24C", tool_call_id="c1"),
    ])
    assert [m["content"] for m in generator.calls[0].messages[1:]] == [
        "Weather in Rome?", '{"tool": "get_weather", "arguments": {"city": "Rome"}}', "Tool result: 24C"
    ]


def test_with_structured_output_through_a_tool():
    class Person(BaseModel):
        name: str
        age: int

    generator = schema_checked(json.dumps({"tool": "Person", "arguments": {"name": "Ana", "age": 31}}))
    person = ChatMemLoRA(generator=generator).with_structured_output(Person).invoke("Ana is 31.")
    assert person == Person(name="Ana", age=31)


def test_a_generator_without_constrained_decoding_is_refused_with_a_clear_error():
    llm = ChatMemLoRA(generator=ScriptedGenerator({"generation": ["hi"]}, supports_json_schema=False))
    with pytest.raises(ConfigError, match="JSON schema"):
        llm.bind_tools([get_weather])
    with pytest.raises(ConfigError, match="JSON schema"):
        create_agent(model=llm, tools=[get_weather]).invoke({"messages": [{"role": "user", "content": "hi"}]})


def test_a_broken_reply_is_a_model_output_error_keeping_the_text():
    llm = ChatMemLoRA(generator=ScriptedGenerator({"generation": ['{"tool": "get_wea']})).bind_tools([get_weather])
    with pytest.raises(ModelOutputError) as caught:
        llm.invoke("Weather?")
    assert caught.value.raw == '{"tool": "get_wea'


def test_unknown_tool_choice_is_refused():
    with pytest.raises(ValueError, match="tool_choice"):
        ChatMemLoRA(generator=ScriptedGenerator({"generation": ["x"]})).bind_tools([get_weather], tool_choice="nope")


def calls_a_tool_whenever_it_may(request: GenerationRequest) -> str:
    """Plays the 270M experts: a call whenever the schema admits one, even after a tool result."""
    variants = request.json_schema.get("anyOf", [request.json_schema])
    if any("tool" in v["properties"] for v in variants):
        return json.dumps({"tool": "get_weather", "arguments": {"city": "Lisbon"}})
    return json.dumps({"answer": "Sunny in Lisbon."})


def test_an_agent_on_a_tool_happy_model_answers_after_one_round():
    agent = create_agent(model=ChatMemLoRA(generator=schema_checked(calls_a_tool_whenever_it_may)),
                         tools=[get_weather, get_time])
    result = agent.invoke({"messages": [{"role": "user", "content": "Weather in Lisbon?"}]}, {"recursion_limit": 8})
    assert [m.type for m in result["messages"]] == ["human", "ai", "tool", "ai"]
    assert result["messages"][-1].content == "Sunny in Lisbon."


def test_max_tool_rounds_none_lets_the_model_decide():
    from langgraph.errors import GraphRecursionError

    llm = ChatMemLoRA(generator=schema_checked(calls_a_tool_whenever_it_may), max_tool_rounds=None)
    agent = create_agent(model=llm, tools=[get_weather, get_time])
    with pytest.raises(GraphRecursionError):  # the model never stops calling
        agent.invoke({"messages": [{"role": "user", "content": "Weather in Lisbon?"}]}, {"recursion_limit": 8})
    two_rounds = create_agent(model=ChatMemLoRA(generator=schema_checked(calls_a_tool_whenever_it_may),
                                                max_tool_rounds=2), tools=[get_weather])
    result = two_rounds.invoke({"messages": [{"role": "user", "content": "Weather?"}]}, {"recursion_limit": 8})
    assert [m.type for m in result["messages"]] == ["human", "ai", "tool", "ai", "tool", "ai"]


def test_a_call_cut_by_max_tokens_says_so():
    class Cut(ScriptedGenerator):
        def generate(self, request):
            return Generation(text='{"tool": "get_weather", "arguments": {"city": "Lis', input_tokens=9,
                              output_tokens=request.max_new_tokens)

    llm = ChatMemLoRA(generator=Cut(), max_tokens=12).bind_tools([get_weather])
    with pytest.raises(ModelOutputError, match="cut at max_tokens=12") as caught:
        llm.invoke("Weather in Lisbon?")
    assert caught.value.raw.endswith('"Lis')


def test_unicode_arguments_arrive_as_written():
    generator = schema_checked(json.dumps({"tool": "get_weather", "arguments": {"city": "東京 São Paulo"}}))
    reply = ChatMemLoRA(generator=generator).bind_tools([get_weather]).invoke("Weather in Tokyo?")
    assert reply.tool_calls[0]["args"] == {"city": "東京 São Paulo"}

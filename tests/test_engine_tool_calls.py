"""memlora_engine.tool_calls: the tool-call schema, the prompt, the parser, and decoding on a real (tiny) backbone."""

from __future__ import annotations

import json

import pytest

from memlora_engine import ConfigError, ModelOutputError, Operation, SupportsJsonSchema
from memlora_engine.testing import ScriptedGenerator
from memlora_engine.tool_calls import (
    ToolCall,
    ToolSpec,
    parse_tool_reply,
    require_tool_calling,
    tool_call_request,
    tool_call_schema,
)

WEATHER = ToolSpec.from_openai({
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather in a city.",
                 "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
})
UNITS = ToolSpec("set_units", "Choose units.", {
    "type": "object", "properties": {"unit": {"type": "string", "enum": ["metric", "imperial"]}}, "required": ["unit"],
})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"tool": "get_weather", "arguments": {"city": "Rome"}}', ToolCall("get_weather", {"city": "Rome"})),
        ('{"answer": "It is sunny."}', "It is sunny."),
        ('{"answer": ""}', ""),
        ('{"tool": "set_units", "arguments": {"unit": "metric"}}', ToolCall("set_units", {"unit": "metric"})),
    ],
)
def test_parse_tool_reply(text, expected):
    assert parse_tool_reply(text, [WEATHER, UNITS]) == expected


@pytest.mark.parametrize(
    "text",
    ['{"tool": "get_wea', "not json", '{"tool": "send_mail", "arguments": {}}', '{"tool": "get_weather"}', "[1, 2]"],
)
def test_parse_tool_reply_keeps_the_raw_text_of_a_bad_reply(text):
    with pytest.raises(ModelOutputError) as caught:
        parse_tool_reply(text, [WEATHER, UNITS])
    assert caught.value.raw == text


def test_request_merges_the_tools_into_the_one_system_message():
    request = tool_call_request([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
                                [WEATHER], max_new_tokens=40, metadata={"temperature": 0.1})
    assert request.operation is Operation.GENERATION and request.max_new_tokens == 40
    assert [m["role"] for m in request.messages] == ["system", "user"]
    system = request.messages[0]["content"]
    assert system.startswith("Be brief.\n\nYou can use these tools:\n- get_weather: Weather in a city.")
    assert '{"city": "string"}' in system and '{"answer": "<your reply>"}' in system
    without = tool_call_request([{"role": "user", "content": "hi"}], [WEATHER], "required")
    assert [m["role"] for m in without.messages] == ["system", "user"]
    assert "You must call a tool now." in without.messages[0]["content"]


def test_schema_shapes():
    assert set(tool_call_schema([WEATHER])) == {"anyOf"}
    only = tool_call_schema([WEATHER, UNITS], "set_units")
    assert only["properties"]["tool"] == {"const": "set_units"}
    assert only["properties"]["arguments"]["additionalProperties"] is False
    assert tool_call_schema([WEATHER], "none")["required"] == ["answer"]
    with pytest.raises(ConfigError, match="not one of the tools"):
        tool_call_schema([WEATHER], "nope")
    with pytest.raises(ConfigError, match="at least one tool"):
        tool_call_schema([], "required")


def test_tool_calling_needs_a_generator_that_declares_constrained_decoding():
    require_tool_calling(ScriptedGenerator())
    assert isinstance(ScriptedGenerator(), SupportsJsonSchema)
    with pytest.raises(ConfigError, match="JSON schema"):
        require_tool_calling(ScriptedGenerator(supports_json_schema=False))

    class PlainGenerator:
        def generate(self, request):
            raise AssertionError("not called")

    with pytest.raises(ConfigError, match="PlainGenerator"):
        require_tool_calling(PlainGenerator())


@pytest.mark.parametrize("seed", [0, 1])
def test_a_random_weight_backbone_always_emits_a_valid_call(seed):
    pytest.importorskip("torch")
    pytest.importorskip("llguidance")
    from memlora_engine.backbone.tiny import tiny_backbone

    backbone = tiny_backbone(seed=seed)
    assert backbone.supports_json_schema
    require_tool_calling(backbone)
    request = tool_call_request([{"role": "user", "content": "Use metric."}], [WEATHER, UNITS], "set_units",
                                max_new_tokens=60)
    reply = parse_tool_reply(backbone.generate(request).text, [WEATHER, UNITS])
    assert isinstance(reply, ToolCall) and reply.name == "set_units" and reply.arguments["unit"] in ("metric", "imperial")
    assert not tiny_backbone(seed=seed, constrained=False).supports_json_schema
    json.dumps(request.json_schema)  # plain JSON: a remote server can take it as response_format

"""Tool calling for a small local model: one JSON object decoded under a schema built from the tools.

A 270M model has no native tool-call format, so the choice is made a JSON object
the backbone decodes under a schema (llguidance, see
:mod:`memlora_engine.backbone.constrained`): either
``{"tool": "<name>", "arguments": {...}}``, with the arguments under that tool's own
parameter schema, or ``{"answer": "<text>"}``. The schema rules out unknown tools and
malformed arguments; which tool to pick is still the model's judgement.

This module is framework-neutral: the LangChain and LlamaIndex integrations turn
their tools into :class:`ToolSpec` (OpenAI's function format) and the reply into
their own tool-call types. It needs a generator that declares
:class:`~memlora_engine.generator.SupportsJsonSchema`; without constrained decoding a
small model's tool JSON is too often broken to be worth offering.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from string import Template
from typing import Any, Literal

from memlora_engine.errors import ConfigError, ModelOutputError
from memlora_engine.generator import ChatMessage, GenerationRequest, SupportsJsonSchema
from memlora_engine.types import Operation

__all__ = [
    "ToolCall",
    "ToolChoice",
    "ToolSpec",
    "parse_tool_reply",
    "require_tool_calling",
    "tool_call_request",
    "tool_call_schema",
]

ToolChoice = Literal["auto", "required", "none"] | str
"""``"auto"``: a call or an answer; ``"required"``: a call to any tool; ``"none"``:
an answer; any other string: a call to the tool of that name."""


@dataclass(frozen=True)
class ToolSpec:
    """A tool the model may call: its name, what it does, and its arguments' JSON schema."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})

    @classmethod
    def from_openai(cls, tool: Mapping[str, Any]) -> ToolSpec:
        """From OpenAI's format: ``{"type": "function", "function": {...}}`` or the inner function dict."""
        function = tool.get("function", tool)
        if not isinstance(function, Mapping) or not function.get("name"):
            raise ConfigError(f"a tool needs a name: {tool!r}")
        parameters = dict(function.get("parameters") or {"type": "object", "properties": {}})
        return cls(str(function["name"]), str(function.get("description") or ""), parameters)


@dataclass(frozen=True)
class ToolCall:
    """The model's decision to call ``name`` with ``arguments``."""

    name: str
    arguments: dict[str, Any]


def require_tool_calling(generator: Any) -> None:
    """Fail unless ``generator`` decodes under a JSON schema (what tool calling relies on).

    Raises:
        ConfigError: the generator does not declare ``SupportsJsonSchema``, or has it off.
    """
    if not (isinstance(generator, SupportsJsonSchema) and generator.supports_json_schema):
        raise ConfigError(
            f"tool calling needs a generator that decodes under a JSON schema (SupportsJsonSchema with "
            f"supports_json_schema True, e.g. the on-device HFBackbone with constrained=True); "
            f"{type(generator).__name__} does not"
        )


def _arguments_schema(parameters: Mapping[str, Any]) -> dict[str, Any]:
    schema = {k: v for k, v in parameters.items() if k not in ("title", "description")}
    schema.setdefault("type", "object")
    schema.setdefault("properties", {})
    # Closed objects: a small model must not wander into made-up argument names.
    schema.setdefault("additionalProperties", False)
    return schema


def _choices(tools: Sequence[ToolSpec], choice: ToolChoice) -> tuple[list[ToolSpec], bool]:
    """The tools the model may call and whether it may answer instead."""
    if choice == "auto":
        return list(tools), True
    if choice == "required":
        if not tools:
            raise ConfigError("tool_choice='required' needs at least one tool")
        return list(tools), False
    if choice == "none":
        return [], True
    named = [t for t in tools if t.name == choice]
    if not named:
        raise ConfigError(f"tool_choice names {choice!r}, which is not one of the tools {[t.name for t in tools]}")
    return named, False


def tool_call_schema(tools: Sequence[ToolSpec], choice: ToolChoice = "auto") -> dict[str, Any]:
    """The JSON schema of the model's reply: a call to one of ``tools``, or (when allowed) an answer."""
    callable_tools, may_answer = _choices(tools, choice)
    variants: list[dict[str, Any]] = [
        {
            "type": "object",
            "properties": {"tool": {"const": tool.name}, "arguments": _arguments_schema(tool.parameters)},
            "required": ["tool", "arguments"],
            "additionalProperties": False,
        }
        for tool in callable_tools
    ]
    if may_answer:
        variants.append(
            {
                "type": "object",
                "properties": {"answer": {"type": "string"}},
                "required": ["answer"],
                "additionalProperties": False,
            }
        )
    return variants[0] if len(variants) == 1 else {"anyOf": variants}


@cache
def _template() -> Template:
    text = resources.files("memlora_engine.prompts").joinpath("tools", "tool_call.system.txt").read_text("utf-8")
    return Template(text)


def _describe(tool: ToolSpec) -> str:
    properties = tool.parameters.get("properties") or {}
    arguments = {name: spec.get("type", "any") if isinstance(spec, Mapping) else "any" for name, spec in properties.items()}
    line = f"- {tool.name}: {tool.description.strip() or 'no description'}"
    return f"{line} Arguments: {json.dumps(arguments)}"


def _instructions(tools: Sequence[ToolSpec], choice: ToolChoice) -> str:
    callable_tools, may_answer = _choices(tools, choice)
    call = 'To call a tool, reply with JSON {"tool": "<name>", "arguments": {...}}.'
    answer = 'To answer the user, reply with JSON {"answer": "<your reply>"}.'
    if not callable_tools:
        rule = answer
    elif may_answer:
        rule = f"{call} {answer} Call a tool only when you need its result."
    else:
        rule = f"{call} You must call a tool now."
    listing = "\n".join(_describe(t) for t in (callable_tools or tools))
    return _template().substitute(tools=listing, rule=rule).strip("\n")


def tool_call_request(
    messages: Sequence[ChatMessage],
    tools: Sequence[ToolSpec],
    choice: ToolChoice = "auto",
    *,
    max_new_tokens: int = 256,
    metadata: Mapping[str, Any] | None = None,
) -> GenerationRequest:
    """A generation request whose reply is a tool call or an answer, as :func:`tool_call_schema` allows.

    The tools and the reply format are described in the system message: appended to
    the conversation's first system message, since chat templates such as Gemma's take
    only one.
    """
    instructions = _instructions(tools, choice)
    rendered = [dict(m) for m in messages]
    if rendered and rendered[0].get("role") == "system":
        rendered[0]["content"] = f"{rendered[0].get('content') or ''}\n\n{instructions}".lstrip("\n")
    else:
        rendered.insert(0, {"role": "system", "content": instructions})
    return GenerationRequest(
        operation=Operation.GENERATION,
        messages=rendered,
        json_schema=tool_call_schema(tools, choice),
        max_new_tokens=max_new_tokens,
        metadata=dict(metadata or {}),
    )


def parse_tool_reply(text: str, tools: Sequence[ToolSpec]) -> ToolCall | str:
    """The model's reply as a :class:`ToolCall`, or the answer's text.

    Raises:
        ModelOutputError: the reply is not one of the shapes of :func:`tool_call_schema`
            (cut off by the token budget, or a generator that did not constrain); ``raw``
            keeps the text.
    """
    try:
        reply = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelOutputError(f"tool-call reply is not JSON: {exc}", raw=text, operation="generation") from exc
    if isinstance(reply, dict) and isinstance(reply.get("answer"), str):
        return reply["answer"]
    names = {t.name for t in tools}
    if isinstance(reply, dict) and reply.get("tool") in names and isinstance(reply.get("arguments"), dict):
        return ToolCall(reply["tool"], reply["arguments"])
    raise ModelOutputError(
        f"tool-call reply is neither a call to one of {sorted(names)} nor an answer", raw=text, operation="generation"
    )

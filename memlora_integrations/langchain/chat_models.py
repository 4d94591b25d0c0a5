"""LangChain chat model over an on-device MemLoRA generator."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput, ModelProfile
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, ToolMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import tool_call, tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field, field_validator

from memlora_engine import Generation, GenerationRequest, Memory, MissingDependencyError, ModelOutputError, Operation
from memlora_engine.generator import (
    Generator,
    SupportsContextLength,
    SupportsJsonSchema,
    SupportsStreaming,
    SupportsTokenCount,
)
from memlora_engine.messages import one_system_message
from memlora_engine.tool_calls import ToolCall, ToolSpec, parse_tool_reply, require_tool_calling, tool_call_request
from memlora_integrations.langchain._messages import to_prompt

__all__ = ["ChatMemLoRA"]

_DEFAULT_MAX_NEW_TOKENS = 256


class ChatMemLoRA(BaseChatModel):
    """Chat with the small on-device model that runs MemLoRA.

    Messages go to the generator as one ``GenerationRequest`` with
    ``operation=Operation.GENERATION``, so a backbone with a trained generation
    adapter answers with it. When the generator has ``stream(request)``, tokens are
    streamed; otherwise the whole answer arrives as one chunk.

    Capabilities, honestly: text in, text out, and tool calling (so
    ``with_structured_output`` works through a tool) when the generator decodes
    under a JSON schema (``SupportsJsonSchema``: the on-device backbone does). With
    tools bound, each reply is one JSON object decoded under a schema built from the
    tools: a call to one tool with arguments valid under its schema, or an answer
    (see :mod:`memlora_engine.tool_calls`). The schema guarantees well-formed calls;
    picking the right tool is the small model's judgement (measured in
    ``docs/langchain.md``). One call per reply (no parallel calls); with tools bound
    a reply arrives as one chunk when streamed. No images.
    ``temperature`` is passed to the backbone as a hint in the request metadata;
    ``stop`` is applied to the generated text here.

    Setup:
        .. code-block:: bash

            pip install "memlora[langchain,hf]"

    Key init args — completion params:
        generator: the engine generator (the on-device backbone, or any object with
            ``generate(request)``); :meth:`from_backbone` loads one.
        max_tokens: upper bound on generated tokens (256 when None).
        temperature: sampling hint passed to the backbone.
        stop: cut the answer at the first of these strings.
        max_tool_rounds: with tools bound, answer after this many rounds of tool
            results per user message (1; None lets the model decide).

    Key init args — client params:
        model: the name reported in traces (alias ``model_name``). There is no client:
            the model runs in this process (no timeout, retries or API key).

    Instantiate:
        .. code-block:: python

            from memlora_integrations.langchain import ChatMemLoRA

            llm = ChatMemLoRA.from_backbone(model="gemma-3-270m", max_tokens=64)
            # or over any engine generator (e.g. the scripted fake in tests):
            llm = ChatMemLoRA(generator=my_generator)

    Invoke:
        .. code-block:: python

            llm.invoke("Say hi in three words.").content

    Stream:
        .. code-block:: python

            for chunk in llm.stream("Tell me a short fact."):
                print(chunk.content, end="")

    Async:
        .. code-block:: python

            await llm.ainvoke("hi")  # runs the blocking generator in a worker thread
            async for chunk in llm.astream("hi"):
                print(chunk.content, end="")

    Tool calling:
        .. code-block:: python

            from langchain.agents import create_agent

            agent = create_agent(model=llm, tools=[get_weather, get_time])
            agent.invoke({"messages": [{"role": "user", "content": "Weather in Lisbon?"}]})
            llm.bind_tools([get_weather]).invoke("Weather in Lisbon?").tool_calls

    Structured output:
        .. code-block:: python

            from pydantic import BaseModel

            class Person(BaseModel):
                name: str
                age: int

            llm.with_structured_output(Person).invoke("Ana is 31.")  # decoded under Person's schema

    Token usage:
        .. code-block:: python

            llm.invoke("hi").usage_metadata  # from the generator's token counts
            # streamed: on the last chunk, when the backbone's stream ran to its end
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, populate_by_name=True)

    generator: Any
    """The engine generator (anything with ``generate(GenerationRequest) -> Generation``)."""
    model: str = Field(default="memlora", alias="model_name")
    """Name reported in traces (the backbone's name when built with :meth:`from_backbone`)."""
    max_tokens: int | None = Field(default=None, ge=1)
    """Upper bound on generated tokens (256 when None)."""
    temperature: float | None = None
    """Sampling temperature hint for the backbone (``request.metadata["temperature"]``)."""
    stop: list[str] | None = None
    """Cut the answer at the first of these strings."""
    streaming: bool = False
    """Stream through ``invoke`` as well (LangChain's standard flag)."""
    max_tool_rounds: int | None = Field(default=1, ge=1)
    """With tools bound and ``tool_choice="auto"``: once the messages since the last user
    message hold this many tool results, the reply must be an answer. The 270M experts
    tend to call a tool again after its result (an agent then loops to its recursion
    limit), so by default they answer after one round; None lets the model decide."""

    @field_validator("generator")
    @classmethod
    def _check_generator(cls, value: Any) -> Any:
        if not isinstance(value, Generator):
            raise ValueError(f"generator must have a generate(request) method, got {type(value).__name__}")
        return value

    # -- construction helpers ------------------------------------------------------------
    @classmethod
    def from_backbone(cls, model: str = "gemma-3-270m", adapters: dict[str, Any] | str | None = "shipped", *,
                      backbone_kwargs: dict[str, Any] | None = None, **kwargs: Any) -> ChatMemLoRA:
        """Build on the on-device backbone (loaded now; needs the ``hf`` extra).

        Args:
            model: a backbone name known to ``memlora_engine.backbone`` (or a local path).
            adapters: ``"shipped"`` (default): the adapters shipped for a built-in model; or
                a LoRA adapter per operation (the ``"generation"`` one answers chats); ``None``:
                the base model.
            backbone_kwargs: more arguments of ``memlora_engine.backbone.load_backbone``
                (``dtype``, ``device``, ``cache_dir``, ...).
            **kwargs: fields of ``ChatMemLoRA`` (``max_tokens``, ``stop``, ...).
        """
        try:
            from memlora_engine.backbone import load_backbone
        except ImportError as exc:
            raise MissingDependencyError("memlora_engine.backbone", "hf") from exc
        generator = load_backbone(model, adapters, **(backbone_kwargs or {}))
        return cls(generator=generator, model=model, **kwargs)

    @classmethod
    def from_memory(cls, memory: Memory, **kwargs: Any) -> ChatMemLoRA:
        """Share the generator of an engine ``Memory`` (one model in RAM for memory and chat)."""
        if memory.generator is None:
            raise ValueError("this Memory has no generator; pass generator= when building it")
        return cls(generator=memory.generator, **kwargs)

    # -- LangChain plumbing --------------------------------------------------------------
    @property
    def _llm_type(self) -> str:
        return "memlora"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model, "max_tokens": self.max_tokens, "temperature": self.temperature, "stop": self.stop}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider="memlora",
            ls_model_name=kwargs.get("model") or self.model,
            ls_model_type="chat",
        )
        if (temperature := kwargs.get("temperature", self.temperature)) is not None:
            params["ls_temperature"] = temperature
        if (max_tokens := kwargs.get("max_tokens", self.max_tokens)) is not None:
            params["ls_max_tokens"] = max_tokens
        if stop := stop or self.stop:
            params["ls_stop"] = stop
        return params

    def _resolve_model_profile(self) -> ModelProfile:
        """LangChain's ``profile``, from what the generator declares (an explicit ``profile=`` wins).

        Text in and out; tool calling when it decodes under a JSON schema; ``max_input_tokens``
        when it declares its context (``SupportsContextLength``): the context less
        ``max_output_tokens``. ``SummarizationMiddleware``'s fractional limits read it.
        No ``structured_output``: ``create_agent`` then structures answers through a tool.
        """
        max_output = self.max_tokens or _DEFAULT_MAX_NEW_TOKENS
        profile = ModelProfile(
            text_inputs=True, text_outputs=True, image_inputs=False, max_output_tokens=max_output,
            tool_calling=isinstance(self.generator, SupportsJsonSchema) and bool(self.generator.supports_json_schema),
        )
        if isinstance(self.generator, SupportsContextLength):
            profile["max_input_tokens"] = max(1, self.generator.context_length - max_output)
        return profile

    def get_num_tokens(self, text: str) -> int:
        """The backbone's own token count when it has ``count_tokens``; LangChain's estimate otherwise."""
        if isinstance(self.generator, SupportsTokenCount):
            return int(self.generator.count_tokens(text))
        return super().get_num_tokens(text)

    # -- tools ---------------------------------------------------------------------------
    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: dict[str, Any] | str | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools: each reply is then a call to one of them, or an answer.

        Args:
            tools: LangChain tools, functions, pydantic models or OpenAI tool dicts.
            tool_choice: ``None``/``"auto"``: call a tool or answer; ``"any"``,
                ``"required"`` or ``True``: call some tool; a tool's name (or
                ``{"type": "function", "function": {"name": ...}}``): call that tool;
                ``"none"``: answer.
            **kwargs: bound as call arguments; ``parallel_tool_calls`` and ``strict`` are
                accepted and have no effect (one call per reply, always under the schema).

        Raises:
            ConfigError: the generator cannot decode under a JSON schema.
        """
        require_tool_calling(self.generator)
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        choice = _tool_choice(tool_choice)
        if choice not in ("auto", "required", "none") and choice not in {t["function"]["name"] for t in formatted}:
            raise ValueError(f"tool_choice {choice!r} is not one of the bound tools")
        kwargs.pop("parallel_tool_calls", None)
        kwargs.pop("strict", None)
        return super().bind(tools=formatted, tool_choice=choice, **kwargs)

    # -- generation ----------------------------------------------------------------------
    def _request(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> GenerationRequest:
        max_tokens = kwargs.get("max_tokens", self.max_tokens) or _DEFAULT_MAX_NEW_TOKENS
        temperature = kwargs.get("temperature", self.temperature)
        metadata = {} if temperature is None else {"temperature": temperature}
        prompt = one_system_message(to_prompt(messages))  # chat templates such as Gemma's take one
        if kwargs.get("tools"):
            tools = [ToolSpec.from_openai(t) for t in kwargs["tools"]]
            choice = kwargs.get("tool_choice") or "auto"
            if choice == "auto" and self.max_tool_rounds is not None and _tool_results_this_turn(messages) >= self.max_tool_rounds:
                choice = "none"
            return tool_call_request(prompt, tools, choice, max_new_tokens=max_tokens, metadata=metadata)
        return GenerationRequest(
            operation=Operation.GENERATION,
            messages=prompt,
            max_new_tokens=max_tokens,
            metadata=metadata,
        )

    def _tool_reply(self, text: str, kwargs: dict[str, Any]) -> tuple[str, ToolCall | None]:
        """A tool-call reply as (answer text, None) or ("", the call)."""
        reply = parse_tool_reply(text, [ToolSpec.from_openai(t) for t in kwargs["tools"]])
        return ("", reply) if isinstance(reply, ToolCall) else (reply, None)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        stops = stop or self.stop or []
        request = self._request(messages, kwargs)
        generation: Generation = self.generator.generate(request)
        calls = []
        if kwargs.get("tools"):  # JSON under the tools' schema: stop strings do not apply
            try:
                text, call = self._tool_reply(generation.text, kwargs)
            except ModelOutputError as exc:
                if generation.output_tokens < request.max_new_tokens:
                    raise
                raise ModelOutputError(
                    f"the tool-call reply was cut at max_tokens={request.max_new_tokens} before its JSON ended; "
                    "raise max_tokens (a call's arguments, or a structured output, need room)",
                    raw=generation.text, operation=exc.operation,
                ) from exc
            if call is not None:
                calls.append(tool_call(name=call.name, args=call.arguments, id=f"call_{uuid.uuid4().hex[:24]}"))
        else:
            text = _cut(generation.text, stops)[0]
        message = AIMessage(
            content=text,
            tool_calls=calls,
            usage_metadata=_usage(generation.input_tokens, generation.output_tokens),
            response_metadata={"model_name": self.model, "model_provider": "memlora"},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        request = self._request(messages, kwargs)
        if kwargs.get("tools") or not isinstance(self.generator, SupportsStreaming):
            # A tool call is only known once its JSON is complete: one chunk.
            result = self._generate(messages, stop=stop, run_manager=None, **kwargs)
            message = result.generations[0].message
            assert isinstance(message, AIMessage)
            chunk = ChatGenerationChunk(
                message=AIMessageChunk(
                    content=message.text,
                    tool_call_chunks=[
                        tool_call_chunk(name=c["name"], args=json.dumps(c["args"]), id=c["id"], index=i)
                        for i, c in enumerate(message.tool_calls)
                    ],
                    usage_metadata=message.usage_metadata,
                    response_metadata=message.response_metadata,
                    chunk_position="last",
                )
            )
            if run_manager:
                run_manager.on_llm_new_token(message.text, chunk=chunk)
            yield chunk
            return
        tally = _Tally(self.generator.stream(request))
        for piece in _stop_stream(iter(tally), stop or self.stop or []):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
            if run_manager:
                run_manager.on_llm_new_token(piece, chunk=chunk)
            yield chunk
        finished = tally.result
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                usage_metadata=None if finished is None else _usage(finished.input_tokens, finished.output_tokens),
                response_metadata={"model_name": self.model, "model_provider": "memlora"},
                chunk_position="last",
            )
        )


class _Tally:
    """Iterates a generator's ``stream`` and keeps the :class:`Generation` it returns at its end.

    The on-device backbone returns one (with token counts) when it runs to the end; a
    stream cut by a stop string, or a generator that returns nothing, leaves ``None``.
    """

    def __init__(self, stream: Iterator[str]) -> None:
        self._stream = stream
        self.result: Generation | None = None

    def __iter__(self) -> Iterator[str]:
        returned = yield from self._stream
        self.result = returned if isinstance(returned, Generation) else None


def _tool_results_this_turn(messages: Sequence[BaseMessage]) -> int:
    """How many tool results follow the last user message."""
    count = 0
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            break
        count += isinstance(message, ToolMessage)
    return count


def _tool_choice(choice: dict[str, Any] | str | bool | None) -> str:
    """LangChain's ``tool_choice`` spellings as the engine's (auto, required, none or a tool name)."""
    if choice is None or choice is False or choice == "auto":
        return "auto"
    if choice is True or choice in ("any", "required"):
        return "required"
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name") or choice.get("name")
        if not name:
            raise ValueError(f"cannot read a tool name from tool_choice {choice!r}")
        return str(name)
    return str(choice)


def _usage(input_tokens: int, output_tokens: int) -> UsageMetadata:
    return UsageMetadata(input_tokens=input_tokens, output_tokens=output_tokens, total_tokens=input_tokens + output_tokens)


def _cut(text: str, stops: list[str]) -> tuple[str, bool]:
    """``text`` up to the first stop string, and whether one was found."""
    positions = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return (text[: min(positions)], True) if positions else (text, False)


def _stop_stream(pieces: Iterator[str], stops: list[str]) -> Iterator[str]:
    """Yield streamed text up to the first stop string, holding back only what could start one."""
    stops = [s for s in stops if s]
    if not stops:
        yield from (p for p in pieces if p)
        return
    hold = max(len(s) for s in stops) - 1
    buffer = ""
    for piece in pieces:
        buffer += piece
        text, stopped = _cut(buffer, stops)
        if stopped:
            if text:
                yield text
            return
        if len(buffer) > hold:
            ready, buffer = buffer[: len(buffer) - hold], buffer[len(buffer) - hold :]
            yield ready
    if buffer:
        yield buffer

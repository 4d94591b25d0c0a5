"""LangChain chat model over an on-device MemLoRA generator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, Field, field_validator

from memlora_engine import Generation, GenerationRequest, Memory, MissingDependencyError, Operation
from memlora_engine.generator import SupportsStreaming, SupportsTokenCount
from memlora_integrations.langchain._messages import to_prompt

__all__ = ["ChatMemLoRA"]

_DEFAULT_MAX_NEW_TOKENS = 256


class ChatMemLoRA(BaseChatModel):
    """Chat with the small on-device model that runs MemLoRA.

    Messages go to the generator as one ``GenerationRequest`` with
    ``operation=Operation.GENERATION``, so a backbone with a trained generation
    adapter answers with it. When the generator has ``stream(request)``, tokens are
    streamed; otherwise the whole answer arrives as one chunk.

    Capabilities, honestly: text in, text out. No tool calling, no native
    structured output (``with_structured_output`` is not supported), no images.
    ``temperature`` is passed to the backbone as a hint in the request metadata;
    ``stop`` is applied to the generated text here.

    Setup:
        .. code-block:: bash

            pip install "memlora[langchain,hf]"

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

    Token usage:
        .. code-block:: python

            llm.invoke("hi").usage_metadata  # from the generator's token counts
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

    @field_validator("generator")
    @classmethod
    def _check_generator(cls, value: Any) -> Any:
        if not callable(getattr(value, "generate", None)):
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

    def get_num_tokens(self, text: str) -> int:
        """The backbone's own token count when it has ``count_tokens``; LangChain's estimate otherwise."""
        if isinstance(self.generator, SupportsTokenCount):
            return int(self.generator.count_tokens(text))
        return super().get_num_tokens(text)

    # -- generation ----------------------------------------------------------------------
    def _request(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> GenerationRequest:
        max_tokens = kwargs.get("max_tokens", self.max_tokens) or _DEFAULT_MAX_NEW_TOKENS
        temperature = kwargs.get("temperature", self.temperature)
        return GenerationRequest(
            operation=Operation.GENERATION,
            messages=to_prompt(messages),
            max_new_tokens=max_tokens,
            metadata={} if temperature is None else {"temperature": temperature},
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        stops = stop or self.stop or []
        generation: Generation = self.generator.generate(self._request(messages, kwargs))
        text = _cut(generation.text, stops)[0]
        message = AIMessage(
            content=text,
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
        if not isinstance(self.generator, SupportsStreaming):
            result = self._generate(messages, stop=stop, run_manager=None, **kwargs)
            message = result.generations[0].message
            chunk = ChatGenerationChunk(
                message=AIMessageChunk(
                    content=message.text,
                    usage_metadata=message.usage_metadata,  # type: ignore[attr-defined]
                    response_metadata=message.response_metadata,
                    chunk_position="last",
                )
            )
            if run_manager:
                run_manager.on_llm_new_token(message.text, chunk=chunk)
            yield chunk
            return
        for piece in _stop_stream(self.generator.stream(request), stop or self.stop or []):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
            if run_manager:
                run_manager.on_llm_new_token(piece, chunk=chunk)
            yield chunk
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                response_metadata={"model_name": self.model, "model_provider": "memlora"},
                chunk_position="last",
            )
        )


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

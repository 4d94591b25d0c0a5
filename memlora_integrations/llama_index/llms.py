"""``MemLoRALLM``: the on-device MemLoRA model as a LlamaIndex LLM."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.custom import CustomLLM

from memlora_engine.generator import Generator, SupportsContextLength
from memlora_integrations.llama_index._messages import engine_role, message_text

__all__ = ["MemLoRALLM"]

_DONE = object()


async def _in_threads(chunks: Iterator[Any]) -> AsyncIterator[Any]:
    """Each chunk of a blocking stream pulled in a worker thread, as it is produced."""
    while (chunk := await asyncio.to_thread(next, chunks, _DONE)) is not _DONE:
        yield chunk


class MemLoRALLM(CustomLLM):
    """Any MemLoRA engine ``Generator`` (the on-device backbone) as a LlamaIndex chat LLM.

    Chat messages go to the generator as one ``GenerationRequest`` with
    ``operation=Operation.GENERATION``, so a backbone answers with its generation
    adapter. Streaming uses the generator's optional ``stream(request)`` (text
    deltas) and otherwise yields the whole answer once. System messages (a chat
    engine's or agent's prompt, a memory's) are folded into one, as Gemma's chat
    template requires.

    Not a ``FunctionCallingLLM`` (``is_function_calling_model=False``): ``FunctionAgent``
    refuses it; use ``ReActAgent``, which calls tools through text. Native, schema-
    constrained tool calls on-device are in the LangChain ``ChatMemLoRA``.

    Setup:
        .. code-block:: bash

            pip install "memlora[llamaindex,hf]"

    Instantiate:
        .. code-block:: python

            from memlora_integrations.llama_index import MemLoRALLM

            llm = MemLoRALLM.from_backbone(model="gemma-3-270m")  # on-device, lazily loaded
            llm = MemLoRALLM(generator=my_generator)             # or any engine Generator

    Usage:
        .. code-block:: python

            llm.chat([ChatMessage(role="user", content="Hi!")]).message.content
            for chunk in llm.stream_complete("Tell me a joke"):
                print(chunk.delta, end="")

    Use within a chat engine:
        .. code-block:: python

            from llama_index.core.chat_engine import SimpleChatEngine

            SimpleChatEngine.from_defaults(llm=llm, memory=memory).chat("Hi!")
    """

    model_name: str = Field(default="memlora", description="The model's name, shown in metadata.")
    context_window: int = Field(default=32768, gt=0, description=(
        "Tokens one call may hold: by default the generator's declared context (SupportsContextLength: "
        "llama.cpp's n_ctx, 8192 for the on-device backbone), else 32768 (Gemma 3 270M's 32K)."))
    max_new_tokens: int = Field(default=256, gt=0, description="Upper bound on generated tokens per call.")

    _generator: Any = PrivateAttr()

    def __init__(self, *, generator: Any, **data: Any) -> None:
        if not isinstance(generator, Generator):
            raise TypeError(f"generator must have generate(request), got {type(generator).__name__}")
        if "context_window" not in data and isinstance(generator, SupportsContextLength):
            data["context_window"] = generator.context_length
        super().__init__(**data)
        self._generator = generator

    @classmethod
    def class_name(cls) -> str:
        return "MemLoRALLM"

    @classmethod
    def from_backbone(cls, model: str = "gemma-3-270m", *, backbone_kwargs: dict[str, Any] | None = None,
                      **kwargs: Any) -> MemLoRALLM:
        """Load the on-device backbone ``model`` (``memlora_engine.backbone.load_backbone``).

        ``backbone_kwargs`` go to ``load_backbone``; ``kwargs`` are this LLM's fields.
        """
        try:
            from memlora_engine.backbone import load_backbone
        except ImportError as exc:
            from memlora_engine import MissingDependencyError

            raise MissingDependencyError("memlora_engine.backbone", "hf") from exc
        kwargs.setdefault("model_name", model)
        return cls(generator=load_backbone(model, **(backbone_kwargs or {})), **kwargs)

    @property
    def generator(self) -> Any:
        """The engine generator this LLM calls."""
        return self._generator

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(
            context_window=self.context_window,
            num_output=self.max_new_tokens,
            is_chat_model=True,
            is_function_calling_model=False,
            model_name=self.model_name,
            system_role=MessageRole.SYSTEM,
        )

    # -- requests -----------------------------------------------------------------------
    def _request(self, messages: Sequence[ChatMessage], **kwargs: Any) -> Any:
        from memlora_engine import GenerationRequest, Operation
        from memlora_engine.messages import one_system_message

        rendered = []
        for message in messages:
            role = engine_role(message)
            # a Generator speaks system/user/assistant; tool output reaches the model as user text
            rendered.append({"role": "user" if role == "tool" else role, "content": message_text(message)})
        return GenerationRequest(
            operation=Operation.GENERATION,
            # an engine's or agent's system prompt plus the memory's: one system message (Gemma takes one)
            messages=one_system_message(rendered),
            max_new_tokens=int(kwargs.get("max_new_tokens") or self.max_new_tokens),
        )

    def _prompt_messages(self, prompt: str, formatted: bool) -> list[ChatMessage]:
        if not formatted and self.completion_to_prompt is not None:
            prompt = self.completion_to_prompt(prompt)
        messages = [ChatMessage(role=MessageRole.USER, content=prompt)]
        if self.system_prompt:
            messages.insert(0, ChatMessage(role=MessageRole.SYSTEM, content=self.system_prompt))
        return messages

    def _generate(self, messages: Sequence[ChatMessage], **kwargs: Any) -> str:
        return self._generator.generate(self._request(messages, **kwargs)).text

    def _deltas(self, messages: Sequence[ChatMessage], **kwargs: Any) -> Iterator[str]:
        from memlora_engine.generator import SupportsStreaming

        if isinstance(self._generator, SupportsStreaming):
            yield from self._generator.stream(self._request(messages, **kwargs))
        else:
            yield self._generate(messages, **kwargs)

    # -- sync -----------------------------------------------------------------------------
    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        text = self._generate(messages, **kwargs)
        return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text))

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        def gen() -> ChatResponseGen:
            text = ""
            for delta in self._deltas(messages, **kwargs):
                text += delta
                yield ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text), delta=delta)

        return gen()

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(text=self._generate(self._prompt_messages(prompt, formatted), **kwargs))

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        messages = self._prompt_messages(prompt, formatted)

        def gen() -> CompletionResponseGen:
            text = ""
            for delta in self._deltas(messages, **kwargs):
                text += delta
                yield CompletionResponse(text=text, delta=delta)

        return gen()

    # -- async: the model runs in a worker thread so the event loop stays free --------------
    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        text = await asyncio.to_thread(self._generate, messages, **kwargs)
        return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text))

    @llm_completion_callback()
    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        messages = self._prompt_messages(prompt, formatted)
        return CompletionResponse(text=await asyncio.to_thread(self._generate, messages, **kwargs))

    @llm_chat_callback()
    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        return _in_threads(self.stream_chat(messages, **kwargs))

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        return _in_threads(self.stream_complete(prompt, formatted=formatted, **kwargs))

"""Teachers: any chat model that answers a rendered prompt, behind one small protocol.

A :class:`Teacher` turns chat messages (the prompt exactly as the engine renders it)
into text. Three adapters cover the usual sources:

* :class:`ChatModelTeacher` -- a LangChain ``BaseChatModel`` (anything with ``.invoke``);
* :class:`OpenAICompatibleTeacher` -- an OpenAI-compatible ``/chat/completions`` endpoint;
* :class:`GeneratorTeacher` -- an engine :class:`~memlora_engine.generator.Generator`, e.g. a
  larger local transformers model loaded with :func:`memlora_engine.backbone.load_backbone`.

:class:`CachedTeacher` makes any of them resumable (answers cached as JSONL, keyed by
prompt), and :class:`TeacherGenerator` lets the engine's own :class:`~memlora_engine.Memory`
drive a teacher while recording every call: that is how distillation data is collected
(the prompts are then exactly the ones the student will see).

The offline signals built from LoCoMo itself (:mod:`memlora_engine.training.signals`)
implement the same protocol.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from memlora_engine._openai_compat import chat_completion_content
from memlora_engine.errors import GeneratorError
from memlora_engine.generator import ChatMessage, Generation, GenerationRequest, Generator, SupportsAdapters
from memlora_engine.types import Operation

__all__ = [
    "CachedTeacher",
    "ChatModelTeacher",
    "GeneratorTeacher",
    "OpenAICompatibleTeacher",
    "Teacher",
    "TeacherCall",
    "TeacherGenerator",
]


@runtime_checkable
class Teacher(Protocol):
    """A model that answers a prompt for one operation.

    ``messages`` are OpenAI-style chat messages; a VLM teacher receives image parts
    (``{"type": "image_url", ...}``) in the user content.
    """

    name: str

    def complete(
        self,
        messages: list[ChatMessage],
        *,
        operation: Operation,
        json_schema: dict[str, Any] | None = None,
        max_new_tokens: int = 1024,
    ) -> str:
        """Return the teacher's raw text (thinking and chatter are cleaned later)."""
        ...


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return "".join(p if isinstance(p, str) else str(p.get("text", "")) for p in content if isinstance(p, (str, dict)))
    return str(content)


class ChatModelTeacher:
    """A LangChain chat model (duck-typed: ``invoke(messages)`` returning ``.content``).

    Example:
        >>> from langchain_core.language_models.fake_chat_models import FakeListChatModel
        >>> teacher = ChatModelTeacher(FakeListChatModel(responses=['{"facts": []}']))
        >>> teacher.complete([{"role": "user", "content": "hi"}], operation=Operation.EXTRACTION)
        '{"facts": []}'
    """

    def __init__(self, model: Any, name: str | None = None) -> None:
        if not callable(getattr(model, "invoke", None)):
            raise TypeError("ChatModelTeacher needs an object with .invoke(messages), e.g. a LangChain chat model")
        self.model = model
        self.name = name or getattr(model, "model_name", None) or getattr(model, "model", None) or type(model).__name__

    def complete(self, messages: list[ChatMessage], *, operation: Operation, json_schema: dict[str, Any] | None = None,
                 max_new_tokens: int = 1024) -> str:
        try:
            reply = self.model.invoke([{"role": m["role"], "content": m["content"]} for m in messages])
        except Exception as exc:  # a third-party model: map whatever it raises once, here
            raise GeneratorError(f"teacher {self.name} failed on {Operation(operation).value}: {exc}") from exc
        return _content_text(getattr(reply, "content", reply))


class OpenAICompatibleTeacher:
    """A model behind an OpenAI-compatible ``/chat/completions`` endpoint (vLLM, llama.cpp, ...).

    Args:
        base_url: e.g. ``http://127.0.0.1:8000/v1``.
        model: the model name the server expects.
        api_key: sent as a bearer token when given.
        json_mode: ask for ``response_format`` JSON when the request has a schema.
    """

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, timeout: float = 300.0,
                 temperature: float = 0.0, json_mode: bool = True) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.name = model
        self.api_key = api_key
        self.timeout = timeout
        self.temperature = temperature
        self.json_mode = json_mode

    def complete(self, messages: list[ChatMessage], *, operation: Operation, json_schema: dict[str, Any] | None = None,
                 max_new_tokens: int = 1024) -> str:
        body: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": self.temperature,
                                "max_tokens": max_new_tokens}
        if json_schema is not None and self.json_mode:
            body["response_format"] = {"type": "json_object"}
        content = chat_completion_content(
            self.url, body, api_key=self.api_key, timeout=self.timeout, what=f"teacher {self.model} at {self.url}"
        )
        return _content_text(content)


class GeneratorTeacher:
    """An engine generator as teacher (e.g. a larger local model via ``load_backbone``)."""

    def __init__(self, generator: Generator, name: str | None = None) -> None:
        self.generator = generator
        self.name = name or getattr(generator, "name", None) or type(generator).__name__

    def complete(self, messages: list[ChatMessage], *, operation: Operation, json_schema: dict[str, Any] | None = None,
                 max_new_tokens: int = 1024) -> str:
        request = GenerationRequest(Operation(operation), list(messages), json_schema, max_new_tokens)
        return self.generator.generate(request).text


def prompt_key(operation: Operation, messages: list[ChatMessage]) -> str:
    """A stable key of one prompt (for the teacher cache)."""
    payload = json.dumps([Operation(operation).value, messages], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class CachedTeacher:
    """Wraps a teacher; answers are appended to a JSONL file and reused on the next run.

    A distillation run with a slow remote teacher can stop at any point: the rerun
    replays cached answers instantly and continues where it stopped.
    """

    def __init__(self, teacher: Teacher, path: str | Path) -> None:
        self.teacher = teacher
        self.name = teacher.name
        self.path = Path(path)
        self._lock = threading.Lock()
        self._cache: dict[str, str] = {}
        self.hits = 0
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a torn last line from an interrupted run
                self._cache[record["key"]] = record["output"]

    def complete(self, messages: list[ChatMessage], *, operation: Operation, json_schema: dict[str, Any] | None = None,
                 max_new_tokens: int = 1024) -> str:
        key = prompt_key(operation, messages)
        with self._lock:
            if key in self._cache:
                self.hits += 1
                return self._cache[key]
        output = self.teacher.complete(messages, operation=operation, json_schema=json_schema,
                                       max_new_tokens=max_new_tokens)
        with self._lock:
            self._cache[key] = output
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps({"key": key, "operation": Operation(operation).value, "output": output},
                                        ensure_ascii=False) + "\n")
        return output


@dataclass
class TeacherCall:
    """One recorded teacher call: the prompt as the engine rendered it and the raw answer."""

    operation: Operation
    messages: list[ChatMessage]
    output: str
    context: dict[str, Any] = field(default_factory=dict)


class TeacherGenerator(SupportsAdapters):
    """An engine :class:`~memlora_engine.generator.Generator` answered by per-operation teachers.

    Reports every operation as having an adapter, so the engine renders the short
    MemLoRA prompts (the ones the adapters are trained on). Every call is appended to
    :attr:`calls` with the current :attr:`context` (set by the data builder).

    Args:
        teachers: operation -> teacher. A missing operation raises ``GeneratorError``.
        on_call: called with each :class:`TeacherCall` as it happens.
    """

    def __init__(self, teachers: Mapping[Operation, Teacher] | Mapping[str, Teacher],
                 on_call: Callable[[TeacherCall], None] | None = None) -> None:
        self.teachers = {Operation(k): v for k, v in teachers.items()}
        self.calls: list[TeacherCall] = []
        self.context: dict[str, Any] = {}
        self._on_call = on_call

    def has_adapter(self, operation: Operation) -> bool:
        return True

    def generate(self, request: GenerationRequest) -> Generation:
        teacher = self.teachers.get(request.operation)
        if teacher is None:
            raise GeneratorError(f"no teacher configured for {request.operation.value!r}")
        output = teacher.complete(request.messages, operation=request.operation, json_schema=request.json_schema,
                                  max_new_tokens=max(request.max_new_tokens, 1024))
        call = TeacherCall(request.operation, list(request.messages), output, dict(self.context))
        self.calls.append(call)
        if self._on_call is not None:
            self._on_call(call)
        return Generation(text=output)

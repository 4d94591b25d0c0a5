"""An OpenAI-compatible server over one in-process generator (``memlora serve``).

``/v1/chat/completions`` and ``/v1/models`` over a :class:`~memlora_engine.generator.Generator`
(the on-device backbone, or :class:`~memlora_engine.testing.ScriptedGenerator` in tests):
one model name per operation that has an adapter (``extraction``, ``update``,
``generation``) plus the base model under its own name, like vLLM's
``--lora-modules``. Several worker processes then share one loaded model through
:class:`~memlora_engine.remote.OpenAICompatibleGenerator`, and the same client later
talks to vLLM or SGLang.

What is honoured: ``model``, ``messages`` (text content, string or ``text`` parts),
``max_tokens`` / ``max_completion_tokens``, ``response_format`` (``json_schema``: decoded
under the schema by a backbone with constrained decoding; ``json_object``: any
object). Decoding is greedy, so ``temperature``/``top_p``/``seed`` are accepted and
ignored; ``n > 1``, ``stream`` and image parts are refused with HTTP 400. Calls are
serialised (one model, one lock) and run in a worker thread, so the event loop keeps
accepting requests meanwhile.

Built on Starlette (``pip install "memlora[serve]"``), imported when the app is built.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from memlora_engine.errors import ConfigError, GeneratorError, require
from memlora_engine.generator import Generation, GenerationRequest, Generator, SupportsAdapters, SupportsContextLength
from memlora_engine.remote import OPERATION_HEADER
from memlora_engine.types import Operation

__all__ = ["ServedModel", "create_app", "served_models"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_TOKENS = 256


@dataclass(frozen=True)
class ServedModel:
    """One name in ``/v1/models``: an operation's adapter, or the base model.

    Attributes:
        name: the ``model`` a request names.
        operation: the operation the call runs as (selects the adapter); for the base
            model, the client's ``X-MemLoRA-Operation`` header when it names one.
        use_adapter: False for the base model (adapters disabled).
        parent: the base model's name for an adapter (as vLLM lists LoRA modules).
    """

    name: str
    operation: Operation
    use_adapter: bool = True
    parent: str | None = None


def served_models(generator: Generator, base_name: str) -> list[ServedModel]:
    """The names ``generator`` is served under: one per operation with an adapter, then ``base_name``."""
    adapters = [op for op in Operation if isinstance(generator, SupportsAdapters) and generator.has_adapter(op)]
    if base_name in {op.value for op in adapters}:
        raise ConfigError(f"the base model cannot be named like an operation: {base_name!r}")
    models = [ServedModel(op.value, op, parent=base_name) for op in adapters]
    return [*models, ServedModel(base_name, Operation.GENERATION, use_adapter=False)]


class _ChatRequest(BaseModel):
    """The fields of a chat completion request this server reads (others are accepted and ignored)."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[dict[str, Any]] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    response_format: dict[str, Any] | None = None
    n: int = 1
    stream: bool = False


class _BadRequest(Exception):
    def __init__(self, message: str, status: int = 400, code: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts: list[str] = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise _BadRequest(f"only text content parts are supported, got {kind!r}")
            texts.append(str(part.get("text", "")))
        return "".join(texts)
    raise _BadRequest("message content must be a string or a list of text parts")


def _schema(response_format: dict[str, Any] | None) -> dict[str, Any] | None:
    if response_format is None:
        return None
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "object"}
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        if not isinstance(schema, dict):
            raise _BadRequest("response_format json_schema needs json_schema.schema (an object)")
        return schema
    raise _BadRequest(f"response_format type must be text, json_object or json_schema, got {kind!r}")


def _request(body: _ChatRequest, models: dict[str, ServedModel], label: str | None) -> GenerationRequest:
    served = models.get(body.model)
    if served is None:
        raise _BadRequest(f"model {body.model!r} does not exist; served: {sorted(models)}", 404, "model_not_found")
    if body.stream:
        raise _BadRequest("stream is not supported by memlora serve")
    if body.n != 1:
        raise _BadRequest("n must be 1")
    messages = []
    for message in body.messages:
        role = message.get("role")
        if role not in ("system", "user", "assistant"):
            raise _BadRequest(f"message role must be system, user or assistant, got {role!r}")
        messages.append({"role": role, "content": _text(message.get("content", ""))})
    operation = served.operation
    if not served.use_adapter and label in {op.value for op in Operation}:
        operation = Operation(label)  # the base model runs any operation: keep the client's label
    return GenerationRequest(
        operation=operation,
        messages=messages,
        json_schema=_schema(body.response_format),
        max_new_tokens=body.max_completion_tokens or body.max_tokens or DEFAULT_MAX_TOKENS,
        use_adapter=served.use_adapter,
    )


def _completion(name: str, request: GenerationRequest, result: Generation) -> dict[str, Any]:
    finish = "length" if result.output_tokens >= request.max_new_tokens else "stop"
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": name,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": result.text}, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": result.input_tokens,
            "completion_tokens": result.output_tokens,
            "total_tokens": result.input_tokens + result.output_tokens,
        },
    }


def create_app(
    generator: Generator,
    *,
    base_name: str = "base",
    models: Sequence[ServedModel] | None = None,
    api_key: str | None = None,
) -> Any:
    """The ASGI app serving ``generator`` (run it with uvicorn, or call it through ``httpx.ASGITransport``).

    Args:
        generator: the model; every call holds one lock, so it is used by one request at a time.
        base_name: the name of the base model (adapters disabled) in ``/v1/models``.
        models: the served names; :func:`served_models` of ``generator`` by default.
        api_key: when set, every ``/v1`` request needs ``Authorization: Bearer <api_key>``
            (401 otherwise); ``/health`` stays open.

    Raises:
        MissingDependencyError: ``memlora[serve]`` is not installed.
    """
    applications = require("starlette.applications", "serve")
    responses = require("starlette.responses", "serve")
    routing = require("starlette.routing", "serve")
    served = {m.name: m for m in (models if models is not None else served_models(generator, base_name))}
    # vLLM's field for the tokens one call may hold, when the model declares them
    context = {"max_model_len": generator.context_length} if isinstance(generator, SupportsContextLength) else {}
    lock = threading.Lock()
    created = int(time.time())

    def error(message: str, status: int, code: str) -> Any:
        kind = "authentication_error" if status == 401 else "invalid_request_error" if status < 500 else "server_error"
        return responses.JSONResponse({"error": {"message": message, "type": kind, "code": code}}, status_code=status)

    def authorised(request: Any) -> bool:
        if not api_key:
            return True
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), api_key.encode())

    def generate(call: GenerationRequest) -> Generation:
        with lock:  # one model: one call at a time, whichever adapter it needs
            return generator.generate(call)

    async def chat_completions(request: Any) -> Any:
        if not authorised(request):
            return error("invalid or missing API key", 401, "invalid_api_key")
        try:
            body = _ChatRequest.model_validate(await request.json())
            call = _request(body, served, request.headers.get(OPERATION_HEADER))
        except ValueError as exc:  # a body that is not JSON, or not a chat request (pydantic's ValidationError)
            message = exc.errors(include_url=False) if isinstance(exc, ValidationError) else str(exc)
            return error(f"invalid request: {message}", 400, "invalid_request_error")
        except _BadRequest as exc:
            return error(str(exc), exc.status, exc.code)
        try:
            result = await asyncio.to_thread(generate, call)
        except ConfigError as exc:  # e.g. a schema the constraint cannot compile
            return error(str(exc), 400, "invalid_request_error")
        except GeneratorError as exc:
            logger.warning("generation failed on %s: %s", body.model, exc)
            return error(str(exc), 500, "generation_failed")
        return responses.JSONResponse(_completion(body.model, call, result))

    async def list_models(request: Any) -> Any:
        if not authorised(request):
            return error("invalid or missing API key", 401, "invalid_api_key")
        data = [{"id": m.name, "object": "model", "created": created, "owned_by": "memlora",
                 "root": m.name, "parent": m.parent, **context} for m in served.values()]
        return responses.JSONResponse({"object": "list", "data": data})

    async def health(request: Any) -> Any:
        return responses.JSONResponse({"status": "ok"})

    return applications.Starlette(routes=[
        routing.Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        routing.Route("/v1/models", list_models, methods=["GET"]),
        routing.Route("/health", health, methods=["GET"]),
    ])

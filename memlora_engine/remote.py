"""``OpenAICompatibleGenerator``: the engine's operations on an OpenAI-compatible server.

vLLM, SGLang, LoRAX, llama.cpp's server and ``memlora serve`` all serve several LoRA
adapters over one base model behind ``/v1/chat/completions``, choosing the adapter by
the request's ``model`` name. This generator sends each operation to its own model
name, so one server batches the extraction, update and generation experts of many
users. The engine keeps rendering the prompts and parsing the outputs: the server
only sees chat messages, exactly those the in-process backbone would see.

Each request carries the operation's JSON schema as ``response_format``
(``{"type": "json_schema", ...}``), which vLLM, SGLang and ``memlora serve`` decode
under; token counts come from the reply's ``usage``.

Failures: a timeout, a dropped connection, HTTP 429 or 5xx are retried
``max_retries`` times with exponential backoff; then, or at once for any other
error reply or a malformed body, :class:`~memlora_engine.errors.GeneratorError`.

``httpx`` is imported when the first request is sent (``pip install "memlora[remote]"``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from memlora_engine.errors import ConfigError, GeneratorError, require
from memlora_engine.generator import Generation, GenerationRequest, SupportsAdapters, SupportsAsyncGeneration
from memlora_engine.types import Operation

__all__ = ["OPERATION_HEADER", "OpenAICompatibleGenerator", "default_model_names"]

logger = logging.getLogger(__name__)

_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})

OPERATION_HEADER = "X-MemLoRA-Operation"
"""Names the operation of each request: for logs and routers; ``memlora serve`` labels base-model calls with it."""


def default_model_names() -> dict[Operation, str]:
    """Operation -> served model name by default: the operation's name (``memlora serve``'s names)."""
    return {op: op.value for op in Operation}


class OpenAICompatibleGenerator(SupportsAdapters, SupportsAsyncGeneration):
    """A :class:`~memlora_engine.generator.Generator` on an OpenAI-compatible ``/v1/chat/completions``.

    Args:
        base_url: the API root, e.g. ``http://127.0.0.1:8000/v1``.
        models: operation -> model name on the server (the adapter's name, e.g. vLLM's
            ``--lora-modules extraction=...``); operations left out use their own name.
        base_model: the server's name of the base model without adapter. Operations
            mapped to it count as running on the base model, so the engine renders its
            base-model prompts for them (:class:`~memlora_engine.generator.SupportsAdapters`).
        api_key: sent as ``Authorization: Bearer <key>`` when given.
        timeout: seconds per attempt (connect, read and write each).
        max_retries: further attempts after a timeout, a dropped connection, 408, 429 or 5xx.
        backoff: seconds before the first retry; doubled for each next one.
        extra_body: more fields for every request body (e.g. ``{"seed": 0}``).
        operation_body: more fields per operation, after ``extra_body``; for servers that
            choose the adapter by a field rather than the model name, e.g. llama.cpp's
            ``{"extraction": {"lora": [{"id": 0, "scale": 1.0}, {"id": 1, "scale": 0.0}]}}``.
        transport: an ``httpx`` transport for the sync client (default: the network).
        async_transport: an ``httpx`` async transport for :meth:`agenerate` (e.g.
            ``httpx.ASGITransport(app)`` to call an in-process app).

    Thread-safe (one pooled ``httpx.Client``); :meth:`agenerate` uses an
    ``httpx.AsyncClient`` per event loop. :meth:`close` / :meth:`aclose` release them.

    Example:
        >>> from memlora_engine import Memory
        >>> from memlora_engine.remote import OpenAICompatibleGenerator
        >>> generator = OpenAICompatibleGenerator("http://127.0.0.1:8000/v1")
        >>> # memory = Memory(generator=generator)  # extraction -> model "extraction", ...
    """

    def __init__(
        self,
        base_url: str,
        models: Mapping[str | Operation, str] | None = None,
        *,
        base_model: str | None = None,
        api_key: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        extra_body: Mapping[str, Any] | None = None,
        operation_body: Mapping[str | Operation, Mapping[str, Any]] | None = None,
        transport: Any = None,
        async_transport: Any = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"base_url must be an http(s) URL, got {base_url!r}")
        if timeout <= 0 or max_retries < 0 or backoff < 0:
            raise ConfigError("timeout must be > 0, max_retries and backoff >= 0")
        self.base_url = base_url.rstrip("/")
        self.models = default_model_names()
        for operation, name in (models or {}).items():
            self.models[Operation(operation)] = str(name)
        self.base_model = base_model
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.backoff = float(backoff)
        self.extra_body = dict(extra_body or {})
        self.operation_body = {Operation(op): dict(fields) for op, fields in (operation_body or {}).items()}
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._transport = transport
        self._async_transport = async_transport
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._async_clients: dict[asyncio.AbstractEventLoop, Any] = {}

    @property
    def name(self) -> str:
        """A label for logs: the server's URL."""
        return self.base_url

    def has_adapter(self, operation: Operation) -> bool:
        """False when ``operation`` is sent to the base model (``base_model``), True otherwise."""
        return self.base_model is None or self.models[Operation(operation)] != self.base_model

    # -- one request, shared by both paths --------------------------------------------------
    def _body(self, request: GenerationRequest) -> dict[str, Any]:
        if request.images:
            raise GeneratorError("OpenAICompatibleGenerator sends text only; images need an in-process VLM backbone")
        body: dict[str, Any] = {
            "model": self.models[request.operation],
            "messages": [{"role": m["role"], "content": m["content"]} for m in request.messages],
            "max_tokens": request.max_new_tokens,
            "temperature": 0.0,
            **self.extra_body,
            **self.operation_body.get(request.operation, {}),
        }
        if request.json_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": request.operation.value, "schema": request.json_schema, "strict": True},
            }
        return body

    def _what(self, request: GenerationRequest) -> str:
        return f"{request.operation.value} on model {self.models[request.operation]!r} at {self.base_url}"

    def _parse(self, request: GenerationRequest, response: Any) -> Generation:
        try:
            data = response.json()
            choice = data["choices"][0]
            text = choice["message"]["content"]
            usage = data.get("usage") or {}
            if not isinstance(text, str):
                raise TypeError(f"content is {type(text).__name__}, not a string")
            return Generation(
                text=text,
                input_tokens=int(usage.get("prompt_tokens") or 0),
                output_tokens=int(usage.get("completion_tokens") or 0),
            )
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise GeneratorError(f"{self._what(request)}: malformed reply ({exc}): {response.text[:200]!r}") from exc

    def _failure(self, request: GenerationRequest, response: Any) -> GeneratorError:
        detail = response.text[:300]
        try:  # OpenAI nests {"error": {"message"}}; vLLM answers {"object": "error", "message"}
            data = response.json()
            error = data.get("error", data)
            detail = str(error.get("message", error) if isinstance(error, dict) else error)
        except (ValueError, AttributeError):
            pass
        hint = " (check api_key)" if response.status_code in (401, 403) else ""
        return GeneratorError(f"{self._what(request)}: HTTP {response.status_code}{hint}: {detail}")

    def _settle(self, request: GenerationRequest, attempt: int, response: Any, error: Exception | None
                ) -> Generation | float:
        """One attempt's outcome: its :class:`Generation`, or the seconds to wait before retrying.

        Raises ``GeneratorError`` when the failure is final (not transient, or no retry left).
        """
        last = attempt >= self.max_retries
        if error is not None:  # timeouts, refused and dropped connections
            if last:
                raise GeneratorError(f"{self._what(request)} failed: {error!r}") from error
            logger.warning("%s: %r; retry %d/%d", self._what(request), error, attempt + 1, self.max_retries)
        elif response.status_code == 200:
            return self._parse(request, response)
        elif last or int(response.status_code) not in _RETRY_STATUS:
            raise self._failure(request, response)
        else:
            logger.warning("%s: HTTP %d; retry %d/%d", self._what(request), response.status_code,
                           attempt + 1, self.max_retries)
        return float(self.backoff * (2**attempt))

    # -- sync -------------------------------------------------------------------------------
    def _sync_client(self) -> Any:
        with self._client_lock:  # one pooled client, even when the first calls come from several threads
            if self._client is None:
                httpx = require("httpx", "remote")
                self._client = httpx.Client(timeout=self.timeout, headers=self._headers, transport=self._transport)
            return self._client

    def generate(self, request: GenerationRequest) -> Generation:
        """POST ``request`` to the server (retrying transient failures) and return its text and token counts.

        Raises:
            GeneratorError: the server failed, refused or answered with a malformed body.
        """
        httpx = require("httpx", "remote")
        client = self._sync_client()
        body = self._body(request)
        url = f"{self.base_url}/chat/completions"
        for attempt in range(self.max_retries + 1):
            response, error = None, None
            try:
                response = client.post(url, json=body, headers={OPERATION_HEADER: request.operation.value})
            except httpx.TransportError as exc:
                error = exc
            outcome = self._settle(request, attempt, response, error)
            if isinstance(outcome, Generation):
                return outcome
            time.sleep(outcome)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def close(self) -> None:
        """Close the sync client's connections (the async ones: :meth:`aclose`)."""
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    # -- async ------------------------------------------------------------------------------
    def _loop_client(self) -> Any:
        # An AsyncClient's connections belong to the loop that opened them: one per loop.
        loop = asyncio.get_running_loop()
        client = self._async_clients.get(loop)
        if client is None:
            for old in [lp for lp in self._async_clients if lp.is_closed()]:
                del self._async_clients[old]
            httpx = require("httpx", "remote")
            client = httpx.AsyncClient(timeout=self.timeout, headers=self._headers, transport=self._async_transport)
            self._async_clients[loop] = client
        return client

    async def agenerate(self, request: GenerationRequest) -> Generation:
        """:meth:`generate` as a coroutine on ``httpx.AsyncClient``: the event loop keeps running meanwhile."""
        httpx = require("httpx", "remote")
        client = self._loop_client()
        body = self._body(request)
        url = f"{self.base_url}/chat/completions"
        for attempt in range(self.max_retries + 1):
            response, error = None, None
            try:
                response = await client.post(url, json=body, headers={OPERATION_HEADER: request.operation.value})
            except httpx.TransportError as exc:
                error = exc
            outcome = self._settle(request, attempt, response, error)
            if isinstance(outcome, Generation):
                return outcome
            await asyncio.sleep(outcome)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def aclose(self) -> None:
        """Close the async client of the running loop, and the sync client."""
        client = self._async_clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()
        self.close()

    def __repr__(self) -> str:
        names = ", ".join(f"{op.value}={name}" for op, name in self.models.items())
        return f"OpenAICompatibleGenerator({self.base_url!r}, {names})"


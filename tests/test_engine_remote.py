"""The remote generator and the OpenAI-compatible app: requests, retries, errors, auth, async, JSON schemas."""

from __future__ import annotations

import asyncio
import json

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("starlette")

from serve_helpers import BASE, LoopbackServer  # noqa: E402

from memlora_engine.errors import ConfigError, GeneratorError  # noqa: E402
from memlora_engine.generator import (  # noqa: E402
    GenerationRequest,
    Generator,
    SupportsAdapters,
    SupportsAsyncGeneration,
)
from memlora_engine.operations import EXTRACTION_SCHEMA  # noqa: E402
from memlora_engine.remote import OPERATION_HEADER, OpenAICompatibleGenerator  # noqa: E402
from memlora_engine.serving import create_app, served_models  # noqa: E402
from memlora_engine.testing import ContextLengthGenerator, ScriptedGenerator  # noqa: E402
from memlora_engine.types import Operation  # noqa: E402

FACTS = json.dumps({"facts": ["Likes tea"]})


def request(op: Operation = Operation.EXTRACTION, schema=EXTRACTION_SCHEMA) -> GenerationRequest:
    return GenerationRequest(op, [{"role": "system", "content": "be brief"}, {"role": "user", "content": "I like tea"}],
                             json_schema=schema, max_new_tokens=32)


def reply(text: str = FACTS, prompt: int = 11, completion: int = 5) -> httpx.Response:
    return httpx.Response(200, json={"choices": [{"message": {"role": "assistant", "content": text}}],
                                     "usage": {"prompt_tokens": prompt, "completion_tokens": completion}})


class Server:
    """An httpx transport answering with scripted responses (or raising), recording the requests."""

    def __init__(self, *answers) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, http_request: httpx.Request) -> httpx.Response:
        self.requests.append(http_request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def generator(self, **kwargs) -> OpenAICompatibleGenerator:
        return OpenAICompatibleGenerator("http://127.0.0.1:9/v1", transport=httpx.MockTransport(self),
                                         backoff=0.0, **kwargs)


def test_capabilities_are_declared() -> None:
    generator = OpenAICompatibleGenerator("http://127.0.0.1:8000/v1")
    assert isinstance(generator, Generator)
    assert isinstance(generator, SupportsAdapters) and isinstance(generator, SupportsAsyncGeneration)


def test_request_body_names_the_operations_model_and_schema() -> None:
    server = Server(reply())
    generator = server.generator(models={"extraction": "gemma-extraction"}, api_key="sk-1")
    result = generator.generate(request())
    assert (result.text, result.input_tokens, result.output_tokens) == (FACTS, 11, 5)
    (sent,) = server.requests
    body = json.loads(sent.content)
    assert str(sent.url) == "http://127.0.0.1:9/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-1" and sent.headers[OPERATION_HEADER] == "extraction"
    assert body["model"] == "gemma-extraction" and body["max_tokens"] == 32 and body["temperature"] == 0.0
    assert body["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "extraction", "schema": EXTRACTION_SCHEMA, "strict": True}}
    assert body["messages"][1] == {"role": "user", "content": "I like tea"}
    generator.generate(request(Operation.GENERATION, schema=None))
    body = json.loads(server.requests[-1].content)
    assert body["model"] == "generation" and "response_format" not in body  # default name: the operation's


def test_per_operation_fields_select_a_llama_cpp_adapter() -> None:
    server = Server(reply())
    lora = {"extraction": {"lora": [{"id": 0, "scale": 1.0}, {"id": 1, "scale": 0.0}]},
            "update": {"lora": [{"id": 0, "scale": 0.0}, {"id": 1, "scale": 1.0}]}}
    generator = server.generator(extra_body={"seed": 7}, operation_body=lora)
    generator.generate(request(Operation.UPDATE))
    generator.generate(request(Operation.GENERATION, schema=None))
    update, generation = (json.loads(r.content) for r in server.requests)
    assert update["lora"] == lora["update"]["lora"] and update["seed"] == 7
    assert "lora" not in generation and generation["seed"] == 7


@pytest.mark.parametrize(
    ("models", "base_model", "expected"),
    [
        (None, None, {op: True for op in Operation}),
        ({"generation": "gemma"}, "gemma", {op: op is not Operation.GENERATION for op in Operation}),
    ],
)
def test_operations_sent_to_the_base_model_have_no_adapter(models, base_model, expected) -> None:
    generator = OpenAICompatibleGenerator("http://127.0.0.1:8000/v1", models, base_model=base_model)
    assert {op: generator.has_adapter(op) for op in Operation} == expected


@pytest.mark.parametrize(
    "transient",
    [httpx.Response(503, text="busy"), httpx.Response(429, json={"error": {"message": "slow down"}}),
     httpx.ConnectError("refused"), httpx.ReadTimeout("slow")],
    ids=["503", "429", "connect", "timeout"],
)
def test_transient_failures_are_retried(transient) -> None:
    server = Server(transient, transient, reply())
    assert server.generator(max_retries=2).generate(request()).text == FACTS
    assert len(server.requests) == 3


@pytest.mark.parametrize(
    ("answer", "match"),
    [
        (httpx.Response(503, text="busy"), "HTTP 503"),
        (httpx.ConnectError("refused"), "ConnectError"),
        (httpx.ReadTimeout("slow"), "ReadTimeout"),
    ],
)
def test_retries_are_bounded_then_a_generator_error(answer, match) -> None:
    server = Server(answer)
    with pytest.raises(GeneratorError, match=match):
        server.generator(max_retries=2).generate(request())
    assert len(server.requests) == 3


@pytest.mark.parametrize(
    ("answer", "match"),
    [
        (httpx.Response(401, json={"error": {"message": "bad key"}}), "HTTP 401 \\(check api_key\\): bad key"),
        (httpx.Response(404, json={"error": {"message": "model 'x' does not exist"}}), "does not exist"),
        (httpx.Response(400, json={"object": "error", "message": "bad schema", "code": 400}), "HTTP 400: bad schema"),
        (httpx.Response(200, text="<html>proxy</html>"), "malformed reply"),
        (httpx.Response(200, json={"choices": []}), "malformed reply"),
        (httpx.Response(200, json={"choices": [{"message": {"content": None}}]}), "malformed reply"),
    ],
    ids=["401", "404", "vllm-400", "not-json", "no-choice", "no-content"],
)
def test_final_errors_are_not_retried(answer, match) -> None:
    server = Server(answer)
    with pytest.raises(GeneratorError, match=match):
        server.generator(max_retries=3).generate(request())
    assert len(server.requests) == 1


def test_backoff_doubles() -> None:
    import time

    server = Server(httpx.Response(503), httpx.Response(503), reply())
    generator = OpenAICompatibleGenerator("http://127.0.0.1:9/v1", transport=httpx.MockTransport(server),
                                          max_retries=2, backoff=0.05)
    start = time.perf_counter()
    generator.generate(request())
    assert time.perf_counter() - start >= 0.05 + 0.1


@pytest.mark.parametrize("kwargs", [{"base_url": "127.0.0.1:8000"}, {"timeout": 0}, {"max_retries": -1}])
def test_bad_settings_are_config_errors(kwargs) -> None:
    with pytest.raises(ConfigError):
        OpenAICompatibleGenerator(**{"base_url": "http://127.0.0.1:8000/v1", **kwargs})


def test_a_real_refused_connection_is_a_generator_error() -> None:
    with LoopbackServer(create_app(ScriptedGenerator())) as server:
        url = server.url
    generator = OpenAICompatibleGenerator(f"{url}/v1", max_retries=1, backoff=0.0, timeout=2)
    with pytest.raises(GeneratorError, match="failed"):
        generator.generate(request())


# -- the app ----------------------------------------------------------------------------------
def asgi_generator(app, **kwargs) -> OpenAICompatibleGenerator:
    return OpenAICompatibleGenerator("http://serve/v1", async_transport=httpx.ASGITransport(app=app),
                                     max_retries=0, **kwargs)


async def test_agenerate_runs_on_the_event_loop_through_the_app() -> None:
    scripted = ScriptedGenerator({"extraction": [FACTS], "update": ['{"memory": []}']})
    generator = asgi_generator(create_app(scripted))
    first, second = await asyncio.gather(generator.agenerate(request()),
                                         generator.agenerate(request(Operation.UPDATE, schema=None)))
    assert first.text == FACTS and second.text == '{"memory": []}'
    assert first.input_tokens == 5 and first.output_tokens == 3  # the scripted model's counts, from usage
    assert sorted(c.operation.value for c in scripted.calls) == ["extraction", "update"]
    assert scripted.calls[0].json_schema in (EXTRACTION_SCHEMA, None)
    await generator.aclose()


async def test_app_lists_one_model_per_adapter_plus_the_base() -> None:
    app = create_app(ScriptedGenerator(adapters=["extraction", "update"]), base_name="gemma-3-270m")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://serve") as client:
        listing = (await client.get("/v1/models")).json()
    assert [(m["id"], m["parent"]) for m in listing["data"]] == [
        ("extraction", "gemma-3-270m"), ("update", "gemma-3-270m"), ("gemma-3-270m", None)]


@pytest.mark.parametrize(("generator", "listed"), [(ContextLengthGenerator(), 8192), (ScriptedGenerator(), None)])
async def test_app_lists_the_declared_context_as_vllm_s_max_model_len(generator, listed) -> None:
    app = create_app(generator, base_name="gemma-3-270m")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://serve") as client:
        listing = (await client.get("/v1/models")).json()
    assert {m.get("max_model_len") for m in listing["data"]} == {listed}


async def test_base_model_calls_run_without_adapter_and_keep_the_clients_label() -> None:
    scripted = ScriptedGenerator({"update": ['{"memory": []}']})
    generator = asgi_generator(create_app(scripted, base_name=BASE), models={"update": BASE}, base_model=BASE)
    await generator.agenerate(request(Operation.UPDATE))
    (call,) = scripted.calls
    assert call.operation is Operation.UPDATE and call.use_adapter is False


@pytest.mark.parametrize(
    ("body", "status", "match"),
    [
        ({"model": "nope", "messages": [{"role": "user", "content": "hi"}]}, 404, "does not exist"),
        ({"model": "extraction", "messages": [{"role": "user", "content": "hi"}], "stream": True}, 400, "stream"),
        ({"model": "extraction", "messages": [{"role": "user", "content": "hi"}], "n": 2}, 400, "n must be 1"),
        ({"model": "extraction", "messages": []}, 400, "invalid request"),
        ({"model": "extraction", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, 400, "text"),
        ({"model": "extraction", "messages": [{"role": "user", "content": "hi"}],
          "response_format": {"type": "json_schema", "json_schema": {}}}, 400, "json_schema.schema"),
        ({"model": "extraction", "messages": [{"role": "tool", "content": "hi"}]}, 400, "role"),
    ],
    ids=["unknown-model", "stream", "n", "no-messages", "image", "schema-missing", "role"],
)
async def test_app_refuses_what_it_cannot_honour(body, status, match) -> None:
    app = create_app(ScriptedGenerator({"extraction": [FACTS]}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://serve") as client:
        response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == status
    assert match in response.json()["error"]["message"]


async def test_app_maps_a_failing_model_to_a_500_the_client_reports() -> None:
    generator = asgi_generator(create_app(ScriptedGenerator({})))  # no script: the model fails
    with pytest.raises(GeneratorError, match="HTTP 500.*no script"):
        await generator.agenerate(request())


async def test_api_key_is_required_when_set() -> None:
    app = create_app(ScriptedGenerator({"extraction": [FACTS]}), api_key="s3cret")
    with pytest.raises(GeneratorError, match="HTTP 401"):
        await asgi_generator(app).agenerate(request())
    with pytest.raises(GeneratorError, match="HTTP 401"):
        await asgi_generator(app, api_key="wrong").agenerate(request())
    assert (await asgi_generator(app, api_key="s3cret").agenerate(request())).text == FACTS
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://serve") as client:
        assert (await client.get("/health")).status_code == 200  # health stays open
        assert (await client.get("/v1/models")).status_code == 401


def test_served_models_refuse_a_base_named_like_an_operation() -> None:
    with pytest.raises(ConfigError):
        served_models(ScriptedGenerator(), "extraction")


def test_json_schema_is_decoded_under_by_a_real_backbone_over_http() -> None:
    """A tiny random model emits garbage unless constrained: valid JSON shows response_format is honoured."""
    pytest.importorskip("torch")
    pytest.importorskip("llguidance")
    from memlora_engine.backbone.tiny import tiny_backbone

    bounded = {"type": "object", "additionalProperties": False, "required": ["facts"],
               "properties": {"facts": {"type": "array", "maxItems": 2, "items": {"type": "string", "maxLength": 4}}}}
    backbone = tiny_backbone(seed=3)
    with LoopbackServer(create_app(backbone, base_name="tiny")) as server:
        generator = OpenAICompatibleGenerator(f"{server.url}/v1", {op: "tiny" for op in Operation}, base_model="tiny")
        result = generator.generate(GenerationRequest(Operation.EXTRACTION, request().messages, bounded, 80))
    assert isinstance(json.loads(result.text)["facts"], list)
    assert result.input_tokens > 10 and result.output_tokens > 0

"""Constrained JSON decoding: a random-weight model still emits JSON valid under the schema."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("llguidance")

from memlora_engine.backbone.tiny import tiny_backbone  # noqa: E402
from memlora_engine.errors import ModelOutputError  # noqa: E402
from memlora_engine.generator import GenerationRequest  # noqa: E402
from memlora_engine.parsing import EXTRACTION_SCHEMA, UPDATE_SCHEMA, parse_facts, parse_update_ops  # noqa: E402
from memlora_engine.types import Event, Operation  # noqa: E402

PROMPT = [{"role": "system", "content": "Return JSON."}, {"role": "user", "content": "Alice moved to Berlin."}]

BOUNDED_SCHEMA = {
    "type": "object",
    "properties": {
        "facts": {"type": "array", "items": {"type": "string", "maxLength": 4}, "maxItems": 2},
        "event": {"type": "string", "enum": ["ADD", "NONE"]},
    },
    "required": ["facts", "event"],
    "additionalProperties": False,
}


def _eager_to_stop(backbone):
    """Make EOS the model's favourite token: unconstrained it would say nothing at all."""
    with torch.no_grad():
        backbone.model.lm_head.weight[backbone.tokenizer.eos_token_id] *= 0
        backbone.model.lm_head.weight[backbone.tokenizer.eos_token_id] += 50.0
    return backbone


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bounded_schema_output_is_complete_and_valid(seed):
    backbone = tiny_backbone(seed=seed)
    result = backbone.generate(GenerationRequest(Operation.EXTRACTION, PROMPT, BOUNDED_SCHEMA, max_new_tokens=80))
    value = json.loads(result.text)
    assert set(value) == {"facts", "event"}
    assert value["event"] in ("ADD", "NONE")
    assert len(value["facts"]) <= 2 and all(isinstance(f, str) and len(f) <= 4 for f in value["facts"])


@pytest.mark.parametrize(("schema", "parse"), [(EXTRACTION_SCHEMA, parse_facts), (UPDATE_SCHEMA, parse_update_ops)])
def test_engine_schemas_parse_even_when_the_model_wants_to_stop(schema, parse):
    constrained = _eager_to_stop(tiny_backbone(seed=3))
    request = GenerationRequest(Operation.UPDATE, PROMPT, schema, max_new_tokens=60)
    text = constrained.generate(request).text
    parse(text)
    free = _eager_to_stop(tiny_backbone(seed=3, constrained=False))
    with pytest.raises(ModelOutputError):
        parse(free.generate(request).text)


@pytest.mark.parametrize("seed", [4, 5])
def test_engine_schemas_always_parse_from_random_weights(seed):
    backbone = tiny_backbone(seed=seed)
    text = backbone.generate(GenerationRequest(Operation.EXTRACTION, PROMPT, EXTRACTION_SCHEMA, 40)).text
    assert text.startswith('{"facts": [')
    assert all(isinstance(f, str) for f in parse_facts(text))
    text = backbone.generate(GenerationRequest(Operation.UPDATE, PROMPT, UPDATE_SCHEMA, 60)).text
    assert text.startswith('{"memory": [')
    for op in parse_update_ops(text):
        assert op.event is None or op.event in {e.value for e in Event}


def test_constraint_is_switchable():
    request = GenerationRequest(Operation.EXTRACTION, PROMPT, BOUNDED_SCHEMA, max_new_tokens=12)
    assert tiny_backbone(seed=0, constrained=False).generate(request).text != tiny_backbone(seed=0).generate(request).text


def test_no_schema_means_no_constraint():
    request = GenerationRequest(Operation.GENERATION, PROMPT, None, max_new_tokens=12)
    assert tiny_backbone(seed=0, constrained=False).generate(request) == tiny_backbone(seed=0).generate(request)


def test_stream_is_constrained_too():
    backbone = tiny_backbone(seed=1)
    request = GenerationRequest(Operation.EXTRACTION, PROMPT, BOUNDED_SCHEMA, max_new_tokens=80)
    json.loads("".join(backbone.stream(request)))

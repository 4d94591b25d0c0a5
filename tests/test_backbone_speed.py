"""The backbone's fast paths on tiny in-process models: reduced output head, adapter switch, cached index.

Each fast path is checked against the slow reference it replaces (full head + a mask,
peft's own ``set_adapter`` / ``disable_adapter``, llguidance's ``from_tokenizer``).
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("llguidance")

from memlora_engine.backbone import HFBackbone, JsonConstraint  # noqa: E402
from memlora_engine.backbone._vocab import latin_token_ids  # noqa: E402
from memlora_engine.backbone.tiny import make_lora_adapter, tiny_model, tiny_tokenizer  # noqa: E402
from memlora_engine.errors import ConfigError  # noqa: E402
from memlora_engine.generator import GenerationRequest  # noqa: E402
from memlora_engine.operations import EXTRACTION_SCHEMA, UPDATE_SCHEMA  # noqa: E402
from memlora_engine.types import Operation  # noqa: E402

PROMPT = [{"role": "system", "content": "Extract facts."}, {"role": "user", "content": "I like tea."}]
FOREIGN = ["Привет", "日本語", "ελληνικά"]
# (Accented added tokens would be ambiguous in a byte-level tokenizer, whose alphabet spells bytes with
# Latin-1 letters; the rule itself is checked on bytes in test_latin_vocabulary_rule.)
LATIN = ["hello", "—", "“tea”"]


# -- which tokens the latin vocabulary keeps ---------------------------------------------------
@pytest.mark.parametrize(
    ("token", "kept"),
    [
        (b"hello", True), (b" the", True), (b"\n\n", True), ("José".encode(), True), ("Łódź".encode(), True),
        ("“quoted”".encode(), True), ("€".encode(), True), (b"\xe6", True),  # a single byte: byte fallback
        ("日本".encode(), False), ("Привет".encode(), False), ("😀".encode(), False),
        ("é".encode()[:1] + b"x", False), (b"", False),  # broken UTF-8, empty
    ],
)
def test_latin_vocabulary_rule(token, kept):
    assert (0 in latin_token_ids([token], special_ids=[], always=[])) is kept


def test_special_tokens_are_dropped_unless_always_kept():
    tokens = [b"<pad>", b"<eos>", b"a"]
    assert latin_token_ids(tokens, special_ids=[0, 1], always=[1]) == [1, 2]


# -- the reduced head: greedy output equals the full head under the same mask ------------------
def _tokenizer_with_words():
    tokenizer = tiny_tokenizer()
    tokenizer.add_tokens(FOREIGN + LATIN)
    return tokenizer


def _favouring_foreign(seed: int):
    """A tiny model whose head leans towards the non-Latin tokens, so the reduction matters."""
    tokenizer = _tokenizer_with_words()
    model = tiny_model(len(tokenizer), seed=seed)
    foreign = tokenizer.convert_tokens_to_ids(FOREIGN)
    with torch.no_grad():
        model.lm_head.weight[foreign] *= 20
    return model, tokenizer, foreign


def _greedy(model, tokenizer, *, suppress=None, max_new_tokens=12):
    ids = tokenizer("Extract facts.\n\nI like tea.", return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(
            **ids, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=2, pad_token_id=0,
            suppress_tokens=suppress,
        )
    return out[0, ids["input_ids"].shape[1]:].tolist()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reduced_head_is_greedy_equal_to_the_masked_full_head(seed):
    model, tokenizer, foreign = _favouring_foreign(seed)
    backbone = HFBackbone(model, tokenizer, vocabulary="latin", name="tiny")
    request = GenerationRequest(Operation.GENERATION, PROMPT, max_new_tokens=12)
    tokens = tokenizer(backbone.generate(request).text, add_special_tokens=False)["input_ids"]
    kept = set(backbone._kept_ids or [])
    assert not kept & set(foreign)
    assert set(tokenizer.convert_tokens_to_ids(LATIN)) <= kept
    suppressed = sorted(set(range(len(tokenizer))) - kept)
    reference = _greedy(model, tokenizer, suppress=suppressed)
    assert tokenizer.decode(tokens) == tokenizer.decode(reference, skip_special_tokens=True)
    assert set(_greedy(model, tokenizer)) & set(foreign)  # the full head did want them


@pytest.mark.parametrize("schema", [EXTRACTION_SCHEMA, UPDATE_SCHEMA])
def test_reduced_head_under_a_json_schema_matches_the_masked_full_head(schema):
    model, tokenizer, _ = _favouring_foreign(3)
    backbone = HFBackbone(model, tokenizer, vocabulary="latin", name="tiny")
    latin = backbone.generate(GenerationRequest(Operation.EXTRACTION, PROMPT, schema, max_new_tokens=40))
    suppressed = sorted(set(range(len(tokenizer))) - set(backbone._kept_ids or []))
    ids = tokenizer("Extract facts.\n\nI like tea.", return_tensors="pt")
    processor = JsonConstraint(tokenizer, 2).processor(schema, int(ids["input_ids"].shape[1]))
    with torch.inference_mode():
        out = model.generate(
            **ids, max_new_tokens=40, do_sample=False, eos_token_id=2, pad_token_id=0,
            logits_processor=[processor], suppress_tokens=suppressed,
        )
    reference = tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    assert latin.text == reference


def test_model_outside_a_call_keeps_its_full_head():
    model, tokenizer, _ = _favouring_foreign(0)
    head = model.get_output_embeddings()
    backbone = HFBackbone(model, tokenizer, vocabulary="latin", name="tiny")
    with backbone.operation(Operation.GENERATION) as inside:
        assert inside.get_output_embeddings() is not head
    assert model.get_output_embeddings() is head  # training sees the real head


def test_unknown_vocabulary_is_a_config_error():
    tokenizer = tiny_tokenizer()
    with pytest.raises(ConfigError, match="vocabulary"):
        HFBackbone(tiny_model(len(tokenizer)), tokenizer, vocabulary="greek")


# -- adapter switch: same state and numbers as peft's own switching ----------------------------
@pytest.fixture(scope="module")
def adapter_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("adapters")
    base = tiny_model(len(tiny_tokenizer()))
    return {op: make_lora_adapter(base, root / op, seed=i + 1) for i, op in enumerate(["extraction", "update", "vqa"])}


def _logits(model, tokenizer):
    with torch.inference_mode():
        return model(**tokenizer("hello world", return_tensors="pt")).logits


def test_switch_matches_peft_set_adapter_and_disable_adapter(adapter_dirs):
    tokenizer = tiny_tokenizer()
    backbone = HFBackbone(tiny_model(len(tokenizer)), tokenizer, adapters=adapter_dirs, name="tiny")
    peft_model = backbone.model
    for _ in range(2):  # every order of switches, twice
        for op in [Operation.UPDATE, Operation.EXTRACTION, Operation.GENERATION, Operation.VQA, Operation.UPDATE]:
            with backbone.operation(op) as model:
                fast = _logits(model, tokenizer)
            if op == Operation.GENERATION:
                with peft_model.disable_adapter():
                    slow = _logits(peft_model, tokenizer)
            else:
                previous = peft_model.active_adapter
                peft_model.set_adapter(f"memlora_{op.value}", inference_mode=True)
                slow = _logits(peft_model, tokenizer)
                peft_model.set_adapter(previous, inference_mode=True)
            torch.testing.assert_close(fast, slow, rtol=0, atol=0)
    assert not any(p.requires_grad for p in peft_model.parameters())


def test_switch_restores_a_disabled_state(adapter_dirs):
    tokenizer = tiny_tokenizer()
    backbone = HFBackbone(tiny_model(len(tokenizer)), tokenizer, adapters=adapter_dirs, name="tiny")
    peft_model = backbone.model
    with peft_model.disable_adapter():
        base = _logits(peft_model, tokenizer)
        with backbone.operation(Operation.UPDATE):
            pass
        torch.testing.assert_close(_logits(peft_model, tokenizer), base, rtol=0, atol=0)


def test_adapter_added_later_is_switched_to(adapter_dirs):
    tokenizer = tiny_tokenizer()
    backbone = HFBackbone(tiny_model(len(tokenizer)), tokenizer, adapters={"update": adapter_dirs["update"]})
    with backbone.operation(Operation.UPDATE) as model:
        update = _logits(model, tokenizer)
    backbone.add_adapter(Operation.EXTRACTION, adapter_dirs["extraction"])
    with backbone.operation(Operation.EXTRACTION) as model:
        extraction = _logits(model, tokenizer)
    with backbone.operation(Operation.UPDATE) as model:
        torch.testing.assert_close(_logits(model, tokenizer), update, rtol=0, atol=0)
    assert not torch.allclose(extraction, update)


# -- the tokenizer index cache -----------------------------------------------------------------
def _masks(constraint: JsonConstraint, tokenizer, text: str) -> list[list[bool]]:
    """The allowed-token masks along ``text`` forced through the schema."""
    processor = constraint.processor(UPDATE_SCHEMA, prompt_length=0)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    masks = []
    for step in range(len(ids) + 1):
        scores = processor(torch.tensor([ids[:step]]), torch.zeros(1, len(tokenizer)))
        masks.append(torch.isfinite(scores[0]).tolist())
    return masks


UPDATE_TEXT = '{"memory": [{"id": "0", "text": "Likes tea", "event": "ADD"}]}'


def test_index_is_written_only_when_a_cache_dir_is_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tokenizer = tiny_tokenizer()
    _masks(JsonConstraint(tokenizer, 2), tokenizer, UPDATE_TEXT)
    assert list(tmp_path.rglob("*")) == []
    cache = tmp_path / "cache"
    _masks(JsonConstraint(tokenizer, 2, cache_dir=cache), tokenizer, UPDATE_TEXT)
    assert [p.name.startswith("llguidance-tokens-") for p in cache.iterdir()] == [True]


def test_cached_index_gives_the_same_masks(tmp_path):
    tokenizer = _tokenizer_with_words()
    reference = _masks(JsonConstraint(tokenizer, 2), tokenizer, UPDATE_TEXT)
    first = JsonConstraint(tokenizer, 2, cache_dir=tmp_path)
    assert _masks(first, tokenizer, UPDATE_TEXT) == reference  # built, then written
    (written,) = tmp_path.iterdir()
    stamp = written.stat().st_mtime_ns
    second = JsonConstraint(tokenizer, 2, cache_dir=tmp_path)
    assert _masks(second, tokenizer, UPDATE_TEXT) == reference  # read back
    assert second.token_table() == first.token_table()
    assert [p.stat().st_mtime_ns for p in tmp_path.iterdir()] == [stamp]  # not rewritten


def test_changed_tokenizer_invalidates_the_index(tmp_path):
    saved = tmp_path / "tok"
    tiny_tokenizer().save_pretrained(saved)
    from transformers import AutoTokenizer

    JsonConstraint(AutoTokenizer.from_pretrained(saved), 2, cache_dir=tmp_path / "c").token_table()
    (old,) = (tmp_path / "c").iterdir()
    changed = AutoTokenizer.from_pretrained(saved)
    changed.add_tokens(["tea"])
    table = JsonConstraint(changed, 2, cache_dir=tmp_path / "c").token_table()
    (new,) = (tmp_path / "c").iterdir()
    assert new.name != old.name  # a new key; the stale file is gone
    assert table.tokens[-1] == b"tea"


def test_unreadable_index_is_rebuilt(tmp_path):
    tokenizer = tiny_tokenizer()
    JsonConstraint(tokenizer, 2, cache_dir=tmp_path).token_table()
    (path,) = tmp_path.iterdir()
    path.write_bytes(b"not an npz")
    table = JsonConstraint(tokenizer, 2, cache_dir=tmp_path).token_table()
    assert table == JsonConstraint(tokenizer, 2).token_table()

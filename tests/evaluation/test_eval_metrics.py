"""Metric functions against hand-computed values."""

from __future__ import annotations

import json

import pytest

from memlora_engine.evaluation import metrics as m
from memlora_engine.evaluation.judge import ChatModelJudge, OpenAICompatibleJudge, judge_prompt, parse_label
from memlora_engine.evaluation.scoring import aggregate, score_answers
from memlora_engine.evaluation.semantic import SemanticScorer, bertscore_f1, cosine


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Cat, and a dog!", "cat dog"),
        ("7 May 2023.", "7 may 2023"),
        ("An apple; the end", "apple end"),
        ("  spaced   out  ", "spaced out"),
    ],
)
def test_normalize_answer(text, expected):
    assert m.normalize_answer(text) == expected


@pytest.mark.parametrize(
    ("prediction", "gold", "expected"),
    [
        ("Miso", "Miso", 1.0),
        ("the cat Miso", "Miso", 2 * (1 / 2) * 1 / (1 / 2 + 1)),  # "cat miso" vs "miso": P=1/2, R=1
        ("running dogs", "the dog runs", 1.0),  # Porter: run/run, dog/dog
        ("7 May 2023", "May 7, 2023", 1.0),  # bag of tokens, comma dropped
        ("Paris", "London", 0.0),
        ("", "London", 0.0),
        ("red red blue", "red", 2 * (1 / 3) * 1 / (1 / 3 + 1)),  # multiset: one red shared
    ],
)
def test_locomo_f1(prediction, gold, expected):
    assert m.locomo_f1(prediction, gold) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("prediction", "gold", "category", "expected"),
    [
        # cat 1: mean over gold parts of the best F1 against a prediction part
        ("cello, Porto", "cello, Porto", 1, 1.0),
        ("cello", "cello, Porto", 1, 0.5),
        ("Porto and cello", "cello, Porto", 1, (2 / 3 + 2 / 3) / 2),  # each part: P=1/2, R=1
        # cat 3: the first ';' alternative only
        ("Yes", "Yes; she grows tomatoes", 3, 1.0),
        ("she grows tomatoes", "Yes; she grows tomatoes", 3, 0.0),
        # cat 2/4: plain F1, int gold accepted
        ("2022", 2022, 2, 1.0),
        ("in 2022", "2022", 4, 2 / 3),  # P=1/2, R=1
        # cat 5: the refusal phrases
        ("No information available.", None, 5, 1.0),
        ("That is not mentioned in the conversation", None, 5, 1.0),
        ("He is a nurse", None, 5, 0.0),
    ],
)
def test_locomo_score(prediction, gold, category, expected):
    assert m.locomo_score(prediction, gold, category) == pytest.approx(expected)


def test_locomo_score_rejects_unknown_category_and_missing_gold():
    with pytest.raises(ValueError):
        m.locomo_score("x", "y", 7)
    with pytest.raises(ValueError):
        m.locomo_score("x", None, 4)


@pytest.mark.parametrize(
    ("prediction", "gold", "expected"),
    [
        ("Miso", "Miso", 1.0),
        ("The cat is Miso.", "Miso", 2 * (1 / 4) * 1 / (1 / 4 + 1)),
        ("miso miso", "Miso", 1.0),  # sets: duplicates count once
        ("", "Miso", 0.0),
        ("dog", "Miso", 0.0),
    ],
)
def test_mem0_f1(prediction, gold, expected):
    assert m.mem0_f1(prediction, gold) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("prediction", "gold", "expected"),
    [
        ("Miso", "Miso", 1.0),
        ("miso", "Miso", 1.0),
        ("a cat named miso", "miso", 0.25),  # unigram precision 1/4, no brevity penalty (hyp longer)
        ("", "Miso", 0.0),
    ],
)
def test_bleu1(prediction, gold, expected):
    assert m.bleu1(prediction, gold) == pytest.approx(expected)


def test_bleu1_brevity_penalty():
    # hyp 1 token, ref 2 tokens: precision 1, BP = exp(1 - 2/1) = e^-1
    import math

    assert m.bleu1("miso", "cat miso") == pytest.approx(math.exp(-1))


@pytest.mark.parametrize(
    ("prediction", "gold", "expected"),
    [(" Miso ", "miso", 1.0), ("Miso.", "Miso", 0.0), ("", "", 1.0)],
)
def test_exact_match(prediction, gold, expected):
    assert m.exact_match(prediction, gold) == expected


def test_locomo_exact_match_is_set_based():
    assert m.locomo_exact_match("May 7 2023", "7 May, 2023")
    assert not m.locomo_exact_match("May 2023", "7 May 2023")


@pytest.mark.parametrize(
    ("prediction", "gold", "expected"),
    [
        ("Miso", "Miso", 1.0),
        ("cats sleep", "the cat sleeps", 2 * (2 / 2) * (2 / 3) / (1 + 2 / 3)),  # stemmed: P=1, R=2/3
        ("dog", "cat", 0.0),
    ],
)
def test_rouge1_f(prediction, gold, expected):
    assert m.rouge1_f(prediction, gold) == pytest.approx(expected)


def test_meteor_exact_and_stem_only():
    assert m.meteor("Miso", "Miso") == pytest.approx(0.5)  # one match: Fmean=1, penalty 0.5*(1/1)^3
    # stem match counts ("cats" ~ "cat"), synonyms do not ("kitty" vs "cat")
    assert m.meteor("the cats sat", "the cat sat") == pytest.approx(m.meteor("the cat sat", "the cat sat"))
    assert m.meteor("kitty", "cat") == 0.0
    assert m.meteor("", "cat") == 0.0


def test_vqa_accuracy():
    assert m.vqa_accuracy([" Red ", "blue", "a dog"], ["red", "green", "A dog"]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        m.vqa_accuracy(["a"], [])
    with pytest.raises(ValueError):
        m.vqa_accuracy([], [])


class _FakeEncoder:
    """Each word is a one-hot vector; the sentence vector is their sum."""

    name = "fake"

    def _vocab(self, texts):
        words = sorted({w for t in texts for w in t.lower().split()})
        return {w: i for i, w in enumerate(words)}

    def token_vectors(self, texts):
        vocab = self._vocab(texts)
        return [[[1.0 if vocab[w] == i else 0.0 for i in range(len(vocab))] for w in t.lower().split()] for t in texts]

    def sentence_vectors(self, texts):
        return [[sum(col) for col in zip(*tokens)] if tokens else [] for tokens in self.token_vectors(texts)]


def test_bertscore_greedy_matching():
    a, b, c = [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]
    assert bertscore_f1([a], [a]) == pytest.approx(1.0)
    assert bertscore_f1([a, b], [a]) == pytest.approx(2 * 0.5 * 1 / 1.5)  # P=(1+0)/2, R=1
    assert bertscore_f1([c], [a]) == pytest.approx(cosine(c, a))
    assert bertscore_f1([], [a]) == 0.0


def test_semantic_scorer_with_injected_encoder():
    scores = SemanticScorer(_FakeEncoder()).score(["red fox", "blue"], ["red fox", "green"])
    assert scores[0] == pytest.approx({"sbert_cosine": 1.0, "bertscore_minilm_f1": 1.0})
    assert scores[1] == pytest.approx({"sbert_cosine": 0.0, "bertscore_minilm_f1": 0.0})


def _record(category, prediction, answer, index=0, evidence_recall=None):
    reference = answer.split(";")[0].strip() if (answer and category == 3) else answer
    return {"conversation": "c", "question_index": index, "question": "q?", "category": category, "answer": answer,
            "reference": reference, "prediction": prediction, "evidence_recall": evidence_recall}


def test_scoring_tables_exclude_category_5_and_name_unavailable_parts():
    answers = [
        _record(4, "Miso", "Miso", 0, 1.0),
        _record(2, "Paris", "London", 1, 0.0),
        _record(5, "Not mentioned.", None, 2, 0.5),
        _record(1, "No information available.", "Rome", 3, 0.5),
    ]
    scored = score_answers(answers, semantic=None, judge=None)
    table = aggregate(scored)
    assert table["overall"]["count"] == 3
    assert table["overall"]["locomo_f1"] == pytest.approx(1 / 3)
    assert table["overall"]["evidence_recall"] == pytest.approx(0.5)
    assert table["overall"]["false_refusal"] == pytest.approx(1 / 3)  # the declined answerable question
    assert table["adversarial"] == {"count": 1, "adversarial": 1.0, "evidence_recall": 0.5}
    assert table["L_components"] == ["rouge1_f", "meteor_exact_stem"]
    assert set(table["unavailable"]) == {"bertscore_minilm_f1", "sbert_cosine", "J"}
    assert "J" not in table["overall"] and "bertscore_minilm_f1" not in table["overall"]
    first = scored["records"][0]["metrics"]
    assert first["L"] == pytest.approx((first["rouge1_f"] + first["meteor_exact_stem"]) / 2)


def test_scoring_reports_a_failing_encoder_as_unavailable():
    class Broken:
        def score(self, *_):
            raise OSError("model files missing")

    table = aggregate(score_answers([_record(4, "a", "a")], semantic=Broken()))
    assert "model files missing" in table["unavailable"]["sbert_cosine"]
    assert table["L_components"] == ["rouge1_f", "meteor_exact_stem"]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ('{"label": "CORRECT"}', True),
        ('```json\n{"label": "WRONG"}\n```', False),
        ("The answer names the same date. CORRECT", True),
        ("Reasoning: it is not correct... WRONG", False),
        ('It matches. {"label": "correct"}', True),
        ("INCORRECT", False),
        ("I cannot decide.", None),
        ("", None),
    ],
)
def test_parse_label(reply, expected):
    assert parse_label(reply) is expected


class _FakeChatModel:
    def __init__(self, replies):
        self.replies = list(replies)
        self.prompts = []

    def invoke(self, messages):
        self.prompts.append(messages[0]["content"])

        class Reply:
            content = self.replies.pop(0)

        return Reply()


def test_judge_with_a_langchain_style_model_is_cached(tmp_path):
    model = _FakeChatModel(['{"label": "CORRECT"}', "WRONG", "no idea"])
    judge = ChatModelJudge(model, name="fake-judge")
    answers = [_record(4, "Miso", "Miso", 0), _record(4, "Tom", "Miso", 1), _record(2, "x", "y", 2)]
    cache = tmp_path / "judgments.jsonl"
    table = aggregate(score_answers(answers, judge=judge, judge_cache=cache))
    assert table["overall"]["J"] == pytest.approx(0.5)
    assert table["overall"]["J_count"] == 2
    assert "J_partial" in table["unavailable"]
    assert "Gold answer: Miso" in model.prompts[0] and "Generated answer: Tom" in model.prompts[1]
    # re-scoring reads the cache: the model is not asked again
    again = aggregate(score_answers(answers, judge=judge, judge_cache=cache))
    assert again["overall"]["J"] == pytest.approx(0.5) and model.replies == []


def test_openai_compatible_judge_against_a_local_server():
    import http.server
    import threading

    seen = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            seen["path"] = self.path
            seen["body"] = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            body = json.dumps({"choices": [{"message": {"content": '{"label": "CORRECT"}'}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        judge = OpenAICompatibleJudge(f"http://127.0.0.1:{server.server_port}/v1", "local-judge", api_key="k")
        assert parse_label(judge.judge("Q?", "Miso", "Miso")) is True
    finally:
        server.shutdown()
    assert seen["path"] == "/v1/chat/completions"
    assert seen["body"]["model"] == "local-judge" and seen["body"]["temperature"] == 0.0
    assert seen["body"]["messages"][0]["content"] == judge_prompt("Q?", "Miso", "Miso")


@pytest.mark.slow
def test_minilm_semantic_scores_offline():
    scores = SemanticScorer().score(["Miso the cat", "a red car"], ["Miso the cat", "quantum physics lecture"])
    assert scores[0]["sbert_cosine"] == pytest.approx(1.0, abs=1e-4)
    assert scores[0]["bertscore_minilm_f1"] == pytest.approx(1.0, abs=1e-4)
    assert scores[1]["sbert_cosine"] < 0.5 and scores[1]["bertscore_minilm_f1"] < scores[0]["bertscore_minilm_f1"]

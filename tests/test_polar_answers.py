"""Yes/no questions are answered with the verdict; the model's sentence after it is the reason."""

from __future__ import annotations

import pytest

from memlora_engine.answering import NOT_IN_MEMORY, is_polar_question, polar_answer


@pytest.mark.parametrize(
    ("question", "polar"),
    [
        ("Would Ann move back to Oslo?", True),
        ("  did Ann adopt the dog?", True),
        ("Is Ann vegetarian?", True),
        ("Has Ann been to Rome or Milan?", False),  # which of two: not a yes/no question
        ("Would Ann prefer a national park or a theme park?", False),
        ("What does Ann eat?", False),
        ("When did Ann move?", False),
        ("Isabel's job?", False),  # "Is" must be a word of its own
    ],
)
def test_is_polar_question(question, polar) -> None:
    assert is_polar_question(question) is polar


@pytest.mark.parametrize(
    ("text", "verdict", "reason"),
    [
        ("No, she wants to stay in Lisbon.", "No", "she wants to stay in Lisbon."),
        ("Yes. She collects children's books.", "Yes", "She collects children's books."),
        ("likely no; she never mentions it", "Likely no", "she never mentions it"),
        ("Yes - she said so", "Yes", "she said so"),
        ("Yes!", "Yes", None),
        ("No", "No", None),
        ("yes", "Yes", None),
        (NOT_IN_MEMORY, NOT_IN_MEMORY, None),  # a decline, not a "no"
        ("No one knows.", "No one knows.", None),
        ("Nope, never.", "Nope, never.", None),
        ("She likes tea.", "She likes tea.", None),
    ],
)
def test_polar_answer(text, verdict, reason) -> None:
    assert polar_answer(text) == (verdict, reason)


def test_a_yes_no_question_gets_the_verdict_and_the_reason(make_memory) -> None:
    memory = make_memory({"generation": lambda request: "No, she moved to Lisbon for good."})
    memory.add_many(["Ann moved from Paris to Lisbon."], user_id="u")
    answer = memory.answer("Would Ann move back to Paris?", user_id="u")
    assert (answer.text, answer.reason, answer.operation) == ("No", "she moved to Lisbon for good.", "generation")
    other = memory.answer("Where does Ann live?", user_id="u")  # not a yes/no question: the answer is whole
    assert (other.text, other.reason) == ("No, she moved to Lisbon for good.", None)


def test_polar_answers_off_keeps_the_whole_answer(make_memory) -> None:
    memory = make_memory({"generation": lambda request: "No, she moved to Lisbon for good."}, polar_answers=False)
    memory.add_many(["Ann moved from Paris to Lisbon."], user_id="u")
    answer = memory.answer("Would Ann move back to Paris?", user_id="u")
    assert (answer.text, answer.reason) == ("No, she moved to Lisbon for good.", None)

from __future__ import annotations

from datetime import date, datetime

import pytest

from memlora_engine.answering import written_day
from memlora_engine.dates import anchor_dates, asks_when, date_phrase, format_day
from memlora_engine.types import MemoryRecord

SAID_ON = date(2023, 5, 8)  # a Monday


@pytest.mark.parametrize(
    ("text", "anchored"),
    [
        ("Ann went to a support group yesterday.", "Ann went to a support group on 7 May 2023."),
        ("Ann flies to Rome tomorrow.", "Ann flies to Rome on 9 May 2023."),
        ("Ann is baking tonight.", "Ann is baking on 8 May 2023."),
        ("Ann saw a play the day before yesterday.", "Ann saw a play on 6 May 2023."),
        ("Ann went hiking last week.", "Ann went hiking the week before 8 May 2023."),
        ("Ann visits her sister next weekend.", "Ann visits her sister the weekend after 8 May 2023."),
        ("Ann is moving this weekend.", "Ann is moving the weekend of 8 May 2023."),
        ("Ann ran a race last Saturday.", "Ann ran a race the Saturday before 8 May 2023."),
        ("Ann joined a group last Tues. She loves it.", "Ann joined a group the Tuesday before 8 May 2023. She loves it."),
        ("Ann has an interview next friday.", "Ann has an interview the Friday after 8 May 2023."),
        ("Ann quit her job last month.", "Ann quit her job in April 2023."),
        ("Ann starts school next month.", "Ann starts school in June 2023."),
        ("Ann went to Pride last year.", "Ann went to Pride in 2022."),
        ("Ann moved three days ago.", "Ann moved on 5 May 2023."),
        ("Ann camped two weekends ago.", "Ann camped two weekends before 8 May 2023."),
        ("Ann adopted a cat 2 months ago.", "Ann adopted a cat in March 2023."),
        ("Ann made a bowl ten years ago.", "Ann made a bowl in 2013."),
        # the phrase begins the sentence: the capital stays
        ("Yesterday, Ann adopted a dog.", "On 7 May 2023, Ann adopted a dog."),
        ("Ann cooked. Last week she baked.", "Ann cooked. The week before 8 May 2023 she baked."),
        # a preposition or month name before the phrase replaces the rewrite's own
        ("Ann has lived here since last year.", "Ann has lived here since 2022."),
        ("Ann left in January last year.", "Ann left in January 2022."),
        ("Ann saves up until next month.", "Ann saves up until June 2023."),
        # left alone: vague, possessive, part of a longer name for a time, or no date at all
        ("Ann recently moved.", "Ann recently moved."),
        ("Ann moved a few years ago.", "Ann moved a few years ago."),
        ("Ann liked last year's trip.", "Ann liked last year's trip."),
        ("The last week of June was hot.", "The last week of June was hot."),
        ("Ann lasted the storm.", "Ann lasted the storm."),
        ("Ann last sat in that chair.", "Ann last sat in that chair."),
        ("Ann's birthday is 13 August.", "Ann's birthday is 13 August."),
    ],
)
def test_anchor_dates(text, anchored) -> None:
    assert anchor_dates(text, SAID_ON) == anchored


def test_a_month_back_crosses_the_year() -> None:
    assert anchor_dates("Ann moved last month.", date(2023, 1, 20)) == "Ann moved in December 2022."


def test_format_day_ignores_the_locale() -> None:
    assert format_day(date(2024, 2, 29)) == "29 February 2024"


SAID = [{"role": "user", "content": "I went to a support group yesterday."}]
FACT = '{"facts": ["User went to a support group yesterday."]}'


def test_memory_add_stores_the_date_the_fact_was_said_and_counts_it(make_memory) -> None:
    memory = make_memory({"extraction": [FACT]})
    memory.add(SAID, user_id="u", timestamp=datetime(2023, 5, 8, 13, 56))
    assert [m.text for m in memory.get_all(user_id="u")] == ["User went to a support group on 7 May 2023."]
    assert memory.stats["extraction"].anchored_dates == 1


def test_anchor_dates_off_stores_the_phrase_as_extracted(make_memory) -> None:
    memory = make_memory({"extraction": [FACT]}, anchor_dates=False)
    memory.add(SAID, user_id="u", timestamp=datetime(2023, 5, 8, 13, 56))
    assert [m.text for m in memory.get_all(user_id="u")] == ["User went to a support group yesterday."]
    assert memory.stats["extraction"].anchored_dates == 0


def test_infer_false_keeps_the_words_as_given(make_memory) -> None:
    memory = make_memory()
    memory.add(SAID, user_id="u", infer=False, timestamp=datetime(2023, 5, 8))
    assert [m.text for m in memory.get_all(user_id="u")] == ["I went to a support group yesterday."]


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("Ann had a picnic the week before 6 July 2023 with friends.", "The week before 6 July 2023"),
        ("Ann camped two weekends before 17 July 2023.", "Two weekends before 17 July 2023"),
        ("Ann joined the Tuesday before 20 July 2023.", "The Tuesday before 20 July 2023"),
        ("Ann went to a support group on 7 May 2023.", "7 May 2023"),
        ("Ann quit her job in April 2023.", "April 2023"),
        ("Ann went to Pride in 2022.", "2022"),
        ("Ann has painted since 2016.", "2016"),
        ("Ann saved 2000 dollars.", None),
        ("Ann likes cats.", None),
    ],
)
def test_date_phrase(text, phrase) -> None:
    assert date_phrase(text) == phrase


@pytest.mark.parametrize(("question", "asks"), [("When did Ann move?", True), ("  when is the party", True),
                                                ("Whenever you like?", False), ("What did Ann do last week?", False)])
def test_asks_when(question, asks) -> None:
    assert asks_when(question) is asks


def _dated_memory(make_memory, **config):
    memory = make_memory({"generation": lambda request: "The week before 1 January 2020"}, **config)
    memory.add_many(["Ann likes cats.", "Ann went hiking the week before 25 August 2023."], user_id="u")
    return memory


def test_a_when_question_is_answered_with_the_date_of_the_best_memory_that_states_one(make_memory) -> None:
    memory = _dated_memory(make_memory)
    answer = memory.answer("When did Ann go hiking?", user_id="u")
    assert (answer.text, answer.operation) == ("The week before 25 August 2023", "date")
    assert memory.stats["generation"].date_answers == 1 and memory.stats["generation"].calls == 0


def test_other_questions_and_date_answers_off_go_to_the_generation_operation(make_memory) -> None:
    memory = _dated_memory(make_memory)
    assert memory.answer("What does Ann like?", user_id="u").operation == "generation"
    off = _dated_memory(make_memory, date_answers=False)
    answer = off.answer("When did Ann go hiking?", user_id="u")
    assert (answer.text, answer.operation) == ("The week before 1 January 2020", "generation")
    assert off.stats["generation"].date_answers == 0


@pytest.mark.parametrize(("config", "text", "operation", "written"), [
    ({}, "16 March 2023", "date", 1),  # the day the best memory was said
    ({"written_date_answers": False}, "last summer", "generation", 0),
    ({"date_answers": False}, "last summer", "generation", 0),
])
def test_a_when_question_without_a_dated_memory(make_memory, config, text, operation, written) -> None:
    memory = make_memory({"generation": lambda request: "last summer"}, **config)
    memory.add_many(["Ann got a cat named Miso."], user_id="u", timestamp=datetime(2023, 3, 16, 14, 5))
    memory.add_many(["Ben plays chess on Sundays."], user_id="u", timestamp=datetime(2023, 5, 2, 9, 0))
    answer = memory.answer("When did Ann get a cat?", user_id="u")
    assert (answer.text, answer.operation) == (text, operation)
    assert answer.reason == ("the day this memory was written: Ann got a cat named Miso." if written else None)
    stats = memory.stats["generation"]
    assert (stats.written_date_answers, stats.date_answers, stats.calls) == (written, 0, 1 - written)


@pytest.mark.parametrize(("created_at", "updated_at", "day"), [
    ("2023-03-16T14:05:00+00:00", None, date(2023, 3, 16)),
    ("2023-03-16T14:05:00+00:00", "2023-05-02T09:00:00+00:00", date(2023, 5, 2)),  # its text was written then
    ("not a time", None, None),
])
def test_written_day(created_at, updated_at, day) -> None:
    record = MemoryRecord(id="m", text="Ann got a cat.", hash="h", created_at=created_at, updated_at=updated_at)
    assert written_day(record) == day

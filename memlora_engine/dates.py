"""Relative dates in extracted facts, anchored to the day they were said.

"Caroline went to a support group yesterday" means nothing a month later: the memory
outlives the day it was said on, and the answer prompt lists memories without their
dates (``MemoryConfig.dated_memories`` is off). The extraction expert is shown the
session date but copies "yesterday", "last week" and "next month" as they were said.
:func:`anchor_dates` rewrites those phrases in each extracted fact against the session
date of its ``Memory.add`` call, so the memory carries its own date:

=====================  ==================================
said on 8 May 2023     stored as
=====================  ==================================
yesterday              on 7 May 2023
last Friday            the Friday before 8 May 2023
last week              the week before 8 May 2023
this weekend           the weekend of 8 May 2023
next month             in June 2023
last year              in 2022
three days ago         on 5 May 2023
two weeks ago          two weeks before 8 May 2023
ten years ago          in 2013
=====================  ==================================

:func:`date_phrase` reads such a date back out of a memory: ``Memory.answer`` answers a
"When ...?" question with the date of the best-ranked memory that states one
(``MemoryConfig.date_answers``), since the generation expert, shown "Ann went hiking the
week before 25 August 2023", still often answers a date of its own.

A phrase that names a span ("last week") stays a span anchored to the day, rather than
an invented day inside it; this is also how the LoCoMo annotators wrote their answers
("The week before 9 June 2023"). Vague phrases ("recently", "a few years ago", "the other
day", seasons) are left as they are, and so are possessives ("last year's trip") and
"the last week of ...". A date library such as ``dateparser`` resolves a phrase to one
datetime, which is what a span must not become, and does not rewrite text in place,
so the few rules are written out here.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

__all__ = ["anchor_dates", "asks_when", "date_phrase", "format_day"]

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")
# Abbreviations too ("last Tues"), but not "sat" and "sun": "when she last sat down".
_WEEKDAYS = {"mon": "Monday", "tue": "Tuesday", "tues": "Tuesday", "wed": "Wednesday", "thu": "Thursday",
             "thur": "Thursday", "thurs": "Thursday", "fri": "Friday"}
_WEEKDAYS.update({name.lower(): name for name in ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday",
                                                  "Sunday")})
_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
            "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12}
# A preposition (or a month name) before the phrase takes the place of the one the rewrite
# brings ("since last year" -> "since 2022", "in May last year" -> "in May 2022").
_PREPOSITIONS = frozenset("on in at since until till by from before after during of for around about".split())

_WEEKDAY = "|".join(sorted(_WEEKDAYS, key=len, reverse=True))
_NUMBER = r"\d{1,2}|" + "|".join(_NUMBERS)
_PHRASE = re.compile(
    r"(?<![\w'-])(?:"
    r"(?P<day_before>the day before yesterday)"
    r"|(?P<day>yesterday|today|tonight|tomorrow|last night|this (?:morning|afternoon|evening))"
    r"|(?P<span_rel>last|this past|this|next|this coming) (?P<span>week|weekend)"
    rf"|(?P<weekday_rel>last|this past|next|this coming) (?P<weekday>{_WEEKDAY})"
    r"|(?P<month_rel>last|this|next) month"
    r"|(?P<year_rel>last|this|next) year"
    rf"|(?P<count>{_NUMBER}) (?P<unit>days?|weeks?|weekends?|months?|years?) ago"
    r")(?![\w'-])",
    re.IGNORECASE,
)
# "the last week of June", "every last Friday": not relative to the day said.
_NOT_AFTER = re.compile(r"(?:\bthe|\bevery|\bthat)\s+$", re.IGNORECASE)


def format_day(day: date) -> str:
    """``day`` as "7 May 2023" (month names in English whatever the locale)."""
    return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"


def _month(day: date, offset: int) -> str:
    index = day.year * 12 + day.month - 1 + offset
    return f"{_MONTHS[index % 12]} {index // 12}"


def _resolve(match: re.Match[str], said_on: date) -> str:
    """The anchored text for one phrase, with its leading preposition."""
    anchor = format_day(said_on)
    if match["day_before"]:
        return f"on {format_day(said_on - timedelta(days=2))}"
    if day := match["day"]:
        word = day.lower()
        offset = -1 if word in ("yesterday", "last night") else 1 if word == "tomorrow" else 0
        return f"on {format_day(said_on + timedelta(days=offset))}"
    if match["span"]:
        rel = match["span_rel"].lower()
        side = "before" if rel in ("last", "this past") else "after" if rel in ("next", "this coming") else "of"
        return f"the {match['span'].lower()} {side} {anchor}"
    if match["weekday"]:
        side = "before" if match["weekday_rel"].lower() in ("last", "this past") else "after"
        return f"the {_WEEKDAYS[match['weekday'].lower()]} {side} {anchor}"
    if rel := match["month_rel"]:
        return f"in {_month(said_on, {'last': -1, 'this': 0, 'next': 1}[rel.lower()])}"
    if rel := match["year_rel"]:
        return f"in {said_on.year + {'last': -1, 'this': 0, 'next': 1}[rel.lower()]}"
    count_text, unit = match["count"].lower(), match["unit"].lower().rstrip("s")
    count = int(count_text) if count_text.isdigit() else _NUMBERS[count_text]
    if unit == "day":
        return f"on {format_day(said_on - timedelta(days=count))}"
    if unit == "month":
        return f"in {_month(said_on, -count)}"
    if unit == "year":
        return f"in {said_on.year - count}"
    return f"{count_text} {match['unit'].lower()} before {anchor}"  # weeks, weekends: a span


def anchor_dates(text: str, said_on: date) -> str:
    """``text`` with its relative date phrases rewritten against ``said_on`` (see the module table).

    A sentence that begins with a phrase keeps its capital ("Yesterday, Ann ..." ->
    "On 7 May 2023, Ann ...").
    """

    def replace(match: re.Match[str]) -> str:
        before = text[: match.start()]
        if _NOT_AFTER.search(before):
            return match[0]
        anchored = _resolve(match, said_on)
        words = before.split()
        previous = words[-1].lower() if words else ""
        if (previous in _PREPOSITIONS or previous.capitalize() in _MONTHS) and anchored.startswith(("on ", "in ")):
            anchored = anchored[3:]
        if match[0][0].isupper() and (not before.strip() or before.rstrip()[-1] in ".!?"):
            anchored = anchored[0].upper() + anchored[1:]
        return anchored

    return _PHRASE.sub(replace, text)


_MONTH = "|".join(_MONTHS)
_DAY_DATE = rf"\d{{1,2}} (?:{_MONTH}) \d{{4}}"
_DATE = re.compile(
    rf"(?:the|{_NUMBER}) (?:week|weekend|{'|'.join(sorted(set(_WEEKDAYS.values())))})s? (?:before|after|of) {_DAY_DATE}"
    rf"|{_DAY_DATE}|(?:{_MONTH}) \d{{4}}"
    r"|(?:(?<=\bin )|(?<=\bsince )|(?<=\bfrom )|(?<=\buntil )|(?<=\bby )|(?<=\bof ))(?:19|20)\d\d\b",
    re.IGNORECASE,
)
_WHEN = re.compile(r"\s*when\b", re.IGNORECASE)


def date_phrase(text: str) -> str | None:
    """The first date ``text`` states, in the forms :func:`anchor_dates` writes, or None.

    A day ("7 May 2023"), a span anchored to a day ("the week before 9 June 2023",
    "two weekends before 17 July 2023"), a month ("June 2023") or a year after a
    preposition ("in 2022" -> "2022"; "2000 dollars" is no date).
    """
    found = _DATE.search(text)
    if found is None:
        return None
    phrase = found[0]
    return phrase[0].upper() + phrase[1:]


def asks_when(question: str) -> bool:
    """True for a question that asks when something happened ("When did ...?")."""
    return _WHEN.match(question) is not None

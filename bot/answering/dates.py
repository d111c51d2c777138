"""Dates named in a question: the period of publication an answer should come from.

    find_period(text, asked_on) -> Period | None

Absolute dates: "on 9 November 2022", "November 9, 2022", "2022-11-09" -> that day; "in June
2022" -> that month; "in 2016" -> that year. Relative ones, counted back from the day the
question is asked: "today", "yesterday", "on Tuesday" (the last Tuesday up to that day), "this
week" / "past week" (7 days), "last week" (14), "this month" / "past month" (30), "recently" /
"in recent days" (30: vague words get a loose window). Days are integers YYYYMMDD, as stored in
the index.

The two kinds constrain differently (`read`): a relative period is about *when the news
happened*, so an article published before it cannot report it ("What NFL star announced his
retirement on Tuesday?" is not answered by February's retirement). An absolute date may just
name the event a question is about ("the insurrection on January 6, 2021"), so an article from
any time that mentions it can answer; retrieval still prefers articles of that period.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass

MONTHS = {
    name.lower(): i
    for i in range(1, 13)
    for name in (calendar.month_name[i], calendar.month_abbr[i])
}
MONTHS["sept"] = 9
WEEKDAYS = {name.lower(): i for i, name in enumerate(calendar.day_name)}
_MONTH = r"(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"  # noqa: E501
_ISO = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_DAY_MONTH_YEAR = re.compile(
    rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}\.?,?\s+(\d{{4}})\b", re.I
)
_MONTH_DAY_YEAR = re.compile(rf"\b{_MONTH}\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})\b", re.I)
_MONTH_YEAR = re.compile(rf"\b{_MONTH}\.?,?\s+(\d{{4}})\b", re.I)
_YEAR = re.compile(r"\b(?:in|during|of)\s+((?:19|20)\d{2})\b", re.I)
_WEEKDAY = re.compile(
    r"\b(?:on|last|this|early|late)\s+(monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
    r"\b",
    re.I,
)
# Relative phrases, longest first, and how many days back each reaches.
_RELATIVE = (
    ("this week", 7),
    ("past week", 7),
    ("this weekend", 7),
    ("last weekend", 9),
    ("last week", 14),
    ("past few days", 7),
    ("in recent days", 30),
    ("recent weeks", 30),
    ("this month", 30),
    ("past month", 30),
    ("recently", 30),
    ("recent", 30),
    ("last night", 1),
    ("yesterday", 1),
    ("tonight", 0),
    ("today", 0),
)

DayRange = tuple[int, int]


@dataclass(frozen=True)
class Period:
    """Days [first, last] (YYYYMMDD); `relative` when counted back from the asking day."""

    first: int
    last: int
    phrase: str
    relative: bool = False

    @property
    def days(self) -> DayRange:
        return self.first, self.last

    def holds(self, day: int) -> bool:
        return self.first <= day <= self.last

    def since(self) -> str:
        """The first day, as people write it: 2022-07-21."""
        return f"{self.first // 10000:04d}-{self.first // 100 % 100:02d}-{self.first % 100:02d}"


def as_day(day: dt.date) -> int:
    return day.year * 10000 + day.month * 100 + day.day


def _safe(year: int, month: int, day: int) -> dt.date | None:
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def _month(name: str) -> int:
    return MONTHS[name.lower()[:3]]


def find_period(text: str, asked_on: dt.date | None = None) -> Period | None:
    """The period of publication `text` (a question, or a date phrase in it) points at."""
    day = None
    if m := _ISO.search(text):
        day = _safe(int(m[1]), int(m[2]), int(m[3]))
    elif m := _DAY_MONTH_YEAR.search(text):
        day = _safe(int(m[3]), _month(m[2]), int(m[1]))
    elif m := _MONTH_DAY_YEAR.search(text):
        day = _safe(int(m[3]), _month(m[1]), int(m[2]))
    if day:
        return Period(as_day(day), as_day(day), m[0])
    if m := _MONTH_YEAR.search(text):
        year, month = int(m[2]), _month(m[1])
        last = calendar.monthrange(year, month)[1]
        base = year * 10000 + month * 100
        return Period(base + 1, base + last, m[0])
    if m := _YEAR.search(text):
        year = int(m[1])
        return Period(year * 10000 + 101, year * 10000 + 1231, m[0])
    if asked_on is None:
        return None
    if m := _WEEKDAY.search(text):
        back = (asked_on.weekday() - WEEKDAYS[m[1].lower()]) % 7
        return Period(as_day(asked_on - dt.timedelta(days=back)), as_day(asked_on), m[0], True)
    lowered = text.lower()
    for phrase, back in _RELATIVE:
        if re.search(rf"\b{phrase}\b", lowered):
            start = asked_on - dt.timedelta(days=back)
            return Period(as_day(start), as_day(asked_on), phrase, True)
    return None


def question_days(question: str, asked_on: dt.date | None = None) -> DayRange | None:
    """The range of publication days a question points at, or None."""
    period = find_period(question, asked_on)
    return period.days if period else None


def recent_days(asked_on: dt.date, days: int = 30) -> DayRange:
    """The weeks before a question is asked: news questions are mostly about recent news."""
    return as_day(asked_on - dt.timedelta(days=days)), as_day(asked_on)

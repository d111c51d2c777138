"""Dates named in a question, as a range of days the answer should prefer.

"on 9 November 2022", "November 9, 2022", "2022-11-09" -> that day; "in June 2022" -> that
month; "in 2016" -> that year; "this week" / "last week" / "yesterday" / "today" -> relative to
the day the question is asked. Days are integers YYYYMMDD, as stored in the index.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re

MONTHS = {
    name.lower(): i
    for i in range(1, 13)
    for name in (calendar.month_name[i], calendar.month_abbr[i])
}
MONTHS["sept"] = 9
_MONTH = r"(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"  # noqa: E501
_ISO = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_DAY_MONTH_YEAR = re.compile(
    rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}\.?,?\s+(\d{{4}})\b", re.I
)
_MONTH_DAY_YEAR = re.compile(rf"\b{_MONTH}\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})\b", re.I)
_MONTH_YEAR = re.compile(rf"\b{_MONTH}\.?,?\s+(\d{{4}})\b", re.I)
_YEAR = re.compile(r"\b(?:in|during|of)\s+((?:19|20)\d{2})\b", re.I)

DayRange = tuple[int, int]


def as_day(day: dt.date) -> int:
    return day.year * 10000 + day.month * 100 + day.day


def _safe(year: int, month: int, day: int) -> dt.date | None:
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def _month(name: str) -> int:
    return MONTHS[name.lower()[:3]]


def question_days(question: str, asked_on: dt.date | None = None) -> DayRange | None:
    """The range of publication days a question points at, or None."""
    day = None
    if m := _ISO.search(question):
        day = _safe(int(m[1]), int(m[2]), int(m[3]))
    elif m := _DAY_MONTH_YEAR.search(question):
        day = _safe(int(m[3]), _month(m[2]), int(m[1]))
    elif m := _MONTH_DAY_YEAR.search(question):
        day = _safe(int(m[3]), _month(m[1]), int(m[2]))
    if day:
        return as_day(day), as_day(day)
    if m := _MONTH_YEAR.search(question):
        year, month = int(m[2]), _month(m[1])
        last = calendar.monthrange(year, month)[1]
        return year * 10000 + month * 100 + 1, year * 10000 + month * 100 + last
    if m := _YEAR.search(question):
        year = int(m[1])
        return year * 10000 + 101, year * 10000 + 1231
    if asked_on is None:
        return None
    text = question.lower()
    if "this week" in text or "past week" in text or "recent" in text:
        return as_day(asked_on - dt.timedelta(days=7)), as_day(asked_on)
    if "last week" in text:
        return as_day(asked_on - dt.timedelta(days=14)), as_day(asked_on)
    if "yesterday" in text:
        day = asked_on - dt.timedelta(days=1)
        return as_day(day), as_day(day)
    if "today" in text:
        return as_day(asked_on), as_day(asked_on)
    return None


def recent_days(asked_on: dt.date, days: int = 30) -> DayRange:
    """The weeks before a question is asked: news questions are mostly about recent news."""
    return as_day(asked_on - dt.timedelta(days=days)), as_day(asked_on)

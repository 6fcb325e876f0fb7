"""Timer trigger schedules: NCRONTAB expressions (6 fields, seconds first) and TimeSpan intervals."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from devserver.hostlib.config import HostConfigError, parse_timespan

_MONTHS = {m: i for i, m in enumerate("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split(), 1)}  # noqa: SIM905
_DAYS = {d: i for i, d in enumerate("SUN MON TUE WED THU FRI SAT".split())}  # noqa: SIM905
# (low, high, names) per field: second minute hour day month day-of-week.
_FIELDS = (
    (0, 59, {}),
    (0, 59, {}),
    (0, 23, {}),
    (1, 31, {}),
    (1, 12, _MONTHS),
    (0, 6, _DAYS),
)
_FIELD_NAMES = ("second", "minute", "hour", "day", "month", "day-of-week")


def _value(text: str, names: dict[str, int], what: str) -> int:
    key = text.upper()[:3] if text[:1].isalpha() else text
    if key in names:
        return names[key]
    if not text.isdigit():
        raise HostConfigError(f"{what}: {text!r} is not a number")
    return int(text)


def _parse_field(text: str, index: int, expression: str) -> frozenset[int]:
    low, high, names = _FIELDS[index]
    what = f"schedule '{expression}', {_FIELD_NAMES[index]} field"
    values: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            if not step_text.isdigit() or int(step_text) == 0:
                raise HostConfigError(f"{what}: bad step {step_text!r}")
            step = int(step_text)
        if part in ("*", "?"):
            start, end = low, high
        elif "-" in part:
            first, last = part.split("-", 1)
            start, end = _value(first, names, what), _value(last, names, what)
        else:
            start = _value(part, names, what)
            # "5/15" means from 5 to the end in steps of 15, as in NCRONTAB.
            end = high if step > 1 else start
        if index == 5:
            # Sunday may be written 7.
            start, end = (0 if start == 7 else start), (6 if end == 7 else end)
        if not (low <= start <= high and low <= end <= high and start <= end):
            raise HostConfigError(f"{what}: {part!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Schedule:
    """A parsed timer schedule; :meth:`next_after` gives the next UTC occurrence."""

    expression: str
    fields: tuple[frozenset[int], ...] | None = None
    interval: float | None = None

    @classmethod
    def parse(cls, expression: str) -> Schedule:
        """Parse ``sec min hour day month dow`` (5 fields mean seconds = 0) or a ``hh:mm:ss`` interval."""
        text = expression.strip()
        if re.fullmatch(r"(\d+\.)?\d+:\d{1,2}:\d{1,2}", text):
            seconds = parse_timespan(text, "schedule")
            if seconds <= 0:
                raise HostConfigError(f"schedule '{expression}': the interval must be positive")
            return cls(expression, interval=seconds)
        parts = text.split()
        if len(parts) == 5:
            parts = ["0", *parts]
        if len(parts) != 6:
            raise HostConfigError(
                f"schedule '{expression}' is not an NCRONTAB expression "
                "'{second} {minute} {hour} {day} {month} {day-of-week}'"
            )
        fields = tuple(_parse_field(part, index, expression) for index, part in enumerate(parts))
        return cls(expression, fields=fields)

    def next_after(self, after: datetime) -> datetime:
        """The first occurrence strictly after ``after`` (an aware datetime), in UTC."""
        after = after.astimezone(UTC)
        if self.interval is not None:
            return after + timedelta(seconds=self.interval)
        assert self.fields is not None
        seconds, minutes, hours, days, months, weekdays = self.fields
        t = after.replace(microsecond=0) + timedelta(seconds=1)
        # Field-by-field search; NCRONTAB requires day AND day-of-week to match (unlike Vixie cron).
        for _ in range(200_000):
            if t.month not in months:
                year, month = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
                t = t.replace(year=year, month=month, day=1, hour=0, minute=0, second=0)
            elif t.day not in days or (t.weekday() + 1) % 7 not in weekdays:
                t = t.replace(hour=0, minute=0, second=0) + timedelta(days=1)
            elif t.hour not in hours:
                t = t.replace(minute=0, second=0) + timedelta(hours=1)
            elif t.minute not in minutes:
                t = t.replace(second=0) + timedelta(minutes=1)
            elif t.second not in seconds:
                t += timedelta(seconds=1)
            else:
                return t
        raise HostConfigError(f"schedule '{self.expression}' never fires")

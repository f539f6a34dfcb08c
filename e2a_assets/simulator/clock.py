"""Time for the simulator: epoch seconds (ints) rendered as the timestamps webhooks carry.

Pure and cached, since every delivery renders several timestamps: UTC `…Z` for e2a envelopes and
Shopify headers, the tenant's local offset (`…-04:00`) for Shopify resources.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

MINUTE = 60
HOUR = 3600
DAY = 86400
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)

_DAY_PREFIX: dict[int, str] = {}


def _day_prefix(day: int) -> str:
    prefix = _DAY_PREFIX.get(day)
    if prefix is None:
        prefix = _DAY_PREFIX[day] = (EPOCH + dt.timedelta(days=day)).strftime("%Y-%m-%dT")
    return prefix


def epoch_seconds(day: dt.date) -> int:
    """Epoch seconds of 00:00 UTC on `day`."""
    return int((dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc) - EPOCH).total_seconds())


def clock(t: int) -> str:
    """`YYYY-MM-DDTHH:MM:SS` of epoch seconds t (no zone)."""
    day, sec = divmod(t, DAY)
    hour, rest = divmod(sec, HOUR)
    minute, second = divmod(rest, MINUTE)
    return f"{_day_prefix(day)}{hour:02d}:{minute:02d}:{second:02d}"


def iso_z(t: int) -> str:
    return clock(t) + "Z"


class Tz:
    """Cached local-time rendering for one tenant time zone (Shopify timestamps carry an offset)."""

    def __init__(self, name: str):
        self.zone = ZoneInfo(name)
        self._offsets: dict[int, int] = {}

    def offset(self, t: int) -> int:
        hour = t // HOUR
        off = self._offsets.get(hour)
        if off is None:
            delta = (EPOCH + dt.timedelta(seconds=hour * HOUR)).astimezone(self.zone).utcoffset()
            off = int(delta.total_seconds()) if delta else 0
            self._offsets[hour] = off
        return off

    def iso(self, t: int) -> str:
        off = self.offset(t)
        sign_ = "+" if off >= 0 else "-"
        a = abs(off)
        return clock(t + off) + f"{sign_}{a // HOUR:02d}:{a % HOUR // MINUTE:02d}"

    def local_seconds_of_day(self, t: int) -> int:
        return (t + self.offset(t)) % DAY

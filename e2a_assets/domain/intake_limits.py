"""What a signed delivery may contain before it is stored (DOMAIN §1.2, issue 13).

A signed body that breaks one of these limits is malformed: 422 and a dead letter, on SQLite and
Postgres alike. The limits are checked before anything reaches the database, so a value that a
column would refuse (an integer wider than the column, a lone surrogate, a NUL, a timestamp no
partition holds) never turns into a database error that the receiver could mistake for an outage.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, Mapping

# The first day partition of every daily and monthly asset (partitions.py uses this date): an event
# that happened before it could never be materialised.
FIRST_DAY = "2025-01-01"

# Nesting deeper than this is no webhook e2a knows; Python's parser would recurse ~1,000 levels and fail.
MAX_JSON_DEPTH = 64
# The columns the numbers land in: Integer (32-bit) for counts, BigInteger (64-bit) for cents.
MAX_COUNT = 2**31 - 1
MAX_CENTS = 2**63 - 1

# A header whose name contains one of these words carries (or may carry) a credential.
SECRET_HEADER_WORDS = ("key", "token", "secret", "auth", "cookie", "password", "session", "signature", "hmac")
REDACTED = "[redacted]"
_SECRET_HEADER = re.compile("|".join(SECRET_HEADER_WORDS), re.IGNORECASE)


class IntakeLimitError(ValueError):
    """A value outside what e2a stores; the message becomes the dead letter's reason."""


@dataclass(frozen=True)
class TimeWindow:
    """Timestamps e2a accepts: from the first partition to `max_future` past the receiving clock."""

    earliest: dt.datetime = dt.datetime.fromisoformat(FIRST_DAY).replace(tzinfo=dt.timezone.utc)
    max_future: dt.timedelta = dt.timedelta(days=1)

    def check(self, value: dt.datetime | None, what: str, now: dt.datetime) -> None:
        if value is None:
            return
        if value < self.earliest:
            raise IntakeLimitError(f"{what} {value.isoformat()} is before the first partition ({self.earliest.date()})")
        if value > now + self.max_future:
            raise IntakeLimitError(f"{what} {value.isoformat()} is more than {self.max_future} in the future")


DEFAULT_WINDOW = TimeWindow()


def check_depth(doc: Any, body: bytes) -> None:
    """Reject JSON nested deeper than MAX_JSON_DEPTH (cheap when the body has few brackets)."""
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:
        return
    level = [(doc, 1)]
    while level:
        value, depth = level.pop()
        if depth > MAX_JSON_DEPTH:
            raise IntakeLimitError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(value, dict):
            level.extend((v, depth + 1) for v in value.values() if isinstance(v, (dict, list)))
        elif isinstance(value, list):
            level.extend((v, depth + 1) for v in value if isinstance(v, (dict, list)))


def check_range(value: int | None, what: str, low: int, high: int) -> None:
    if value is not None and not low <= value <= high:
        raise IntakeLimitError(f"field {what} out of range ({low}..{high})")


def check_storable_text(value: str, what: str) -> None:
    """Text both backends store: valid UTF-8 (no lone surrogate) and no NUL (Postgres refuses it)."""
    if "\x00" in value:
        raise IntakeLimitError(f"field {what} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise IntakeLimitError(f"field {what} is not valid UTF-8 (lone surrogate)") from None


def is_secret_header(name: str) -> bool:
    return bool(_SECRET_HEADER.search(name))


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers as a dead letter keeps them: credential-like values replaced, names kept (so an
    operator still sees that, say, an X-Api-Key was sent)."""
    return {k: (REDACTED if is_secret_header(k) else v) for k, v in headers.items()}

"""The waits a server asks for (``Retry-After``, ``RateLimit``), read without trusting their numbers.

huggingface_hub's ``parse_ratelimit_headers`` calls ``int()`` on the header's digits, so a
5,000-digit ``t`` raises ValueError (Python refuses int strings over 4,300 digits); here every
number is read from at most ``MAX_DIGITS`` digits and anything longer is "very long". Callers cap
what they sleep with ``Settings.max_retry_after_s``.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

# Twelve digits of seconds is 31,000 years: any longer number means "longer than any cap".
MAX_DIGITS = 12
VERY_LONG = float(10**MAX_DIGITS)
# The IETF draft's shape as the Hub sends it: "api";r=0;t=55 and "fixed window";"api";q=500;w=300.
_LIMIT = re.compile(r'"(?P<bucket>[^"]{0,64})"\s*;\s*r\s*=\s*(?P<r>\d+)\s*;\s*t\s*=\s*(?P<t>\d+)')
_POLICY = re.compile(r'"[^"]{0,64}"\s*;\s*"[^"]{0,64}"\s*;\s*q\s*=\s*(?P<q>\d+)\s*;\s*w\s*=\s*(?P<w>\d+)')
# A header value past this length is not a rate-limit header: never scan megabytes of it.
MAX_HEADER_CHARS = 1024


@dataclass(frozen=True)
class RateLimit:
    """One ``RateLimit`` (+ ``RateLimit-Policy``) answer: requests left, seconds to the reset, quota."""

    remaining: float
    reset_s: float
    quota: int | None = None
    window_s: int | None = None


def _number(digits: str) -> float:
    return VERY_LONG if len(digits.lstrip("0")) > MAX_DIGITS else float(int(digits))


def rate_limit(headers: Mapping[str, str]) -> RateLimit | None:
    """The ``RateLimit`` headers, or None when absent or not in the Hub's shape."""
    value = (headers.get("RateLimit") or "")[:MAX_HEADER_CHARS]
    found = _LIMIT.search(value)
    if not found:
        return None
    quota = window = None
    policy = _POLICY.search((headers.get("RateLimit-Policy") or "")[:MAX_HEADER_CHARS])
    if policy and len(policy["q"]) <= MAX_DIGITS and len(policy["w"]) <= MAX_DIGITS:
        quota, window = int(policy["q"]), int(policy["w"])
    return RateLimit(_number(found["r"]), _number(found["t"]), quota, window)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asked us to wait: ``Retry-After`` (seconds or an HTTP date), else the
    ``RateLimit`` reset when no request is left; None when it asked nothing."""
    value = (headers.get("Retry-After") or "")[:MAX_HEADER_CHARS].strip()
    if value:
        try:
            seconds = float(value)
        except ValueError:
            try:
                seconds = parsedate_to_datetime(value).timestamp() - time.time()
            except (TypeError, ValueError, OverflowError):
                seconds = math.nan
        if not math.isnan(seconds):
            return min(max(0.0, seconds), VERY_LONG)
    info = rate_limit(headers)
    if info is not None and info.remaining == 0:
        return info.reset_s
    return None

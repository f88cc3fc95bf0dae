"""HubSpot webhook signature v3: base64(HMAC-SHA256(client secret, method + URI + body + timestamp)).

hubspot.utils.signature computes the same hash but reads the wall clock and accepts timestamps from the
future, so the freshness check lives here with an injectable clock.
"""

from __future__ import annotations

import hmac
import time
from typing import Callable

from hubspot.utils.signature import Signature

MAX_AGE_MS = 5 * 60 * 1000  # HubSpot: reject anything older than 5 minutes
FUTURE_SKEW_MS = 60 * 1000  # clocks drift a little; a request far in the future is a forgery or replay trick

# HubSpot signs the URI with these characters decoded (documented for v3).
_DECODE = {"%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$", "%27": "'", "%28": "(",
           "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";"}


class SignatureError(Exception):
    """Why a webhook request was rejected (safe to log: no secret, no body)."""


def canonical_uri(uri: str) -> str:
    out = uri
    for encoded, plain in _DECODE.items():
        out = out.replace(encoded, plain).replace(encoded.lower(), plain)
    return out


def sign_v3(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """The signature HubSpot would send; used to verify, and by tests to forge valid requests."""
    return Signature.get_signature(secret, body.decode("utf-8"), "v3", canonical_uri(uri), method.upper(), timestamp)


def verify_v3(secret: str, method: str, uri: str, body: bytes, signature: str | None, timestamp: str | None,
              *, clock: Callable[[], float] = time.time, max_age_ms: int = MAX_AGE_MS,
              future_skew_ms: int = FUTURE_SKEW_MS) -> None:
    """Raise SignatureError unless the request is fresh and signed with `secret`."""
    if not secret:
        raise SignatureError("no client secret configured")
    if not signature or not timestamp:
        raise SignatureError("missing X-HubSpot-Signature-v3 or X-HubSpot-Request-Timestamp")
    try:
        sent_ms = int(timestamp)
    except ValueError:
        raise SignatureError("timestamp is not an integer") from None
    now_ms = int(clock() * 1000)
    if now_ms - sent_ms > max_age_ms:
        raise SignatureError("timestamp too old")
    if sent_ms - now_ms > future_skew_ms:
        raise SignatureError("timestamp in the future")
    try:
        expected = sign_v3(secret, method, uri, body, timestamp)
    except UnicodeDecodeError:
        raise SignatureError("body is not UTF-8") from None
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise SignatureError("signature mismatch")

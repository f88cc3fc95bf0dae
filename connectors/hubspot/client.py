"""A thin wrapper over hubspot-api-client: one place for throttling, timeouts, metrics and errors.

Every call goes through `HubSpotClient.call`, which
- waits on the token bucket (the search API on its own, slower one),
- turns off urllib3's hidden retries (they retry only GET/PUT/DELETE and end in MaxRetryError), so the
  only retry policy is connectors/retry.py,
- folds the per-package ApiException classes and urllib3 transport errors into one `HubSpotError`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import urllib3
from hubspot import HubSpot
from hubspot.crm.associations.v4 import ApiException as AssociationsApiException
from hubspot.crm.objects import ApiException as ObjectsApiException
from hubspot.crm.properties import ApiException as PropertiesApiException

from connectors.hubspot import metrics
from connectors.hubspot.ratelimit import TokenBucket, _header
from connectors.hubspot.settings import HubSpotSettings

_API_EXCEPTIONS = (ObjectsApiException, PropertiesApiException, AssociationsApiException)


@dataclass
class HubSpotError(Exception):
    """One failed HubSpot call. status 0 means no HTTP answer (timeout, connection error)."""

    status: int
    message: str
    retry_after: float | None = None
    policy: str | None = None  # 429 policyName, e.g. "DAILY" or "TEN_SECONDLY_ROLLING"
    category: str | None = None

    def __str__(self) -> str:
        return f"HubSpot {self.status or 'transport error'}: {self.message}"

    @property
    def retryable(self) -> bool:
        return self.status in (0, 408, 429) or self.status >= 500

    @property
    def daily_limit(self) -> bool:
        return self.status == 429 and (self.policy or "").upper() == "DAILY"


@dataclass(frozen=True)
class Response:
    data: Any
    status: int
    headers: Mapping[str, str]


class HubSpotClient:
    def __init__(self, settings: HubSpotSettings, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        # retry=False: no urllib3 retries at all, transport errors surface at once.
        self.api = HubSpot(access_token=settings.access_token.reveal(), host=settings.base_url, retry=False)
        self.bucket = TokenBucket(settings.rate_per_10s, 10.0, clock=clock, sleep=sleep)
        self.search_bucket = TokenBucket(settings.search_rate_per_s, 1.0, clock=clock, sleep=sleep)

    def __repr__(self) -> str:
        return f"HubSpotClient(base_url={self.settings.base_url!r})"

    def call(self, endpoint: str, method: Callable[..., Any], *args: Any, search: bool = False,
             **kwargs: Any) -> Response:
        """Call a `*_with_http_info` method of hubspot-api-client; raise HubSpotError on any failure."""
        waited = self.bucket.acquire()
        if search:
            waited += self.search_bucket.acquire()
        if waited:
            metrics.THROTTLE_SECONDS.inc(waited)
        started = time.perf_counter()
        try:
            data, status, headers = method(*args, _request_timeout=self.settings.timeout, **kwargs)
        except _API_EXCEPTIONS as exc:
            metrics.REQUESTS.labels(endpoint, str(exc.status or 0)).inc()
            # No bucket.observe here: a 429's wait is the retry policy's business (Retry-After), and
            # blocking the bucket as well would wait twice.
            headers = _headers_of(exc)
            raise _error_from(exc, headers) from None
        except urllib3.exceptions.HTTPError as exc:
            # Timeouts, refused connections, protocol errors: no answer, so retryable.
            metrics.REQUESTS.labels(endpoint, "0").inc()
            raise HubSpotError(0, type(exc).__name__ + ": " + _first_line(str(exc))) from None
        finally:
            metrics.REQUEST_SECONDS.labels(endpoint).observe(time.perf_counter() - started)
        metrics.REQUESTS.labels(endpoint, str(status)).inc()
        self._observe(headers)
        return Response(data, status, headers)

    def _observe(self, headers: Mapping[str, str]) -> None:
        self.bucket.observe(headers)
        for window, name in (("interval", "X-HubSpot-RateLimit-Remaining"),
                             ("secondly", "X-HubSpot-RateLimit-Secondly-Remaining"),
                             ("daily", "X-HubSpot-RateLimit-Daily-Remaining")):
            value = _header(headers, name)
            if value is not None and value.isdigit():
                metrics.RATELIMIT_REMAINING.labels(window).set(int(value))

    def close(self) -> None:
        # The sub-API clients each hold a urllib3 pool; they close with the process. Nothing to flush.
        pass


def _headers_of(exc: Exception) -> Mapping[str, str]:
    headers = getattr(exc, "headers", None)
    return dict(headers) if headers else {}


def _error_from(exc: Any, headers: Mapping[str, str]) -> HubSpotError:
    status = int(exc.status or 0)
    body = exc.body if isinstance(exc.body, str) else (exc.body or b"").decode("utf-8", "replace")
    message, policy, category = body.strip() or (exc.reason or ""), None, None
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        message = str(parsed.get("message") or message)
        policy = parsed.get("policyName")
        category = parsed.get("category") or parsed.get("errorType")
    if status == 429:
        metrics.RATE_LIMITED.labels(policy or "unknown").inc()
    return HubSpotError(status, _first_line(message, 500), retry_after_seconds(headers), policy, category)


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Retry-After in seconds (HubSpot does not document it; honour it when present)."""
    raw = _header(headers, "Retry-After")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        from email.utils import parsedate_to_datetime
        try:
            return max(0.0, parsedate_to_datetime(raw).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def _first_line(text: str, limit: int = 300) -> str:
    return text.strip().splitlines()[0][:limit] if text.strip() else ""

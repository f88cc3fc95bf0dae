"""Prometheus metrics of the HubSpot connector (default registry, prefix clientshift_hubspot_)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter("clientshift_hubspot_requests_total", "HubSpot API requests by endpoint and HTTP status",
                   ["endpoint", "status"])
REQUEST_SECONDS = Histogram("clientshift_hubspot_request_seconds", "HubSpot API request latency", ["endpoint"])
THROTTLE_SECONDS = Counter("clientshift_hubspot_throttle_seconds_total",
                           "Seconds spent waiting on the client-side token bucket")
RATE_LIMITED = Counter("clientshift_hubspot_rate_limited_total", "429 answers by HubSpot policy", ["policy"])
RATELIMIT_REMAINING = Gauge("clientshift_hubspot_ratelimit_remaining",
                            "Last X-HubSpot-RateLimit-*-Remaining seen", ["window"])
ACTIONS = Counter("clientshift_hubspot_actions_total", "Action outcomes", ["type", "outcome"])
ECHOES_DROPPED = Counter("clientshift_hubspot_echoes_dropped_total",
                         "Webhook events recognised as our own writes and dropped")
WEBHOOK_REQUESTS = Counter("clientshift_hubspot_webhook_requests_total", "Webhook deliveries by outcome",
                           ["outcome"])
WEBHOOK_EVENTS = Counter("clientshift_hubspot_webhook_events_total", "Webhook events by result", ["result"])
BACKFILL_RECORDS = Counter("clientshift_hubspot_backfill_records_total", "Records read by backfill")

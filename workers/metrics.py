"""Prometheus metrics of the worker (the default registry, served at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_IN = Counter("clientshift_events_in_total", "Messages read from the input topics", ["topic"])
EVENTS_INVALID = Counter("clientshift_events_invalid_total", "Events rejected by the contract")
DUPLICATES = Counter("clientshift_events_duplicate_total", "Events ignored because their id was seen")
TOO_LATE = Counter("clientshift_events_too_late_total",
                   "Events older than the history horizon (params.history_days), sent to the DLQ")
OVER_RECORD_LIMIT = Counter("clientshift_over_record_limit_total",
                            "Events and ticks refused because their account's state row or an action would "
                            "pass the record limit (CLIENTSHIFT_MAX_RECORD_BYTES)", ["kind"])
TRANSITIONS = Counter("clientshift_status_transitions_total", "Status changes", ["from_status", "to_status"])
FLAGS_RAISED = Counter("clientshift_flags_raised_total", "Flags going false -> true", ["flag"])
DEADLINES = Counter("clientshift_deadlines_fired_total", "Evaluations triggered by a deadline")
ACTIONS = Counter("clientshift_actions_total", "Actions applied, by connector and outcome", ["connector", "outcome"])
CRM_LATENCY = Histogram("clientshift_crm_batch_seconds", "Time to apply one batch of actions", ["connector"])
DLQ = Counter("clientshift_dlq_total", "Records sent to the dead-letter topic", ["kind"])
LAG = Gauge("clientshift_consumer_lag", "Messages behind the high watermark", ["topic", "partition"])
SINK_FAILURES = Counter("clientshift_sink_batch_failures_total",
                        "Batches a connector failed with an error it did not classify; each is retried", ["connector"])
STATE_ROW_BYTES = Gauge("clientshift_state_row_bytes_max",
                        "Largest account state row written to the changelog (Kafka's default limit is 1 MiB)")
PAUSED = Gauge("clientshift_connector_paused", "1 while the CRM refuses writes (e.g. a daily quota)", ["connector"])
# A worker's partitions wait while it joins its group and reads its tables back from the changelogs;
# buckets up to minutes, for workers holding many accounts.
WAITING_FOR_PARTITIONS = Histogram(
    "clientshift_rebalance_seconds",
    "From the worker's start, or a rebalance's start, until it is ready again (group join and table recovery)",
    buckets=(0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320, 640))

"""Early warning for account state rows that approach Kafka's message size limit.

An account's row holds its whole history (every event id it has seen, every order), so it grows with
the account's age: about 40 B per event. Kafka refuses a record over the broker's `message.max.bytes`
(and the producer's `max_request_size`), 1 MiB by default; a row over it would fail every write-out of
its partition until the row shrinks, which it never does on its own (the rules' `params.history_days`
bounds the ids, the largest part). So the worker says so long before: a gauge of the largest row
written (for an alert) and one warning per account whose row passes a threshold.
"""

from __future__ import annotations

import logging

from workers import metrics

log = logging.getLogger("clientshift.worker")

KAFKA_DEFAULT_MESSAGE_LIMIT = 1024 * 1024


class RowSizes:
    def __init__(self, warn_at: int) -> None:
        self.warn_at = warn_at
        self.largest = 0
        self.warned: set[str] = set()

    def over(self, account: str, size: int) -> None:
        """A row over `warn_at` was written (the caller compares: this runs for every row written)."""
        if account in self.warned:
            return
        self.warned.add(account)
        log.warning("account state row is large", extra={
            "account": account, "row_bytes": size, "warn_at": self.warn_at,
            "kafka_default_limit": KAFKA_DEFAULT_MESSAGE_LIMIT,
            "remedy": "bound the event ids kept with the rules' params.history_days"})

    def largest_of_batch(self, size: int) -> None:
        """The largest row of one write-out: the gauge only ever goes up (rows do not shrink)."""
        if size > self.largest:
            self.largest = size
            metrics.STATE_ROW_BYTES.set(size)

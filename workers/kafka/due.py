"""Which deadline rows are due, found without walking the whole deadlines table.

The deadline timer used to scan every row each second, a cost that grows with the accounts a worker
owns (a few ms a second at 30,000 rows, a large share of a core at millions) whether or not anything
is due. This keeps the rows in time order instead. A row that changes is pushed again and its old
entry is dropped when it comes up (it no longer matches the table); after a rebalance or a table
recovery, rows arrive that were never pushed, so the index is rebuilt from the table once (`stale`).
Deadlines are mostly weeks or months ahead, so old entries would pile up for that long, one for
nearly every event; once they outnumber the rows the last rebuild found (plus some slack), the index
asks to be rebuilt too, which keeps it under about twice the table at O(1) amortised per push.

Only the worker writes the deadlines changelog, but a row restored from it that is not a deadline (its
key not an account, or its value not `{"due": seconds, "partition": n}`) means another writer, and it
crashed the timer, on every start. Such rows are left out of the index (`rebuild` returns their
accounts, to be reported) and are never taken as due; the account's next event writes its row anew.
"""

from __future__ import annotations

import heapq
import math
from typing import Any, Callable, Iterable, Iterator, Mapping


SLACK = 1024  # entries beyond twice the rebuilt size before another rebuild: no churn when tables are small


def is_deadline(account: Any, row: Any) -> bool:
    """A deadlines-table row as the worker writes it: keyed by an account, a finite due time and a partition."""
    if not isinstance(account, str) or not isinstance(row, dict):
        return False
    due, partition = row.get("due"), row.get("partition")
    return isinstance(due, (float, int)) and not isinstance(due, bool) and math.isfinite(due) and type(partition) is int


class DueIndex:
    def __init__(self) -> None:
        self._heap: list[tuple[float, str]] = []
        self._rebuild_above = SLACK
        self.stale = True

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, account: str, due: float) -> None:
        heapq.heappush(self._heap, (due, account))
        if len(self._heap) > self._rebuild_above:
            self.stale = True

    def rebuild(self, rows: Iterable[tuple[Any, Any]]) -> list[Any]:
        """Index the table's rows; returns the keys of those that are not deadlines, left out."""
        heap: list[tuple[float, str]] = []
        unreadable: list[Any] = []
        for account, entry in rows:
            if is_deadline(account, entry):
                heap.append((entry["due"], account))
            else:
                unreadable.append(account)
        heapq.heapify(heap)
        self._heap = heap
        self._rebuild_above = 2 * len(heap) + SLACK
        self.stale = False
        return unreadable

    def due(self, now: float, row_of: Callable[[str], Mapping[str, Any] | None]) -> Iterator[tuple[str, Mapping[str, Any]]]:
        """Rows due at `now` (in time order), each taken out of the index; `row_of` reads the table."""
        heap = self._heap
        taken: set[str] = set()  # a row that moved away and back has two entries with the same time
        while heap and heap[0][0] <= now:
            due, account = heapq.heappop(heap)
            row = row_of(account)
            # Else moved, gone, taken already, or replaced by a restored row that is not a deadline.
            if row is not None and is_deadline(account, row) and row["due"] == due and account not in taken:
                taken.add(account)
                yield account, row

"""Which deadline rows are due, found without walking the whole deadlines table.

The deadline timer used to scan every row each second, a cost that grows with the accounts a worker
owns (a few ms a second at 30,000 rows, a large share of a core at millions) whether or not anything
is due. This keeps the rows in time order instead. A row that changes is pushed again and its old
entry is dropped when it comes up (it no longer matches the table); after a rebalance or a table
recovery, rows arrive that were never pushed, so the index is rebuilt from the table once (`stale`).
"""

from __future__ import annotations

import heapq
from typing import Any, Callable, Iterable, Iterator, Mapping


class DueIndex:
    def __init__(self) -> None:
        self._heap: list[tuple[float, str]] = []
        self.stale = True

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, account: str, due: float) -> None:
        heapq.heappush(self._heap, (due, account))

    def rebuild(self, rows: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
        self._heap = [(entry["due"], account) for account, entry in rows]
        heapq.heapify(self._heap)
        self.stale = False

    def due(self, now: float, row_of: Callable[[str], Mapping[str, Any] | None]) -> Iterator[tuple[str, Mapping[str, Any]]]:
        """Rows due at `now` (in time order), each taken out of the index; `row_of` reads the table."""
        heap = self._heap
        taken: set[str] = set()  # a row that moved away and back has two entries with the same time
        while heap and heap[0][0] <= now:
            due, account = heapq.heappop(heap)
            row = row_of(account)
            if row is not None and row["due"] == due and account not in taken:  # else moved, gone or twice
                taken.add(account)
                yield account, row

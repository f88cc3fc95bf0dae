"""Remember what the compiled rules answered, by the facts they read.

Most evaluations ask the same question: the status chain reads five booleans, the flags read the status,
two day counters and an order count. A condition's answer depends only on the facts it names, and a
day counter compared only against integer literals gives the same answer anywhere between two of its
flip points, so the key holds the bucket it falls in, not the count. The answers are exactly CEL's:
the first time a key is seen, CEL computes it.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from typing import Any, Callable, Mapping, Sequence

# Bounded so a policy reading something with many values (a raw property) cannot grow without limit.
MAX_ENTRIES = 65_536


class Memo:
    def __init__(self, conditions: Sequence[str], facts: Sequence[str],
                 buckets: Mapping[str, tuple[int, ...]]) -> None:
        text = "\n".join(conditions)
        self.reads = tuple(name for name in facts if re.search(rf"\b{name}\b", text))
        # Only counters whose every use is a comparison with a literal may be bucketed; the others
        # keep their exact value in the key.
        self.buckets = {name: flips for name, flips in buckets.items() if name in self.reads}
        self.answers: dict[tuple[Any, ...], Any] = {}
        self.key = self._compile_key()

    def _compile_key(self) -> Callable[[Mapping[str, Any]], tuple[Any, ...] | None]:
        """The key of a facts mapping, as straight-line code over `reads` (it runs twice per evaluation):
        a bucketed counter becomes the index of its bucket, a list a tuple, and a dict (raw properties)
        means no key, so the conditions are evaluated every time."""
        lines = ["def key(facts):"]
        namespace: dict[str, Any] = {"bisect_right": bisect_right}
        for n, name in enumerate(self.reads):
            lines.append(f"    v{n} = facts[{name!r}]")
            if name in self.buckets:
                namespace[f"flips{n}"] = self.buckets[name]
                lines.append(f"    if v{n} is not None: v{n} = bisect_right(flips{n}, v{n})")
            else:
                lines.append(f"    if isinstance(v{n}, list): v{n} = tuple(v{n})")
                lines.append(f"    elif isinstance(v{n}, dict): return None")
        lines.append(f"    return ({''.join(f'v{n}, ' for n in range(len(self.reads)))})")
        exec("\n".join(lines), namespace)  # noqa: S102 - generated from fact names checked against the schema
        return namespace["key"]

    def answer(self, facts: Mapping[str, Any], compute: Callable[[Mapping[str, Any]], Any]) -> Any:
        key = self.key(facts)
        if key is None:
            return compute(facts)
        try:
            return self.answers[key]
        except KeyError:
            pass
        value = compute(facts)
        if len(self.answers) >= MAX_ENTRIES:
            self.answers.clear()
        self.answers[key] = value
        return value

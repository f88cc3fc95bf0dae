"""Load, check and compile a rules file.

Every problem is reported with file, rule name and line:column in the YAML file, so `clientshift rules
check` and a worker refusing to start say exactly where to look. CEL engine: cel-expr-python, because
it type-checks conditions against the declared facts at compile time (see README, "Choosing a CEL
engine", for the benchmark that weighed that against raw speed).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import yaml
from cel_expr_python import cel

from workers.rules.memo import Memo

STATUSES = ("prospect", "customer", "client")
PRIORITIES = ("LOW", "MEDIUM", "HIGH")
TRIGGERS = ("status_becomes", "status_leaves", "flag_raised", "flag_cleared")

_T = cel.Type
# The facts conditions may read, and their CEL types (int-or-null facts are dyn: CEL has no nullable int
# that takes a Python None here).
FACT_TYPES: dict[str, Any] = {
    "has_csm": _T.BOOL,
    "csm_plan": _T.BOOL,
    "professional_services": _T.BOOL,
    "long_contract": _T.BOOL,
    "ever_purchased": _T.BOOL,
    "orders_180d": _T.INT,
    "meetings": _T.INT,
    "tickets": _T.INT,
    "days_since_contact": _T.DYN,
    "contract_ends_in_days": _T.DYN,
    "account_kind": _T.STRING,
    "active_plans": _T.List(_T.STRING),
    "properties": _T.Map(_T.STRING, _T.DYN),
}
DEFAULT_PARAMS: dict[str, Any] = {
    "csm_plans": ["csm", "success", "premier"],
    "professional_service_categories": ["professional_services", "consulting", "implementation", "advisory"],
    "professional_services_window_days": 365,
    "long_contract_min_days": 365,
    "orders_window_days": 180,
    # How much of an account's history its state keeps event ids for (days of the account's own
    # clock); null keeps every id. See Engine.handle for what happens to an event older than that.
    "history_days": None,
}
_OPTIONAL_PARAMS = frozenset({"history_days"})
MAX_DUE_IN_DAYS = 36_500  # a century: due dates stay printable however late the engine's clock (timeutil.END_OF_TIME)
_STATUS_ENV = cel.NewEnv(variables=FACT_TYPES)
_FLAG_ENV = cel.NewEnv(variables={**FACT_TYPES, "status": _T.STRING})
_CEL_POSITION = re.compile(r"<input>:(\d+):(\d+): (.*?)(?:\n|$)")
_INT_LITERAL = re.compile(r"(?<![\w.'\"])\d+(?![\w.'\"])")
DAY_COUNTERS = ("days_since_contact", "contract_ends_in_days")


def default_policy_path() -> Path:
    return Path(str(resources.files("workers.rules").joinpath("default.yaml")))


@dataclass(frozen=True)
class Problem:
    file: str
    rule: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: rule '{self.rule}': {self.message}"


class RulesError(ValueError):
    """A rules file that cannot be used; `problems` lists every finding."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True)
class StatusRule:
    name: str
    status: str
    when: str
    description: str


@dataclass(frozen=True)
class FlagRule:
    name: str
    when: str
    description: str


@dataclass(frozen=True)
class TaskSpec:
    kind: str
    trigger: str  # one of TRIGGERS
    target: str  # the status or flag the trigger names
    title: str
    body: str
    priority: str
    due_in_days: int

    def fires(self, before_status: str | None, after_status: str,
              before_flags: tuple[str, ...], after_flags: tuple[str, ...]) -> bool:
        if self.trigger == "status_becomes":
            return before_status != self.target and after_status == self.target
        if self.trigger == "status_leaves":
            return before_status == self.target and after_status != self.target
        if self.trigger == "flag_raised":
            return self.target not in before_flags and self.target in after_flags
        return self.target in before_flags and self.target not in after_flags


@dataclass(frozen=True)
class Verdict:
    status: str
    rule: str
    flags: tuple[str, ...]


@dataclass
class Policy:
    source: str
    params: Mapping[str, Any]
    status_rules: tuple[StatusRule, ...]
    flag_rules: tuple[FlagRule, ...]
    tasks: tuple[TaskSpec, ...]
    tag_name: str
    # Per day counter, the values where some condition flips: the engine re-evaluates when a counter
    # reaches one, instead of every day.
    day_thresholds: Mapping[str, tuple[int, ...]]
    _status_programs: list[Any] = field(repr=False, default_factory=list)
    _flag_programs: list[Any] = field(repr=False, default_factory=list)
    _status_all: Any = field(repr=False, default=None)
    _flags_all: Any = field(repr=False, default=None)

    _status_memo: Memo | None = field(repr=False, default=None)
    _flags_memo: Memo | None = field(repr=False, default=None)

    def decide_status(self, facts: Mapping[str, Any]) -> tuple[str, str]:
        """First matching status rule wins: returns (status, rule name)."""
        index = self._status_memo.answer(facts, self._first_match) if self._status_memo else self._first_match(facts)
        if index < 0:
            return "prospect", "no_rule_matched"
        rule = self.status_rules[index]
        return rule.status, rule.name

    def decide_flags(self, facts: Mapping[str, Any]) -> tuple[str, ...]:
        if not self.flag_rules:
            return ()
        return self._flags_memo.answer(facts, self._flags) if self._flags_memo else self._flags(facts)

    def _first_match(self, facts: Mapping[str, Any]) -> int:
        try:
            return self._status_all.eval(data=facts).plain_value()
        except RuntimeError:
            return self._first_match_slowly(facts)

    def _flags(self, facts: Mapping[str, Any]) -> tuple[str, ...]:
        try:
            values = self._flags_all.eval(data=facts).plain_value()
        except RuntimeError:
            values = [self._safe_eval(program, facts) for program in self._flag_programs]
        return tuple(rule.name for rule, on in zip(self.flag_rules, values) if on)

    # A condition that errors at run time (say, comparing a null fact) counts as false, one rule at a
    # time, so one sloppy rule cannot take the others down with it.
    def _first_match_slowly(self, facts: Mapping[str, Any]) -> int:
        for index, program in enumerate(self._status_programs):
            if self._safe_eval(program, facts):
                return index
        return -1

    @staticmethod
    def _safe_eval(program: Any, facts: Mapping[str, Any]) -> bool:
        try:
            return program.eval(data=facts).plain_value() is True
        except RuntimeError:
            return False


def load_policy(path: str | Path | None = None) -> Policy:
    """Load and check a rules file (the packaged default when `path` is None); raises RulesError."""
    file_path = Path(path) if path is not None else default_policy_path()
    label = str(path) if path is not None else "default.yaml"
    try:
        text = file_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError([Problem(label, "-", 1, 1, f"cannot read: {exc.strerror}")]) from None
    return parse_policy(text, label)


def parse_policy(text: str, label: str = "<rules>") -> Policy:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise RulesError([Problem(label, "-", line, column, f"YAML syntax error: {getattr(exc, 'problem', exc)}")]) from None
    return _Builder(label, text, root, document).build()


class _Builder:
    def __init__(self, label: str, text: str, root: Any, document: Any) -> None:
        self.label = label
        self.lines = text.splitlines()
        self.root = root
        self.doc = document if isinstance(document, dict) else {}
        self.problems: list[Problem] = []
        if not isinstance(document, dict):
            self._problem("-", root, "a rules file is a YAML mapping with status, flags, tag and tasks")

    def build(self) -> Policy:
        params = self._params()
        status_rules, status_programs = self._status_rules()
        flag_rules, flag_programs = self._flag_rules()
        tasks = self._tasks({r.name for r in flag_rules})
        tag_name = (self.doc.get("tag") or {}).get("name", "relationship_status")
        if self.problems:
            raise RulesError(self.problems)
        conditions = [rule.when for rule in status_rules] + [rule.when for rule in flag_rules]
        thresholds = day_thresholds(conditions)
        policy = Policy(self.label, params, tuple(status_rules), tuple(flag_rules), tuple(tasks), tag_name,
                        thresholds, status_programs, flag_programs)
        policy._status_all = _STATUS_ENV.compile(_first_match_expression(status_rules))
        policy._flags_all = _FLAG_ENV.compile("[" + ", ".join(f"({r.when})" for r in flag_rules) + "]")
        exact = compared_exactly(conditions)
        buckets = {name: flips for name, flips in thresholds.items() if name in exact}
        policy._status_memo = Memo([r.when for r in status_rules], list(FACT_TYPES), buckets)
        policy._flags_memo = Memo([r.when for r in flag_rules], [*FACT_TYPES, "status"], buckets)
        return policy

    def _params(self) -> dict[str, Any]:
        given = self.doc.get("params") or {}
        if not isinstance(given, dict):
            self._problem("params", self._node("params"), "`params` must be a mapping")
            return dict(DEFAULT_PARAMS)
        for name, value in given.items():
            node = self._node("params", name)
            if name not in DEFAULT_PARAMS:
                near = difflib.get_close_matches(str(name), DEFAULT_PARAMS, n=1)
                hint = f" (did you mean {near[0]}?)" if near else f"; known: {', '.join(DEFAULT_PARAMS)}"
                self._problem("params", node, f"unknown parameter `{name}`{hint}")
            elif value is None and name in _OPTIONAL_PARAMS:
                continue
            elif isinstance(DEFAULT_PARAMS[name], list):
                if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                    self._problem("params", node, f"`{name}` must be a list of strings")
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1e6:
                self._problem("params", node, f"`{name}` must be a number of days above 0")
        return {**DEFAULT_PARAMS, **given}

    def _status_rules(self) -> tuple[list[StatusRule], list[Any]]:
        rules, programs = [], []
        for index, item in enumerate(self._list("status")):
            name = str(item.get("name") or f"status[{index}]")
            node = self._node("status", index)
            status = item.get("status")
            if status not in STATUSES:
                self._problem(name, self._node("status", index, "status") or node,
                              f"status must be one of {', '.join(STATUSES)}, got {status!r}")
            program = self._compile(name, _STATUS_ENV, item.get("when"), self._node("status", index, "when") or node)
            rules.append(StatusRule(name, str(status), str(item.get("when")), str(item.get("description", ""))))
            programs.append(program)
        if not rules:
            self._problem("-", self.root, "at least one status rule is needed")
        return rules, programs

    def _flag_rules(self) -> tuple[list[FlagRule], list[Any]]:
        rules, programs = [], []
        for index, item in enumerate(self._list("flags")):
            name = str(item.get("name") or f"flags[{index}]")
            node = self._node("flags", index)
            program = self._compile(name, _FLAG_ENV, item.get("when"), self._node("flags", index, "when") or node)
            rules.append(FlagRule(name, str(item.get("when")), str(item.get("description", ""))))
            programs.append(program)
        return rules, programs

    def _tasks(self, flag_names: set[str]) -> list[TaskSpec]:
        specs = []
        for index, item in enumerate(self._list("tasks")):
            kind = str(item.get("kind") or f"tasks[{index}]")
            node = self._node("tasks", index)
            on = item.get("trigger") or {}
            if not isinstance(on, dict) or len(on) != 1 or next(iter(on)) not in TRIGGERS:
                self._problem(kind, self._node("tasks", index, "trigger") or node,
                              f"`trigger` needs exactly one of {', '.join(TRIGGERS)}")
                continue
            trigger, target = next(iter(on.items()))
            known = STATUSES if trigger.startswith("status") else tuple(sorted(flag_names))
            if target not in known:
                self._problem(kind, self._node("tasks", index, "trigger") or node,
                              f"{trigger} names {target!r}, which is not one of {', '.join(known)}")
            priority = str(item.get("priority", "MEDIUM")).upper()
            if priority not in PRIORITIES:
                self._problem(kind, self._node("tasks", index, "priority") or node,
                              f"priority must be one of {', '.join(PRIORITIES)}")
            due = item.get("due_in_days", 3)
            if not isinstance(due, int) or isinstance(due, bool) or not 0 <= due <= MAX_DUE_IN_DAYS:
                self._problem(kind, self._node("tasks", index, "due_in_days") or node,
                              f"due_in_days must be a whole number of days from 0 to {MAX_DUE_IN_DAYS}")
                due = 0
            specs.append(TaskSpec(kind, trigger, str(target), str(item.get("title", kind)),
                                  str(item.get("body", "")), priority, due))
        return specs

    def _list(self, key: str) -> list[dict[str, Any]]:
        value = self.doc.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self._problem(key, self._node(key) or self.root, f"`{key}` must be a list of mappings")
            return []
        return value

    def _compile(self, rule: str, env: Any, expression: Any, node: Any) -> Any:
        if not isinstance(expression, (str, bool)):
            self._problem(rule, node, "`when` must be a CEL expression")
            return None
        source = str(expression).lower() if isinstance(expression, bool) else expression
        try:
            program = env.compile(source)
        except RuntimeError as exc:
            match = _CEL_POSITION.search(str(exc))
            if match is None:
                self._problem(rule, node, str(exc))
            else:
                line, column, message = int(match[1]), int(match[2]), match[3]
                self._problem(rule, node, message.replace(" (in container '')", ""), line, column)
            return None
        if program.return_type() != _T.BOOL:
            self._problem(rule, node, f"condition must be bool, but it is {program.return_type().name()}")
        return program

    def _node(self, *path: str | int) -> Any:
        node = self.root
        for step in path:
            if isinstance(step, int) and isinstance(node, yaml.SequenceNode) and step < len(node.value):
                node = node.value[step]
            elif isinstance(step, str) and isinstance(node, yaml.MappingNode):
                node = next((v for k, v in node.value if k.value == step), None)
            else:
                return None
            if node is None:
                return None
        return node

    def _problem(self, rule: str, node: Any, message: str, cel_line: int = 1, cel_column: int = 1) -> None:
        line, column = self._position(node, cel_line, cel_column)
        self.problems.append(Problem(self.label, rule, line, column, message))

    def _position(self, node: Any, cel_line: int, cel_column: int) -> tuple[int, int]:
        """Map a position inside a CEL expression to the YAML file (1-based line and column)."""
        if node is None:
            return 1, 1
        mark = node.start_mark
        style = getattr(node, "style", None)
        if style in ("|", ">"):
            # Block scalar: the text starts on the next line at the block's indentation. Folding (>)
            # joins lines, so the CEL column runs on across them: walk the lines to find it.
            first = mark.line + 1
            offset = cel_column
            line_index = first + cel_line - 1
            while line_index < len(self.lines):
                raw = self.lines[line_index]
                content = raw.strip()
                indent = len(raw) - len(raw.lstrip())
                if style == "|" or offset <= len(content) + 1:
                    return line_index + 1, indent + offset
                offset -= len(content) + 1
                line_index += 1
            return first + 1, 1
        quote = 1 if style in ("'", '"') else 0
        return mark.line + cel_line, mark.column + quote + cel_column


# Where a comparison's answer flips, as the counter goes from b - 1 to b: `x > 90` flips at 91.
_FLIPS = {">": (1,), "<=": (1,), ">=": (0,), "<": (0,), "==": (0, 1), "!=": (0, 1)}
_MIRROR = {">": "<", "<": ">", ">=": "<=", "<=": ">=", "==": "==", "!=": "!="}


def day_thresholds(conditions: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """Per day counter, the values b at which some condition's answer flips as the counter moves between
    b - 1 and b (`days_since_contact > 90` gives 91). A counter used any other way (arithmetic, a
    parameter) conservatively takes every integer literal N of that condition, as both N and N + 1."""
    found: dict[str, set[int]] = {name: set() for name in DAY_COUNTERS}
    for condition, name, compared, exact in _counter_uses(conditions):
        found[name].update(int(n) + shift for op, n in compared for shift in _FLIPS[op])
        if not exact:
            literals = {int(m) for m in _INT_LITERAL.findall(condition) if int(m) <= 36_500}
            found[name].update(n + shift for n in literals for shift in (0, 1))
    return {name: tuple(sorted(values)) for name, values in found.items()}


def compared_exactly(conditions: Sequence[str]) -> set[str]:
    """The day counters every condition uses only in comparisons with integer literals (or null)."""
    return set(DAY_COUNTERS) - {name for _, name, _, exact in _counter_uses(conditions) if not exact}


def _counter_uses(conditions: Sequence[str]) -> Iterator[tuple[str, str, list[tuple[str, str]], bool]]:
    for condition in conditions:
        for name in DAY_COUNTERS:
            uses = len(re.findall(rf"\b{name}\b", condition))
            if not uses:
                continue
            compared = re.findall(rf"\b{name}\s*(<=|>=|==|!=|<|>)\s*(\d+)\b", condition)
            compared += [(_MIRROR[op], n) for n, op in
                         re.findall(rf"\b(\d+)\s*(<=|>=|==|!=|<|>)\s*{name}\b", condition)]
            nulls = len(re.findall(rf"\b{name}\s*(?:==|!=)\s*null\b", condition))
            yield condition, name, compared, len(compared) + nulls == uses


def _first_match_expression(rules: Sequence[StatusRule]) -> str:
    # One CEL program for the whole first-match chain: one call into CEL per evaluation instead of one
    # per rule (the measured hot spot of replay).
    expression = "-1"
    for index in range(len(rules) - 1, -1, -1):
        expression = f"(({rules[index].when}) ? {index} : {expression})"
    return expression

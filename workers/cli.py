"""The `clientshift` command line."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections import Counter
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Callable, Iterator, Optional

import typer
from rich.console import Console

from workers.rules.policy import Policy, RulesError, load_policy
from workers.timeutil import parse_rfc3339

if TYPE_CHECKING:  # the Kafka side is imported by the commands that use it, so others start faster
    from workers.kafka.settings import Settings

app = typer.Typer(help="Keep a CRM's customer-vs-client picture true from a stream of CRM events.",
                  no_args_is_help=True, pretty_exceptions_show_locals=False)
rules_app = typer.Typer(help="Work with rules files.", no_args_is_help=True)
crm_app = typer.Typer(help="Look at the local sandbox CRM.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks (they print figures; they are not tests).", no_args_is_help=True)
app.add_typer(rules_app, name="rules")
app.add_typer(crm_app, name="crm")
app.add_typer(bench_app, name="bench")


def _table_width() -> int | None:
    # Without a terminal (output piped to a file, a CI log) Rich cuts tables to 80 columns, so rule names,
    # tags and benchmark rows came out as `formal_relat…`; COLUMNS, when set, still decides.
    return None if sys.stdout.isatty() or "COLUMNS" in os.environ else 200


out = Console(soft_wrap=True, width=_table_width())
err = Console(stderr=True, soft_wrap=True)


# The Kafka commands' shared option.
Broker = Annotated[Optional[str], typer.Option(help="bootstrap servers (default: CLIENTSHIFT_BROKER)")]


def _reaching_kafka(command: Callable[..., None]) -> Callable[..., None]:
    """A Kafka command that cannot reach the broker says so in one line and exits 1, rather than with
    kafka-python's traceback."""
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        from kafka.errors import KafkaConnectionError, KafkaTimeoutError

        try:
            command(*args, **kwargs)
        except (KafkaTimeoutError, KafkaConnectionError) as exc:
            err.print(f"cannot reach Kafka ({exc}). Check the broker address (--broker or CLIENTSHIFT_BROKER) and, "
                      "for a secured cluster, CLIENTSHIFT_BROKER_SECURITY_PROTOCOL and the SASL and TLS settings.",
                      highlight=False, markup=False)
            raise typer.Exit(1) from None

    return wrapper


class OutputFormat(str, Enum):
    table = "table"
    json = "json"


def _policy(rules: Optional[Path]) -> Policy:
    try:
        return load_policy(rules)
    except RulesError as exc:
        for problem in exc.problems:
            err.print(f"[red]error[/red] {problem}", markup=True, highlight=False)
        raise typer.Exit(2) from None


def connector_settings(sandbox_db: Optional[Path] = None) -> dict:
    return {"env": os.environ, "sandbox_db": str(sandbox_db) if sandbox_db else None}


@app.command()
def replay(
    files: Annotated[list[Path], typer.Argument(help="JSON-lines event files ('-' for stdin)")],
    rules: Annotated[Optional[Path], typer.Option(help="rules YAML (default: the packaged policy)")] = None,
    as_of: Annotated[Optional[str], typer.Option("--as-of", help="fire deadlines up to this RFC 3339 time "
                                                 "(default: the last event time)")] = None,
    format: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.table,
    connector: Annotated[str, typer.Option(help="where actions go: sandbox, recording, hubspot, ...")] = "sandbox",
    sandbox_db: Annotated[Optional[Path], typer.Option(help="sandbox CRM file")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="plan actions, write nothing")] = False,
) -> None:
    """Replay recorded events through the rules and write the resulting tags and tasks."""
    from connectors.registry import UnknownConnector, load_connector
    from workers.render import replay_tables
    from workers.replay import read_event_files
    from workers.replay import replay as run_replay

    policy = _policy(rules)
    try:
        cutoff = parse_rfc3339(as_of) if as_of else None
    except ValueError as exc:
        err.print(f"--as-of: {exc}")
        raise typer.Exit(2) from None
    target = None
    if not dry_run:
        try:
            target = load_connector(connector, connector_settings(sandbox_db))
        except UnknownConnector as exc:
            err.print(str(exc))
            raise typer.Exit(2) from None
    try:
        result = run_replay(read_event_files(files), policy, as_of=cutoff, connector=target, dry_run=dry_run)
    except FileNotFoundError as exc:
        err.print(f"cannot read {exc.filename}")
        raise typer.Exit(2) from None
    finally:
        if target is not None:
            target.close()
    for rejected in result.rejected:
        err.print(f"{rejected.where}: {rejected.kind}: {rejected.reason}", highlight=False, markup=False)
    if format is OutputFormat.json:
        sys.stdout.write(result.to_json() + "\n")
    else:
        replay_tables(result, out)
    if result.outcomes:
        counts: dict[str, int] = {}
        for outcome in result.outcomes:
            counts[outcome.outcome.value] = counts.get(outcome.outcome.value, 0) + 1
        err.print(f"{connector}: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())), highlight=False)
    raise typer.Exit(1 if result.rejected else 0)


@rules_app.command("check")
def rules_check(file: Annotated[Path, typer.Argument(help="rules YAML")]) -> None:
    """Check a rules file: YAML syntax, CEL syntax, unknown facts, type mismatches. Exit 1 on any problem."""
    try:
        policy = load_policy(file)
    except RulesError as exc:
        for problem in exc.problems:
            err.print(str(problem), highlight=False, markup=False)
        raise typer.Exit(1) from None
    out.print(f"{file}: ok ({len(policy.status_rules)} status rules, {len(policy.flag_rules)} flags, "
              f"{len(policy.tasks)} tasks)", highlight=False)


@crm_app.command("show")
def crm_show(
    sandbox_db: Annotated[Optional[Path], typer.Option(help="sandbox CRM file")] = None,
    format: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.table,
) -> None:
    """Print what the sandbox CRM holds: accounts, their relationship_status tag, tasks."""
    from connectors.sandbox import DEFAULT_DB, SandboxConnector
    from workers.render import crm_tables

    path = sandbox_db or Path(os.environ.get("CLIENTSHIFT_SANDBOX_DB", DEFAULT_DB))
    if not path.exists():
        err.print(f"no sandbox CRM at {path}")
        raise typer.Exit(1)
    sandbox = SandboxConnector(path)
    try:
        snapshot = sandbox.snapshot()
    finally:
        sandbox.close()
    if format is OutputFormat.json:
        sys.stdout.write(json.dumps(snapshot, sort_keys=True) + "\n")
    else:
        crm_tables(snapshot, out)


@bench_app.command("replay")
def bench_replay(
    events: Annotated[int, typer.Option(help="events to generate")] = 200_000,
    accounts: Annotated[int, typer.Option(help="accounts to spread them over")] = 20_000,
    seed: Annotated[int, typer.Option()] = 7,
) -> None:
    """Replay events/s against a plain-Python loop applying the same default policy, same run."""
    from workers.bench_replay import run

    run(events, accounts, seed, out)


@bench_app.command("cel")
def bench_cel(states: Annotated[int, typer.Option()] = 50_000) -> None:
    """cel-expr-python against common-expression-language on the default policy's conditions."""
    from workers.bench_replay import run_cel

    run_cel(states, out)



ConfigFile = Annotated[Optional[Path], typer.Option(
    "--config", envvar="CLIENTSHIFT_CONFIG",
    help="YAML file of settings: the CLIENTSHIFT_* names in lower case without the prefix "
         "(`group_id: crm-prod`, `topic: {events: crm.events}`); the environment overrides it")]


def _apply_config(config: Optional[Path]) -> None:
    if config is None:
        return
    from workers.config_file import ConfigError, apply_config, read_config

    try:
        # Into the environment, so connectors and the normalizer read the file's settings too.
        apply_config(read_config(config), os.environ)
    except ConfigError as exc:
        err.print(str(exc), highlight=False, markup=False)
        raise typer.Exit(2) from None


@app.command()
@_reaching_kafka
def run(config: ConfigFile = None) -> None:
    """The stream worker. Configured by CLIENTSHIFT_* environment variables (see README) or a config file;
    with no CLIENTSHIFT_BROKER it starts an embedded local broker and uses the sandbox CRM."""
    from connectors.registry import UnknownConnector
    from workers.kafka.runner import run_worker
    from workers.kafka.settings import Settings, SettingsError
    from workers.kafka.topics import TopicLayoutError

    _apply_config(config)
    try:
        run_worker(Settings.from_env())
    except (UnknownConnector, TopicLayoutError, SettingsError) as exc:
        err.print(str(exc))
        raise typer.Exit(2) from None
    except RulesError as exc:
        for problem in exc.problems:
            err.print(str(problem), highlight=False, markup=False)
        raise typer.Exit(2) from None


@bench_app.command("worker")
def bench_worker(
    events: Annotated[int, typer.Option(help="events to push through")] = 100_000,
    accounts: Annotated[int, typer.Option()] = 10_000,
    event_bytes: Annotated[Optional[int], typer.Option(
        help="pad each event to about this many bytes of JSON with text no rule reads (the issue's "
             "baselines were measured at ~1,000); default: the generator's own ~190")] = None,
    rounds: Annotated[int, typer.Option(min=1, help="pairs of minimal Faust agent and full worker, measured "
                                                    "one after the other; the median pair is reported")] = 3,
) -> None:
    """The worker on the local broker against a raw aiokafka loop and a minimal Faust agent, same run."""
    from workers.kafka.bench import run as run_bench

    run_bench(events, accounts, out, event_bytes, rounds=rounds)


@bench_app.command("recovery")
def bench_recovery(
    events: Annotated[int, typer.Option(help="events whose state the restarted worker reads back")] = 100_000,
    accounts: Annotated[int, typer.Option()] = 10_000,
    rounds: Annotated[int, typer.Option(min=1, help="rounds of start-up, restart and restart on Faust's own "
                                                    "recovery loop; medians are reported")] = 3,
) -> None:
    """How long a restarted worker takes to read its tables back, against its start-up alone, same run."""
    from workers.kafka.bench_recovery import run as run_bench

    run_bench(events, accounts, out, rounds=rounds)


def _example(name: str) -> Path:
    local = Path("examples") / name
    return local if local.exists() else Path(__file__).resolve().parents[1] / "examples" / name


@app.command()
def demo(events: Annotated[Optional[Path], typer.Argument(help="JSON-lines events (default: "
                                                                "examples/events.jsonl)")] = None) -> None:
    """Start a local broker and a worker, feed the example events, print the sandbox CRM, stop."""
    from workers.kafka.demo import run_demo

    raise typer.Exit(run_demo(events or _example("events.jsonl"), out))


def _kafka_settings(broker: Optional[str], config: Optional[Path] = None) -> Settings:
    from dataclasses import replace

    from workers.kafka.settings import Settings, SettingsError

    _apply_config(config)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        err.print(str(exc), highlight=False, markup=False)
        raise typer.Exit(2) from None
    if broker:
        settings = replace(settings, broker=broker)
    if not settings.broker:
        err.print("no broker: pass --broker HOST:PORT or set CLIENTSHIFT_BROKER")
        raise typer.Exit(2)
    return settings


@app.command()
@_reaching_kafka
def produce(
    files: Annotated[list[Path], typer.Argument(help="JSON-lines event files")],
    broker: Broker = None,
    topic: Annotated[Optional[str], typer.Option(help="default: the events topic")] = None,
    config: ConfigFile = None,
) -> None:
    """Publish JSON-lines events to the input topic, keyed by account."""
    from rich.progress import Progress

    from workers.kafka.streams import produce as produce_lines
    from workers.replay import read_event_files

    settings = _kafka_settings(broker, config)
    lines = list(read_event_files(files))
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task("producing", total=len(lines))
        sent = produce_lines(settings, lines, topic, on_sent=lambda n: progress.update(task, completed=n))
    err.print(f"produced {sent} events to {topic or settings.topics.events}")


@app.command()
@_reaching_kafka
def record(
    topic: Annotated[str, typer.Option(help="topic to capture")],
    out_file: Annotated[Path, typer.Option("--out", help="JSON-lines file to write")],
    broker: Broker = None,
    config: ConfigFile = None,
) -> None:
    """Capture a topic, from the beginning to its current end, to JSON lines for replay in tests."""
    from rich.progress import Progress

    from workers.kafka.streams import record as record_topic

    settings = _kafka_settings(broker, config)
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task(f"recording {topic}", total=None)
        count = record_topic(settings, topic, out_file, on_record=lambda n: progress.update(task, completed=n))
    err.print(f"recorded {count} messages from {topic} to {out_file}")


@app.command()
@_reaching_kafka
def lag(
    broker: Broker = None,
    group: Annotated[Optional[str], typer.Option(help="consumer group (default: CLIENTSHIFT_GROUP_ID)")] = None,
    output: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.table,
    config: ConfigFile = None,
) -> None:
    """The worker group's committed offset, end offset and lag on every partition it reads."""
    from rich.table import Table

    from workers.kafka.topics import partition_lag

    settings = _kafka_settings(broker, config)
    group = group or settings.group_id
    topics = settings.topics.consumed()
    rows = partition_lag(settings, group, topics)
    present = {r.topic for r in rows}
    missing = [topic for topic in topics if topic not in present]
    if missing:
        err.print(f"not on the broker: {', '.join(missing)}", highlight=False)
    if len(missing) == len(topics):
        raise typer.Exit(1)  # wrong broker or topic names, most likely: nothing to show
    if output is OutputFormat.json:
        out.print_json(data=[{"topic": r.topic, "partition": r.partition, "committed": r.committed, "end": r.end,
                              "lag": r.lag} for r in rows])
        return
    table = Table(title=f"consumer group {group}")
    for column in ("topic", "partition", "committed", "end", "lag"):
        table.add_column(column, justify="left" if column == "topic" else "right")
    for r in rows:
        table.add_row(r.topic, str(r.partition), "-" if r.committed is None else str(r.committed), str(r.end),
                      str(r.lag))
    out.print(table)
    out.print(f"total lag: {sum(r.lag for r in rows)}")


dlq_app = typer.Typer(help="Look at the dead-letter topic, and send its letters again once fixed.",
                      no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")


class LetterKind(str, Enum):
    event = "event"
    hubspot_webhook = "hubspot_webhook"
    action = "action"
    tick = "tick"


KindFilter = Annotated[Optional[LetterKind], typer.Option("--kind", help="only letters of this kind")]
ReasonFilter = Annotated[Optional[str], typer.Option("--reason", help="only letters whose reason contains this "
                                                                      "(case-insensitive)")]


def _letters(count: int) -> str:
    return f"{count} letter" + ("" if count == 1 else "s")


@dlq_app.command("show")
@_reaching_kafka
def dlq_show(broker: Broker = None, kind: KindFilter = None, reason: ReasonFilter = None,
             output: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.table,
             config: ConfigFile = None) -> None:
    """Every letter on the dead-letter topic: where it came from and why (`--format json`: with the
    original bytes, base64)."""
    from rich.table import Table

    from workers.kafka.dlq import read_dead_letters, selected

    settings = _kafka_settings(broker, config)
    letters = list(selected(read_dead_letters(settings), kind and kind.value, reason))
    if output is OutputFormat.json:
        out.print_json(data=[letter.to_json_dict() for letter in letters])
        return
    table = Table(title=f"dead letters on {settings.topics.dlq}")
    for column in ("letter", "dead-lettered at", "kind", "from", "reason"):
        table.add_column(column)
    for d in letters:
        cut = "" if d.original_bytes is None else f" (the letter holds {len(d.original)} of {d.original_bytes} bytes)"
        table.add_row(d.where, d.dead_lettered_at, d.kind, d.origin(), d.reason + cut)
    out.print(table)
    counts = Counter(d.kind for d in letters)
    out.print(_letters(len(letters)) + (": " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
                                           if counts else ""))


@dlq_app.command("redrive")
@_reaching_kafka
def dlq_redrive(broker: Broker = None, kind: KindFilter = None, reason: ReasonFilter = None,
                dry_run: Annotated[bool, typer.Option("--dry-run", help="say what would be sent; send nothing")] = False,
                config: ConfigFile = None) -> None:
    """Send letters back where they came from, once their cause is fixed (a new rules file, schema or
    CRM setting). Safe to repeat: applied events and written actions are recognised and skipped."""
    from rich.progress import Progress

    from workers.kafka.dlq import read_dead_letters, redrive, selected

    settings = _kafka_settings(broker, config)
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task("reading letters", total=None)

        def counted(letters: Iterator[Any]) -> Iterator[Any]:
            for n, letter in enumerate(letters, 1):
                progress.update(task, completed=n)
                yield letter

        report = redrive(settings, counted(selected(read_dead_letters(settings), kind and kind.value, reason)),
                         dry_run)
    for letter, why_not in report.skipped:
        err.print(f"{settings.topics.dlq}:{letter.where}: {letter.kind}: not sent: {why_not}", highlight=False,
                  markup=False)
    verb = "would send" if dry_run else "sent"
    total = sum(report.sent.values())
    out.print(f"{verb} {_letters(total)}" + (": " + ", ".join(f"{n} to {t}" for t, n in sorted(report.sent.items()))
                                          if total else ""), highlight=False)


ingress_app = typer.Typer(help="Webhook endpoints.", no_args_is_help=True)
backfill_app = typer.Typer(help="Seed state from what a CRM already holds.", no_args_is_help=True)
app.add_typer(ingress_app, name="ingress")
app.add_typer(backfill_app, name="backfill")


@ingress_app.command("hubspot")
def ingress_hubspot(
    port: Annotated[int, typer.Option(envvar="CLIENTSHIFT_INGRESS_PORT")] = 8080,
    broker: Broker = None,
    config: ConfigFile = None,
) -> None:
    """Receive HubSpot webhooks (POST /webhooks/hubspot), verify signature v3, publish to the raw topic."""
    from connectors.hubspot.settings import SettingsError
    from workers.kafka.ingress import run_ingress

    try:
        run_ingress(_kafka_settings(broker, config), port)
    except SettingsError as exc:
        err.print(str(exc))
        raise typer.Exit(2) from None


@backfill_app.command("hubspot")
def backfill_hubspot(
    out_file: Annotated[Optional[Path], typer.Option("--out", help="write events here instead of producing")] = None,
    checkpoint: Annotated[Optional[Path], typer.Option(help="resume file (last hs_object_id read)")] = None,
    broker: Broker = None,
    portal: Annotated[str, typer.Option(help="portal id, for the events' source")] = "unknown",
    config: ConfigFile = None,
) -> None:
    """Read every HubSpot company through the search API and emit canonical events (resumable)."""
    from rich.progress import Progress

    from connectors.hubspot.backfill import backfill_companies
    from connectors.hubspot.settings import SettingsError

    _apply_config(config)  # HubSpot settings too, read below
    if out_file is None:
        from kafka import KafkaProducer

        settings = _kafka_settings(broker)
        producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all",
                                 **settings.kafka_python_security())
        emit = lambda event: producer.send(settings.topics.events, key=event["subject"].encode(),  # noqa: E731
                                           value=json.dumps(event).encode())
        close = producer.close
    else:
        handle = out_file.open("a", encoding="utf-8")
        emit = lambda event: handle.write(json.dumps(event, separators=(",", ":")) + "\n")  # noqa: E731
        close = handle.close
    try:
        with Progress(console=err, transient=True) as progress:
            task = progress.add_task("companies", total=None)
            stats = backfill_companies({"env": os.environ}, emit, checkpoint,
                                       lambda n: progress.update(task, completed=n), portal=portal)
    except SettingsError as exc:
        err.print(str(exc))
        raise typer.Exit(2) from None
    finally:
        close()
    err.print(f"backfill: {stats.records} companies, {stats.events} events, {stats.requests} requests")

if __name__ == "__main__":
    app()

"""Backfill past the search API's 10,000-result wall, resumable from a checkpoint."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hubspot_server import HubSpotServer, hubspot_env, hubspot_server  # noqa: E402,F401

from connectors.hubspot.backfill import backfill_companies  # noqa: E402
from workers.events import parse_event  # noqa: E402

N = 10_050


class Stop(Exception):
    pass


def test_backfill_reads_every_company_once_past_10000(hubspot_server: HubSpotServer, hubspot_env: dict[str, str],
                                                      tmp_path: Path) -> None:
    hubspot_server.state.add_many_companies(N)
    hubspot_server.state.objects["companies"]["5"]["properties"]["clientshift_csm_owner_id"] = "101"
    hubspot_server.state.properties["companies"]["clientshift_csm_owner_id"] = \
        hubspot_server.state._property("clientshift_csm_owner_id", "companiesinformation", "string")
    events: list[dict[str, Any]] = []
    seen: list[int] = []
    checkpoint = tmp_path / "backfill.json"
    stats = backfill_companies({"env": hubspot_env}, events.append, checkpoint, seen.append, portal="62515")
    created = Counter(e["subject"] for e in events if e["type"] == "crm.account.created")
    assert len(created) == N and set(created.values()) == {1}
    assert stats.records == N and seen[-1] == N
    assert [e["type"] for e in events if e["subject"] == "5"] == ["crm.account.created", "crm.csm.assigned"]
    parse_event(events[0]) and parse_event(next(e for e in events if e["type"] == "crm.csm.assigned"))
    assert hubspot_server.count("POST", r"/companies/search$") == stats.requests == 51
    assert checkpoint.exists()


def test_backfill_resumes_from_its_checkpoint(hubspot_server: HubSpotServer, hubspot_env: dict[str, str],
                                              tmp_path: Path) -> None:
    hubspot_server.state.add_many_companies(1_000)
    checkpoint = tmp_path / "backfill.json"
    first: list[str] = []

    def emit_then_crash(event: dict[str, Any]) -> None:
        first.append(event["subject"])
        if len(first) == 450:
            raise Stop()

    with pytest.raises(Stop):
        backfill_companies({"env": hubspot_env}, emit_then_crash, checkpoint, None)
    rest: list[str] = []
    stats = backfill_companies({"env": hubspot_env}, lambda e: rest.append(e["subject"]), checkpoint, None)
    assert stats.resumed_from == 400  # the last full page checkpointed before the crash
    assert set(first) | set(rest) == {str(n) for n in range(1, 1_001)}
    assert rest[0] == "401" and len(rest) == 600  # nothing before the checkpoint read again

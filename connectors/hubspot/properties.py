"""Create the properties Clientshift writes, once, idempotently (CRM properties API v3).

Reads what exists (one GET for groups, one for properties per object type) and creates only what is
missing; a 409 from a concurrent creator counts as success.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from hubspot.crm.properties import OptionInput, PropertyCreate, PropertyGroupCreate

from connectors.hubspot.client import HubSpotClient, HubSpotError
from connectors.hubspot.settings import HubSpotSettings


@dataclass(frozen=True)
class PropertySpec:
    object_type: str
    create: PropertyCreate

    @property
    def name(self) -> str:
        return self.create.name


def wanted_properties(settings: HubSpotSettings, tag_names: tuple[str, ...] = ("relationship_status",)
                      ) -> list[PropertySpec]:
    group = settings.property_group
    specs: list[PropertySpec] = []
    for object_type in dict.fromkeys((settings.company_object, settings.person_object)):
        for tag in tag_names:
            specs.append(PropertySpec(object_type, PropertyCreate(
                name=tag, label="Relationship status", group_name=group, type="enumeration",
                field_type="select",
                options=[OptionInput(label=v.capitalize(), value=v, display_order=i, hidden=False)
                         for i, v in enumerate(settings.status_values)])))
        specs.append(PropertySpec(object_type, PropertyCreate(
            name=settings.reason_property, label="Relationship reason", group_name=group, type="string",
            field_type="textarea")))
        specs.append(PropertySpec(object_type, PropertyCreate(
            name=settings.updated_at_property, label="Relationship updated at", group_name=group,
            type="datetime", field_type="date")))
    specs.append(PropertySpec("tasks", PropertyCreate(
        name=settings.task_key_property, label="Clientshift action key", group_name=None, type="string",
        field_type="text", description="Idempotency key of the Clientshift action that created this task")))
    return specs


def ensure_properties(client: HubSpotClient, settings: HubSpotSettings,
                      tag_names: tuple[str, ...] = ("relationship_status",)) -> list[str]:
    """Create missing groups and properties; returns what was created as "objectType.name"."""
    created: list[str] = []
    specs = wanted_properties(settings, tag_names)
    api = client.api.crm.properties
    for object_type in dict.fromkeys(s.object_type for s in specs):
        mine = [s for s in specs if s.object_type == object_type]
        group = settings.property_group
        groups = client.call("properties.groups", api.groups_api.get_all_with_http_info, object_type)
        if group not in {g.name for g in groups.data.results}:
            _tolerate_conflict(lambda: client.call(
                "properties.groups.create", api.groups_api.create_with_http_info, object_type,
                PropertyGroupCreate(name=group, label="Clientshift", display_order=-1)))
            created.append(f"{object_type}.group:{group}")
        existing = client.call("properties.list", api.core_api.get_all_with_http_info, object_type)
        names = {p.name for p in existing.data.results}
        for spec in mine:
            if spec.name in names:
                continue
            spec.create.group_name = group
            _tolerate_conflict(lambda: client.call("properties.create", api.core_api.create_with_http_info,
                                                   object_type, spec.create))
            created.append(f"{object_type}.{spec.name}")
    return created


def _tolerate_conflict(create: Callable[[], object]) -> None:
    try:
        create()
    except HubSpotError as exc:
        if exc.status != 409:
            raise

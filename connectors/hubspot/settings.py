"""HubSpot connector settings, read from an environment mapping (os.environ-like).

The access token and the webhook client secret are wrapped in `Secret` so no repr, str or log line of
the settings can leak them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from workers.secrets import SecretFileError, read_secret

DEFAULT_BASE_URL = "https://api.hubapi.com"


class Secret:
    """A string that only `reveal()` gives back; everything else prints a mask."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable, never its secret value."""


def written_properties(tag_name: str) -> tuple[str, ...]:
    """Every company or contact property the connector writes: the rules' tag, its reason and its time."""
    return (tag_name, HubSpotSettings.reason_property, HubSpotSettings.updated_at_property)


@dataclass(frozen=True)
class HubSpotSettings:
    access_token: Secret
    base_url: str = DEFAULT_BASE_URL
    app_id: str | None = None
    client_secret: Secret = field(default_factory=lambda: Secret(""))
    # Account -> record mapping
    company_object: str = "companies"
    person_object: str = "contacts"
    id_property: str | None = None  # None: the account id *is* the HubSpot record id
    # What we write
    property_group: str = "clientshift"
    reason_property: str = "relationship_reason"
    updated_at_property: str = "relationship_updated_at"
    status_values: tuple[str, ...] = ("prospect", "customer", "client")
    task_key_property: str = "clientshift_action_key"
    task_company_association_type: int = 192  # HUBSPOT_DEFINED task -> company
    task_contact_association_type: int = 204  # HUBSPOT_DEFINED task -> contact
    ensure_properties: bool = True
    # Transport
    rate_per_10s: float = 100.0
    search_rate_per_s: float = 4.0  # the search API has its own, lower limit (5/s per account)
    timeout: float = 10.0
    # Webhooks
    public_base_url: str | None = None
    csm_property: str = "clientshift_csm_owner_id"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> HubSpotSettings:
        token = _secret(env, "HUBSPOT_ACCESS_TOKEN")
        if not token:
            raise SettingsError("HUBSPOT_ACCESS_TOKEN or HUBSPOT_ACCESS_TOKEN_FILE must be set")
        return cls(
            access_token=token,
            base_url=(env.get("HUBSPOT_BASE_URL") or DEFAULT_BASE_URL).rstrip("/"),
            app_id=env.get("HUBSPOT_APP_ID") or None,
            client_secret=_secret(env, "HUBSPOT_CLIENT_SECRET"),
            company_object=env.get("CLIENTSHIFT_HUBSPOT_COMPANY_OBJECT") or "companies",
            person_object=env.get("CLIENTSHIFT_HUBSPOT_PERSON_OBJECT") or "contacts",
            id_property=env.get("CLIENTSHIFT_HUBSPOT_ID_PROPERTY") or None,
            property_group=env.get("CLIENTSHIFT_HUBSPOT_PROPERTY_GROUP") or "clientshift",
            task_key_property=env.get("CLIENTSHIFT_HUBSPOT_TASK_KEY_PROPERTY") or "clientshift_action_key",
            ensure_properties=_flag(env, "CLIENTSHIFT_HUBSPOT_ENSURE_PROPERTIES", True),
            rate_per_10s=_number(env, "CLIENTSHIFT_HUBSPOT_RATE_PER_10S", 100.0),
            search_rate_per_s=_number(env, "CLIENTSHIFT_HUBSPOT_SEARCH_RATE_PER_S", 4.0),
            timeout=_number(env, "CLIENTSHIFT_HUBSPOT_TIMEOUT", 10.0),
            public_base_url=env.get("CLIENTSHIFT_HUBSPOT_PUBLIC_URL") or None,
            csm_property=env.get("CLIENTSHIFT_HUBSPOT_CSM_PROPERTY") or "clientshift_csm_owner_id",
        )

    def object_for(self, account_kind: str | None) -> str:
        return self.person_object if account_kind == "person" else self.company_object


def _secret(env: Mapping[str, str], name: str) -> Secret:
    try:
        return Secret(read_secret(env, name) or "")
    except SecretFileError as exc:
        raise SettingsError(str(exc)) from None


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise SettingsError(f"{name} must be positive, got {raw!r}")
    return value


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    return raw.strip().lower() in ("1", "true", "yes", "on")


def settings_from(source: Mapping[str, Any] | HubSpotSettings) -> HubSpotSettings:
    """Accept either ready settings or the factory mapping `{"env": {...}}`."""
    if isinstance(source, HubSpotSettings):
        return source
    env = source.get("env")
    if env is None:
        raise SettingsError('settings must carry the environment as settings["env"]')
    return HubSpotSettings.from_env(env)

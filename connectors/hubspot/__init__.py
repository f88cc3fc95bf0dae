"""HubSpot connector for Clientshift: write-back (tags, tasks), webhook ingress, normalizer, backfill."""

from connectors.hubspot.connector import HubSpotConnector
from connectors.hubspot.settings import HubSpotSettings

__all__ = ["HubSpotConnector", "HubSpotSettings"]

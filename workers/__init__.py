"""Clientshift workers: canonical events -> account state -> rules -> actions."""

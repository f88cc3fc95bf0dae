"""Declarative rules: a YAML policy with CEL conditions, checked and compiled at load."""

from workers.rules.policy import Policy, RulesError, load_policy, default_policy_path

__all__ = ["Policy", "RulesError", "load_policy", "default_policy_path"]

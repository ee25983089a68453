"""Routing rules: which model bundle analyses which incoming series.

A JSON or YAML file::

    rules:
      - name: hippocampus
        modality: MR                 # one value or a list; case-insensitive; optional
        body_part: [BRAIN, HEAD]     # BodyPartExamined; optional
        series_description: "(?i)t1|mprage"   # regular expression (search); optional
        bundle: bundles/hippocampus  # relative to the rules file
      - name: chest
        modality: [CR, DX]
        bundle: bundles/pneumonia
    default: null                    # bundle for series no rule matches (null: store only)

The first rule whose every given field matches wins. Errors name the file and the rule.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meddx.errors import ConfigError

__all__ = ["RoutingRule", "RoutingRules", "load_rules"]


@dataclass(frozen=True)
class RoutingRule:
    name: str
    bundle: Path
    modalities: tuple[str, ...] = ()
    body_parts: tuple[str, ...] = ()
    description: re.Pattern[str] | None = None

    def matches(self, modality: str, body_part: str, description: str) -> bool:
        if self.modalities and modality.upper() not in self.modalities:
            return False
        if self.body_parts and body_part.upper() not in self.body_parts:
            return False
        return not (self.description is not None and not self.description.search(description))


@dataclass(frozen=True)
class RoutingRules:
    rules: tuple[RoutingRule, ...] = ()
    default: Path | None = None

    def route(self, modality: str = "", body_part: str = "",
              description: str = "") -> tuple[str, Path] | None:
        """``(rule name, bundle)`` for a series, or None when it is only to be stored."""
        for rule in self.rules:
            if rule.matches(modality or "", body_part or "", description or ""):
                return rule.name, rule.bundle
        return ("default", self.default) if self.default is not None else None


def _upper_tuple(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value.upper(),)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(v.upper() for v in value)
    raise ConfigError(f"{where}: expected a string or a list of strings, got {value!r}")


def rules_from_dict(data: Any, base: Path, source: str) -> RoutingRules:
    """Validate a parsed rules document (paths relative to ``base``)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping with 'rules' (and 'default')")
    unknown = set(data) - {"rules", "default"}
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {sorted(unknown)}; use 'rules', 'default'")
    items = data.get("rules") or []
    if not isinstance(items, list):
        raise ConfigError(f"{source}: 'rules' must be a list")
    rules = []
    for index, item in enumerate(items):
        where = f"{source}: rule {index + 1}"
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: expected a mapping")
        extra = set(item) - {"name", "modality", "body_part", "series_description", "bundle"}
        if extra:
            raise ConfigError(f"{where}: unknown key(s) {sorted(extra)}")
        if not item.get("bundle"):
            raise ConfigError(f"{where}: 'bundle' is required")
        pattern = item.get("series_description")
        try:
            compiled = re.compile(pattern) if pattern else None
        except re.error as error:
            raise ConfigError(f"{where}: series_description {pattern!r} is not a valid "
                              f"regular expression ({error})") from error
        bundle = Path(os.path.expanduser(str(item["bundle"])))
        rules.append(RoutingRule(
            name=str(item.get("name") or f"rule {index + 1}"),
            bundle=bundle if bundle.is_absolute() else (base / bundle),
            modalities=_upper_tuple(item.get("modality"), f"{where}: modality"),
            body_parts=_upper_tuple(item.get("body_part"), f"{where}: body_part"),
            description=compiled))
    default = data.get("default")
    default_path = None
    if default:
        default_path = Path(os.path.expanduser(str(default)))
        default_path = default_path if default_path.is_absolute() else base / default_path
    return RoutingRules(rules=tuple(rules), default=default_path)


def load_rules(path: str | os.PathLike[str]) -> RoutingRules:
    """Read and validate a JSON (``.json``) or YAML (``.yaml``/``.yml``) rules file.

    Raises:
        ConfigError: unreadable file, bad syntax, or an invalid rule (named).
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the routing rules ({error.strerror})") from error
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML ({error})") from error
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path}: not valid JSON ({error})") from error
    return rules_from_dict(data, path.parent, str(path))

"""Category assignment from a user-editable rule file (path globs, repository globs, content regexes)."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from firmlm.config import CATEGORIES
from firmlm.errors import ConfigError

DEFAULT_RULES = Path(__file__).with_name("category_rules.yaml")
FALLBACK = "general"


class RuleSpec(BaseModel):
    """One rule as written in the YAML file."""

    model_config = ConfigDict(extra="forbid")

    category: str
    paths: list[str] = Field(default_factory=list)
    repos: list[str] = Field(default_factory=list)
    content: str | None = None
    min_matches: int = Field(1, ge=1)

    @field_validator("category")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in CATEGORIES:
            raise ValueError(f"unknown category {value!r}; allowed: {', '.join(CATEGORIES)}")
        return value

    @field_validator("content")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"content regex does not compile: {exc}") from None
        return value


@dataclass
class Rule:
    spec: RuleSpec
    index: int
    pattern: re.Pattern[str] | None = None

    @property
    def label(self) -> str:
        return f"rule{self.index}:{self.spec.category}"

    def matches(self, repo: str, path: str, text: str) -> bool:
        s = self.spec
        if not (s.paths or s.repos or self.pattern):
            return False
        if s.repos and not any(fnmatch(repo, g) for g in s.repos):
            return False
        if s.paths:
            full = f"{repo}/{path}"
            if not any(fnmatch(full, g) for g in s.paths):
                return False
        if self.pattern is not None:
            needed = s.min_matches
            for n, _ in enumerate(self.pattern.finditer(text), start=1):
                if n >= needed:
                    return True
            return False
        return True


@dataclass
class Categorizer:
    """Applies rules in order; counts how many documents each rule took."""

    rules: list[Rule]
    source: str
    taken: Counter[str] = field(default_factory=Counter)

    def classify(self, repo: str, path: str, text: str) -> tuple[str, str]:
        """(category, label of the rule that decided it)."""
        for rule in self.rules:
            if rule.matches(repo, path, text):
                return rule.spec.category, rule.label
        return FALLBACK, f"default:{FALLBACK}"

    def __call__(self, repo: str, path: str, text: str) -> str:
        category, label = self.classify(repo, path, text)
        self.taken[label] += 1
        return category


def load_rules(path: Path | None = None) -> Categorizer:
    """Read and validate a rule file; errors name the file and the rule."""
    path = Path(path) if path else DEFAULT_RULES
    if not path.is_file():
        raise ConfigError(f"{path}: category rule file not found (corpus.category_rules)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise ConfigError(f"{path}: expected a mapping with a `rules:` list")
    rules = []
    for i, raw in enumerate(data["rules"]):
        try:
            spec = RuleSpec.model_validate(raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(str(p) for p in err["loc"])
            raise ConfigError(f"{path}: rules[{i}].{key}: {err['msg']}") from None
        rules.append(Rule(spec, i, re.compile(spec.content) if spec.content else None))
    return Categorizer(rules, str(path))

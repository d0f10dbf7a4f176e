"""Secrets and PII removal (InCoder): credentials found by detect-secrets, private-key blocks, e-mail and IP
addresses are replaced by typed placeholders, and counted.

detect-secrets runs its credential plugins (AWS, GitHub/GitLab, Slack, Stripe, JWT, keyword assignments such
as ``password = "..."``, private keys, basic-auth URLs, ...) on each line that a cheap trigger pattern
selects; its two high-entropy plugins are left out because every hex constant and crypto test vector of
firmware code would match them. A flagged value is widened to the whole token around it (a plugin may report
only a prefix such as ``ghp``), then replaced by ``<SECRET_TYPE>``.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache

ENTROPY_PLUGINS = {"Base64HighEntropyString", "HexHighEntropyString"}
# every line a credential plugin could fire on contains one of these (case-insensitive)
TRIGGER = re.compile(
    r"key|secret|token|passw|pwd|pass\b|auth|cred|bearer|AKIA|ASIA|BEGIN|xox[abposr]|gh[pousr]_|glpat|sk_live|"
    r"rk_live|sk-|eyJ|npm_|SG\.|twilio|AC[a-z0-9]{32}|://[^/\s:@]+:[^/\s@]+@|cloudant|ibm|softlayer|sq0|discord|"
    r"telegram|mailchimp|pypi-|artifactory|AKC|AccountKey",
    re.IGNORECASE,
)
PRIVATE_KEY_BLOCK = re.compile(
    r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY( BLOCK)?-----.*?(-----END \1PRIVATE KEY( BLOCK)?-----|\Z)", re.DOTALL
)
EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w-])")
IPV4 = re.compile(r"(?<![\w.])((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\w.])")
IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}(?![\w:.])")
# not personal, and common in network stacks' code and tests
KEEP_IPS = {"0.0.0.0", "127.0.0.1", "255.255.255.255", "255.255.255.0", "255.255.0.0", "255.0.0.0"}
# C macros holding credentials, which detect-secrets' keyword patterns do not cover
DEFINE_SECRET = re.compile(r'#\s*define\s+(\w*(?:PASSW|PASSWD|PWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY)\w*)\s+"([^"]{4,})"', re.I)
TOKEN_CHARS = re.compile(r"[A-Za-z0-9_\-+/=.~]")


@lru_cache(maxsize=1)
def _plugin_settings() -> dict:
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    names = sorted({c.__name__ for c in get_mapping_from_secret_type_to_class().values()} - ENTROPY_PLUGINS)
    return {"plugins_used": [{"name": n} for n in names]}


def placeholder(secret_type: str) -> str:
    return "<" + re.sub(r"[^A-Z0-9]+", "_", secret_type.upper()).strip("_") + ">"


def _widen(line: str, start: int, end: int) -> tuple[int, int]:
    while start > 0 and TOKEN_CHARS.match(line[start - 1]):
        start -= 1
    while end < len(line) and TOKEN_CHARS.match(line[end]):
        end += 1
    return start, end


def _scrub_line(line: str, filename: str, plugins: list, counts: Counter) -> str:
    spans: list[tuple[int, int, str]] = []
    found = [f for plugin in plugins for f in plugin.analyze_line(filename=filename, line=line, line_number=0)]
    for m in DEFINE_SECRET.finditer(line):
        spans.append((m.start(2), m.end(2), "Secret Keyword"))
    for f in found:
        value = f.secret_value or ""
        if f.type == "Private Key" or not value:
            continue  # key blocks are removed whole before the line scan
        pos = line.find(value)
        while pos >= 0:
            spans.append((*_widen(line, pos, pos + len(value)), f.type))
            pos = line.find(value, pos + len(value))
    if not spans:
        return line
    out, cursor = [], 0
    for start, end, kind in sorted(spans):
        if start < cursor:
            continue
        out += [line[cursor:start], placeholder(kind)]
        counts[kind] += 1
        cursor = end
    return "".join(out) + line[cursor:]


def scrub(text: str, filename: str = "source.c") -> tuple[str, Counter]:
    """The text with credentials, private keys, e-mail and IP addresses replaced; counts per type.
    ``filename`` picks detect-secrets' language-specific keyword patterns (C, assembly, YAML, ...)."""
    from detect_secrets.core.scan import get_plugins
    from detect_secrets.settings import transient_settings

    counts: Counter = Counter()

    def key_block(m: re.Match) -> str:
        counts["Private Key"] += 1
        return "<PRIVATE_KEY>"

    text = PRIVATE_KEY_BLOCK.sub(key_block, text)
    lines = text.split("\n")
    with transient_settings(_plugin_settings()):
        plugins = list(get_plugins())
        for i, line in enumerate(lines):
            if TRIGGER.search(line):
                lines[i] = _scrub_line(line, filename, plugins, counts)
    text = "\n".join(lines)

    def email(m: re.Match) -> str:
        counts["Email"] += 1
        return "<EMAIL>"

    def ip(m: re.Match) -> str:
        if m.group(0) in KEEP_IPS:
            return m.group(0)
        counts["IP Address"] += 1
        return "<IP_ADDRESS>"

    text = EMAIL.sub(email, text)
    text = IPV4.sub(ip, text)
    text = IPV6.sub(ip, text)
    return text, counts

"""Number formatting for the report and the CLI: one rounding rule per kind of figure, '–' when missing.

Perplexities 3 decimals, bits per byte 3, percentages and percentage points 1 decimal (signed where they
are changes), intervals like their estimate, counts with thousands separators, losses 4 significant digits.
"""

from __future__ import annotations

from collections.abc import Sequence

MISSING = "–"


def ppl(value: float | None) -> str:
    return MISSING if value is None else f"{value:.3f}"


def bpb(value: float | None) -> str:
    return MISSING if value is None else f"{value:.3f}"


def share(value: float | None) -> str:
    """A fraction in [0, 1] as a percentage."""
    return MISSING if value is None else f"{100 * value:.1f}%"


def signed(value: float | None, digits: int = 1) -> str:
    """A change (percent or points) with its sign: '+12.3', '−0.4' (a true minus sign)."""
    if value is None:
        return MISSING
    text = f"{value:+.{digits}f}"
    return text.replace("-", "−")


def interval(ci: Sequence[float] | None, digits: int = 1) -> str:
    """A 95% interval as '[+10.5, +14.0]' ('' when missing, so an estimate may stand alone)."""
    if not ci or ci[0] is None or ci[1] is None:
        return ""
    return f"[{signed(ci[0], digits)}, {signed(ci[1], digits)}]"


def change(value: float | None, ci: Sequence[float] | None = None, unit: str = "%") -> str:
    """An estimate and its interval: '+12.3% [+10.5, +14.0]' or '+3.1 pts [+0.8, +5.2]'."""
    if value is None:
        return MISSING
    sep = " " if unit and unit != "%" else ""
    text = f"{signed(value)}{sep}{unit}"
    ci_text = interval(ci)
    return f"{text} {ci_text}" if ci_text else text


def count(value: int | None) -> str:
    return MISSING if value is None else f"{value:,}"


def tokens(value: int | float | None) -> str:
    """A token count for prose: 950, 12.3k, 1.23M, 4.56B."""
    if value is None:
        return MISSING
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= 0.9995 * div:  # 999,999 is '1M', not '1e+03k'
            return f"{value / div:.3g}{suffix}"
    return f"{value:.0f}"


def digits(value: float | None, n: int = 4) -> str:
    """A figure rounded to ``n`` significant digits."""
    return MISSING if value is None else f"{value:.{n}g}"


def minutes(seconds: float | None) -> str:
    """A duration in minutes (seconds below one minute)."""
    if seconds is None:
        return MISSING
    return f"{seconds:.0f} s" if seconds < 60 else f"{seconds / 60:.1f} min"

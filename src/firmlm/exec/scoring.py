"""From a model's answer to a solution file, and from outcomes to pass@k and the failure distribution.

Completion models continue the task's ``prompt``: the solution is the prompt plus the completion, cut after the
function body the prompt opened closes and the definitions the prompt still owes (functions it declares but does
not define, such as an interrupt handler) that follow it. Chat models answer in prose
with code: the solution is the first fenced C block that defines something (```c, ```cpp or bare ```; for RTL
tasks the first ```verilog block with a module), else the whole answer when it looks like code. No code at all is ``None`` (the ``unparseable`` class).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from math import comb

from firmlm.exec.runner import FAILURES

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9+#_-]*)[^\n]*\n(.*?)(?:```|\Z)", re.S)
_C_LANGUAGES = {"", "c", "h", "cpp", "c++", "cc", "arm", "asm"}
_HDL_LANGUAGES = {"", "verilog", "v", "systemverilog", "sv"}
_LOOKS_LIKE_HDL = re.compile(r"\bmodule\s+\w+")
_LOOKS_LIKE_C = re.compile(r"#include|\b(?:void|int|uint\d+_t|int\d+_t|bool|char|static|struct)\b[^;{]*[({]")


def _braces_close(text: str, depth: int) -> int | None:
    """The index just after the brace that brings ``depth`` open braces to zero, skipping strings and comments."""
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            i = text.find("\n", i)
            i = n if i < 0 else i
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
            continue
        if c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            i = j + 1
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return None


def _open_braces(text: str) -> int:
    """Braces the prompt leaves open (strings and comments skipped)."""
    stripped = re.sub(r"//[^\n]*|/\*.*?\*/|\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\])*'", "", text, flags=re.S)
    return stripped.count("{") - stripped.count("}")


_NOT_FUNCTIONS = {"if", "while", "for", "switch", "return", "sizeof", "defined", "do", "else"}
_PROTOTYPE = re.compile(r"\b(\w+)\s*\([^;{}()]*(?:\([^;{}()]*\)[^;{}()]*)*\)\s*(?:const\s*)?;")
_DEFINITION = re.compile(r"\b(\w+)\s*\([^;{}()]*(?:\([^;{}()]*\)[^;{}()]*)*\)\s*(?:const\s*)?\{")
_NEXT_DEFINITION = re.compile(r"(?:\s|//[^\n]*|/\*.*?\*/)*[^;{}]*?\b(\w+)\s*\([^;{}]*\)\s*(?:const\s*)?\{", re.S)


def owed_functions(prompt: str) -> set[str]:
    """Functions the prompt declares (a prototype, or a member declaration) but does not define: the solution
    must define them too (an interrupt handler next to its setup function, the other methods of a class)."""
    code = re.sub(r"//[^\n]*|/\*.*?\*/|\"(?:\\.|[^\"\\])*\"", "", prompt, flags=re.S)
    defined = {m.group(1) for m in _DEFINITION.finditer(code)}
    declared = {m.group(1) for m in _PROTOTYPE.finditer(_without_bodies(code))}  # not calls inside bodies
    return declared - defined - _NOT_FUNCTIONS


def _without_bodies(code: str) -> str:
    """``code`` with the bodies of function definitions (a ``{`` after a ``)``) left out, nested braces included;
    class and struct bodies stay."""
    out, i, n = [], 0, len(code)
    while i < n:
        if code[i] == "{" and re.search(r"\)\s*(?:const\s*)?$", code[:i]):
            depth = 0
            while i < n:
                depth += {"{": 1, "}": -1}.get(code[i], 0)
                i += 1
                if depth == 0:
                    break
            out.append(";")
            continue
        out.append(code[i])
        i += 1
    return "".join(out)


def completion_solution(prompt: str, completion: str) -> str | None:
    """``prompt`` + ``completion``, cut where the body the prompt opened is closed, followed by the definitions of
    functions the prompt declared but left undefined (:func:`owed_functions`) that the completion writes next; the
    rest of the completion is the model wandering on (a ``main`` of its own would clash with the harness's).
    None when the completion is empty."""
    if not completion.strip():
        return None
    depth = _open_braces(prompt)
    if depth <= 0:
        return prompt + completion
    end = _braces_close(completion, depth)
    if end is None:
        return prompt + completion + "\n"
    body, rest, owed = completion[:end], completion[end:], owed_functions(prompt)
    while owed:
        header = _NEXT_DEFINITION.match(rest)
        if header is None or header.group(1) not in owed:
            break
        close = _braces_close(rest[header.end():], 1)
        if close is None:
            break
        body, rest = body + rest[:header.end() + close], rest[header.end() + close:]
        owed.discard(header.group(1))
    return prompt + body + "\n"


def chat_solution(answer: str, verilog: bool = False) -> str | None:
    """The first fenced code block of a chat answer that defines something (C/C++, or a Verilog module for RTL
    tasks), else the answer itself when it looks like code; None when there is no code."""
    languages, looks_like = (_HDL_LANGUAGES, _LOOKS_LIKE_HDL) if verilog else (_C_LANGUAGES, _LOOKS_LIKE_C)
    for language, code in _FENCE.findall(answer):
        if language.lower() in languages and looks_like.search(code):
            return code.strip() + "\n"
    if "```" not in answer and looks_like.search(answer):
        return answer.strip() + "\n"
    return None


BUILD_FAILURES = ("unparseable", "syntax_error", "compile_error", "link_error", "missing_entry")


def veriscope_score(stages: Sequence[str]) -> float | None:
    """InCoder's VeriScope score of RTL answers: 0 when it does not build, 50 when it builds but fails, 100 when it
    passes; averaged (None without answers that ran)."""
    points = [100 if s == "passed" else 0 if s in BUILD_FAILURES else 50 for s in stages if s != "unsupported"]
    return sum(points) / len(points) if points else None


def pass_at_k(samples: int, correct: int, k: int) -> float:
    """The unbiased pass@k estimator (Chen et al. 2021): 1 - C(n-c, k) / C(n, k) for n samples, c correct."""
    if k <= 0 or samples <= 0:
        raise ValueError(f"pass_at_k: need samples > 0 and k > 0, got samples={samples}, k={k}")
    if k > samples:
        raise ValueError(f"pass_at_k: k={k} is more than the {samples} samples")
    if samples - correct < k:
        return 1.0
    return 1.0 - comb(samples - correct, k) / comb(samples, k)


def summarize(outcomes: Sequence[tuple[str, int, str]], ks: Sequence[int] = (1,)) -> dict:
    """pass@k per level and overall (mean over tasks of the per-task estimate), and the failure distribution.

    ``outcomes`` holds (task id, level, stage) per sample; tasks with fewer samples than a k leave that k out, and
    ``unsupported`` samples (their target cannot run here) are only counted.
    """
    by_task: dict[str, list[str]] = {}
    levels: dict[str, int] = {}
    for task, level, stage in outcomes:
        if stage != "unsupported":  # a target that cannot run here scores nothing either way
            by_task.setdefault(task, []).append(stage)
            levels[task] = level
    result: dict = {"tasks": len(by_task), "samples": sum(len(s) for s in by_task.values()), "pass_at": {},
                    "per_level": {}}
    for k in ks:
        scores = {t: pass_at_k(len(s), s.count("passed"), k) for t, s in by_task.items() if len(s) >= k}
        if scores:
            result["pass_at"][str(k)] = sum(scores.values()) / len(scores)
        for level in sorted(set(levels.values())):
            mine = [v for t, v in scores.items() if levels[t] == level]
            if mine:
                result["per_level"].setdefault(str(level), {})[f"pass@{k}"] = sum(mine) / len(mine)
    failures = Counter(stage for _, _, stage in outcomes if stage != "passed")
    total = sum(failures[c] for c in FAILURES)
    result["failures"] = {c: failures[c] for c in FAILURES if failures[c]}
    result["failure_share"] = {c: failures[c] / total for c in FAILURES if failures[c]} if total else {}
    result["unsupported"] = failures.get("unsupported", 0)
    return result

"""InCoder's closed loop: a failed answer goes back to the model with what the compiler or the run said.

A chat model gets the task's instruction, its previous file and the failure, and answers with a whole corrected
file. A completion model gets the failure as a C comment above the task's prompt (Verilog: a ``//`` comment), so
it continues the same function again knowing what went wrong; its answer is cut exactly like a first answer.
"""

from __future__ import annotations

from firmlm.exec.runner import Outcome
from firmlm.exec.tasks import ExecTask

FEEDBACK_LINES = 12
FEEDBACK_CHARS = 1500


def feedback(outcome: Outcome) -> str:
    """The failure in a few lines: its class, the first message, and the log's first lines."""
    lines = [f"{outcome.stage.replace('_', ' ')}: {outcome.detail}".strip()]
    log = [ln for ln in outcome.log.splitlines() if ln.strip()][:FEEDBACK_LINES]
    if log and log[0].strip() not in outcome.detail:
        lines += log
    return "\n".join(lines)[:FEEDBACK_CHARS]


def _comment(text: str, verilog: bool) -> str:
    if verilog:
        return "".join(f"// {ln}\n" for ln in text.splitlines())
    return "/* " + text.replace("*/", "* /").replace("\n", "\n * ") + " */\n"


def repair_prompt(task: ExecTask, chat: bool, solution: str | None, outcome: Outcome) -> str:
    """The prompt of the next attempt after ``outcome`` (the failed ``solution``; None when nothing was
    extracted)."""
    said = feedback(outcome)
    if chat:
        previous = solution if solution is not None else "(no code was found in the answer)"
        return (f"{task.instruction.rstrip()}\n\nYour previous answer was:\n```\n{previous.rstrip()}\n```\n"
                f"It failed when built and run:\n{said}\n\nWrite the corrected complete file.")
    verilog = task.target == "rtl-iverilog"
    return _comment(f"A previous attempt at the code below failed.\n{said}", verilog) + task.prompt

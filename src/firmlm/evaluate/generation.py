"""Generative completion metrics (Spark paper 6.6): greedy output from the 75% prefix against the true suffix.

All models are scored in one fixed reference tokenization, whatever their own tokenizer: code tokens
``\\w+`` or a single non-space character (``CODE_TOKEN``). On those tokens:
- token accuracy: position-wise matches over the reference length (missing positions count as misses);
- BLEU-4: sacrebleu sentence (mean) and corpus BLEU on the space-joined code tokens (``tokenize="none"``);
- exact match: the generation's first len(reference) tokens equal the reference;
- normalized edit distance: Levenshtein distance over code tokens / max(len(generation), len(reference)).
BLEU and edit distance use the generation cut to the reference's length in code tokens, so text generated
past the end of the reference (the paper decodes up to 512 new tokens) is not counted against it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CODE_TOKEN = re.compile(r"\w+|[^\w\s]")


def code_tokens(text: str) -> list[str]:
    return CODE_TOKEN.findall(text)


def edit_distance(a: list[str], b: list[str]) -> int:
    """Levenshtein distance between two token lists (two-row dynamic programme)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        current = [i]
        for j, y in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


@dataclass
class GenerationScore:
    """Per-sample generative completion figures."""

    token_accuracy: float
    bleu4: float
    exact_match: bool
    edit_distance: float
    empty: bool
    ref_tokens: int


def score_generation(generated: str, reference: str) -> GenerationScore:
    from sacrebleu.metrics import BLEU

    ref = code_tokens(reference)
    gen = code_tokens(generated)
    if not ref:
        return GenerationScore(1.0 if not gen else 0.0, 0.0, not gen, 0.0, not gen, 0)
    matches = sum(1 for i, t in enumerate(ref) if i < len(gen) and gen[i] == t)
    cut = gen[: len(ref)]
    bleu = BLEU(tokenize="none", effective_order=True).sentence_score(" ".join(cut), [" ".join(ref)]).score
    return GenerationScore(
        token_accuracy=matches / len(ref),
        bleu4=bleu,
        exact_match=gen[: len(ref)] == ref,
        edit_distance=edit_distance(cut, ref) / max(len(cut), len(ref)),
        empty=not generated.strip(),
        ref_tokens=len(ref),
    )


def corpus_bleu(generated: list[str], references: list[str]) -> float:
    from sacrebleu.metrics import BLEU

    refs_tokens = [code_tokens(r) for r in references]
    hyps = [" ".join(code_tokens(g)[: len(r)]) for g, r in zip(generated, refs_tokens)]
    refs = [[" ".join(r) for r in refs_tokens]]
    return BLEU(tokenize="none").corpus_score(hyps, refs).score


def aggregate_generation(scores: list[GenerationScore], generated: list[str], references: list[str]) -> dict:
    """Both aggregates, labelled: ``weighted`` by reference tokens, and ``unweighted`` (mean over samples)."""
    n = len(scores)
    if not n:
        return {"samples": 0}
    weight = sum(s.ref_tokens for s in scores) or 1
    return {
        "samples": n,
        "empty_generations": sum(s.empty for s in scores),
        "weighted": {
            "token_accuracy": round(sum(s.token_accuracy * s.ref_tokens for s in scores) / weight, 5),
            "edit_distance": round(sum(s.edit_distance * s.ref_tokens for s in scores) / weight, 5),
            "bleu4_corpus": round(corpus_bleu(generated, references), 3),
        },
        "unweighted": {
            "token_accuracy": round(sum(s.token_accuracy for s in scores) / n, 5),
            "edit_distance": round(sum(s.edit_distance for s in scores) / n, 5),
            "bleu4_mean_sentence": round(sum(s.bleu4 for s in scores) / n, 3),
            "exact_match": round(sum(s.exact_match for s in scores) / n, 5),
        },
    }

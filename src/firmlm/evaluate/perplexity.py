"""Token-weighted perplexity and bits per byte of a causal LM on text samples."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from firmlm.evaluate.samples import Sample


@dataclass
class DocScore:
    """Summed negative log-likelihood (nats) of one document's tokens."""

    nll: float
    tokens: int
    bytes: int


def score_texts(
    model,
    tokenizer,
    texts: Sequence[str],
    batch_size: int = 4,
    bf16: bool = True,
    progress: Callable[[int], None] | None = None,
) -> list[DocScore]:
    """Score every token of each text, conditioned on a leading EOS (as after a packed document)."""
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    encoded = [[eos, *tokenizer(t, add_special_tokens=False)["input_ids"]] for t in texts]
    order = sorted(range(len(texts)), key=lambda i: -len(encoded[i]))
    scores: list[DocScore | None] = [None] * len(texts)
    device = next(model.parameters()).device
    autocast = (
        torch.autocast(device_type=device.type, dtype=torch.bfloat16) if bf16 else nullcontext()
    )
    model.eval()
    with torch.inference_mode(), autocast:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            width = max(len(encoded[i]) for i in idx)
            ids = torch.full((len(idx), width), pad, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):
                ids[row, : len(encoded[i])] = torch.tensor(encoded[i])
                mask[row, : len(encoded[i])] = 1
            ids, mask = ids.to(device), mask.to(device)
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            target = ids[:, 1:]
            nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target, reduction="none")
            nll = (nll * mask[:, 1:]).sum(dim=1)
            for row, i in enumerate(idx):
                scores[i] = DocScore(float(nll[row]), len(encoded[i]) - 1, len(texts[i].encode("utf-8")))
            if progress:
                progress(len(idx))
    return [s for s in scores if s is not None]


def aggregate(samples: Sequence[Sample], scores: Sequence[DocScore]) -> dict:
    """Per split → per category and overall: token-weighted perplexity, bits per byte, counts."""
    groups: dict[str, dict[str, list[DocScore]]] = defaultdict(lambda: defaultdict(list))
    for s, sc in zip(samples, scores, strict=True):
        groups[s.split][s.category].append(sc)
    out = {}
    for split, cats in sorted(groups.items()):
        per_cat = {c: _figures(v) for c, v in sorted(cats.items())}
        every = [sc for v in cats.values() for sc in v]
        out[split] = {
            "per_category": per_cat,
            "overall": _figures(every),
            "unweighted_mean_ppl": round(sum(f["ppl"] for f in per_cat.values()) / len(per_cat), 4),
        }
    return out


def _figures(scores: Sequence[DocScore]) -> dict:
    nll = sum(s.nll for s in scores)
    tokens = sum(s.tokens for s in scores)
    nbytes = sum(s.bytes for s in scores)
    return {
        "ppl": round(math.exp(nll / tokens), 4) if tokens else None,
        "bpb": round(nll / math.log(2) / nbytes, 5) if nbytes else None,
        "nll": round(nll, 3),
        "tokens": tokens,
        "bytes": nbytes,
        "docs": len(scores),
    }

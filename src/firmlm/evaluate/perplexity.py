"""Token-weighted perplexity, bits per byte and teacher-forced completion of a causal LM on text samples.

One forward pass per sample gives both: the negative log-likelihood of every token, and, for the tokens
after the sample's 75% split point (a line boundary, Spark paper 6.5), the suffix loss and whether the
true next token is the model's top-1 / among its top-5 predictions.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from firmlm.evaluate.samples import Sample

SPLIT_FRACTION = 0.75


@dataclass
class DocScore:
    """Summed negative log-likelihood (nats) of one document's tokens, and its completion counts."""

    nll: float
    tokens: int
    bytes: int
    suffix_nll: float = 0.0
    suffix_tokens: int = 0
    top1: int = 0
    top5: int = 0
    truncated: bool = False  # the sample was longer than the model's context and was cut to fit


def split_point(text: str, fraction: float = SPLIT_FRACTION) -> int:
    """Character offset of the line boundary nearest to ``fraction`` of the text (0 < cut < len)."""
    target = int(len(text) * fraction)
    before = text.rfind("\n", 0, target)
    after = text.find("\n", target)
    candidates = [c + 1 for c in (before, after) if c != -1 and 0 < c + 1 < len(text)]
    if not candidates:
        return max(1, min(len(text) - 1, target))
    return min(candidates, key=lambda c: abs(c - target))


def score_texts(
    model,
    tokenizer,
    texts: Sequence[str],
    batch_size: int = 4,
    bf16: bool = True,
    progress: Callable[[int], None] | None = None,
    max_tokens: int | None = None,
    max_batch_tokens: int | None = None,
    contexts: Sequence[str] | None = None,
) -> list[DocScore]:
    """Score every token of each text, conditioned on a leading EOS (as after a packed document) and on the
    text's context (e.g. its ``// File:`` header), whose tokens are never scored.

    A text longer than ``max_tokens`` (default: the model's context) is cut to fit and flagged ``truncated``;
    its byte count then covers only the scored part. ``max_batch_tokens`` (GPU): instead of ``batch_size``
    documents, each forward pass takes as many as fit this many padded tokens, and the budget halves when
    the GPU runs out of memory. Scores do not depend on the batching.
    """
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    limit = max_tokens or getattr(model.config, "max_position_embeddings", None) or 1 << 30
    encoded, scored_from, suffix_from, nbytes, truncated = [], [], [], [], []
    for k, t in enumerate(texts):
        context = contexts[k] if contexts else ""
        ctx = tokenizer(context, add_special_tokens=False)["input_ids"] if context else []
        enc = tokenizer(t, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        room = max(1, limit - 1 - len(ctx))
        cut_short = len(ids) > room
        if cut_short:
            ids, offsets = ids[:room], offsets[:room]
            t = t[: offsets[-1][1]] if offsets else ""
        cut = split_point(t) if t else 0
        first_suffix = next((i for i, (start, _) in enumerate(offsets) if start >= cut), len(ids))
        encoded.append([eos, *ctx, *ids])
        scored_from.append(len(ctx))  # logits position predicting the first text token
        suffix_from.append(len(ctx) + first_suffix + 1)  # index in `encoded` of the first suffix token
        nbytes.append(len(t.encode("utf-8")))
        truncated.append(cut_short)
    order = sorted(range(len(texts)), key=lambda i: -len(encoded[i]))
    scores: list[DocScore | None] = [None] * len(texts)
    device = next(model.parameters()).device
    autocast = (
        torch.autocast(device_type=device.type, dtype=torch.bfloat16) if bf16 else nullcontext()
    )
    model.eval()
    start = 0
    with torch.inference_mode(), autocast:
        while start < len(order):
            width = len(encoded[order[start]])  # the longest of this batch: longest first
            take = batch_size if max_batch_tokens is None else max(1, max_batch_tokens // width)
            idx = order[start : start + take]
            ids = torch.full((len(idx), width), pad, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):
                ids[row, : len(encoded[i])] = torch.tensor(encoded[i])
                mask[row, : len(encoded[i])] = 1
            ids, mask = ids.to(device), mask.to(device)
            try:
                logits = model(input_ids=ids, attention_mask=mask).logits
            except torch.cuda.OutOfMemoryError:
                if max_batch_tokens is None or len(idx) == 1:
                    raise
                max_batch_tokens = (len(idx) // 2) * width
                torch.cuda.empty_cache()
                continue
            start += len(idx)
            for row, i in enumerate(idx):  # per row: no work on padding, top-k only on the suffix
                n = len(encoded[i]) - 1
                c = scored_from[i]
                s0 = suffix_from[i] - 1 - c  # position (among the scored ones) predicting the first suffix token
                row_logits = logits[row, c:n].float()
                target = ids[row, c + 1 : n + 1]
                token_nll = torch.nn.functional.cross_entropy(row_logits, target, reduction="none")
                top5 = row_logits[s0:].topk(5, dim=-1).indices
                suffix_target = target[s0:]
                scores[i] = DocScore(
                    nll=float(token_nll.sum()),
                    tokens=n - c,
                    bytes=nbytes[i],
                    suffix_nll=float(token_nll[s0:].sum()),
                    suffix_tokens=max(0, n - c - s0),
                    top1=int((top5[:, 0] == suffix_target).sum()),
                    top5=int((top5 == suffix_target.unsqueeze(-1)).any(dim=-1).sum()),
                    truncated=truncated[i],
                )
            del logits  # free before the next forward pass allocates its own
            if progress:
                progress(len(idx))
    return [s for s in scores if s is not None]


def tokens_for_memory(config, free_bytes: int, weight_bytes: int, fraction: float = 0.5) -> int:
    """Padded tokens per forward pass whose activations fit ``fraction`` of ``free_bytes``: per token, the
    logits in fp32 (4 x vocab) plus the widest hidden/MLP activations in the weights' dtype (no gradients)."""
    c = config.get_text_config() if hasattr(config, "get_text_config") else config
    hidden = c.hidden_size
    intermediate = getattr(c, "intermediate_size", None) or 4 * hidden
    per_token = 4 * c.vocab_size + weight_bytes * (8 * hidden + 3 * intermediate)
    return max(1, int(free_bytes * fraction) // per_token)


def gpu_token_budget(model) -> int | None:
    """``max_batch_tokens`` for ``score_texts`` from the free memory of the model's GPUs; None on CPU."""
    params = [p for p in model.parameters() if p.device.type == "cuda"]
    if not params:
        return None
    free = min(  # memory torch has cached but not used counts as free: it is reused first
        torch.cuda.mem_get_info(d)[0] + torch.cuda.memory_reserved(d) - torch.cuda.memory_allocated(d)
        for d in {p.device for p in params}
    )
    return tokens_for_memory(model.config, free, params[0].element_size())


def aggregate(samples: Sequence[Sample], scores: Sequence[DocScore]) -> dict:
    """Per split → per category and overall: token-weighted perplexity, bits per byte, counts."""
    groups: dict[str, dict[str, list[DocScore]]] = defaultdict(lambda: defaultdict(list))
    for s, sc in zip(samples, scores, strict=True):
        groups[s.split][s.category].append(sc)
    out = {}
    files: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for s in samples:
        files[s.split][s.category].add(s.file)
    for split, cats in sorted(groups.items()):
        per_cat = {c: {**_figures(v), "files": len(files[split][c])} for c, v in sorted(cats.items())}
        every = [sc for v in cats.values() for sc in v]
        out[split] = {
            "per_category": per_cat,
            "overall": {**_figures(every), "files": sum(len(f) for f in files[split].values())},
            "unweighted_mean_ppl": round(sum(f["ppl"] for f in per_cat.values()) / len(per_cat), 4),
        }
    return out


def _figures(scores: Sequence[DocScore]) -> dict:
    nll = sum(s.nll for s in scores)
    tokens = sum(s.tokens for s in scores)
    nbytes = sum(s.bytes for s in scores)
    suffix = sum(s.suffix_tokens for s in scores)
    completion = {
        "suffix_tokens": suffix,
        "suffix_loss": round(sum(s.suffix_nll for s in scores) / suffix, 5) if suffix else None,
        "top1": round(sum(s.top1 for s in scores) / suffix, 5) if suffix else None,
        "top5": round(sum(s.top5 for s in scores) / suffix, 5) if suffix else None,
    }
    return {
        "completion": completion,
        "ppl": round(math.exp(nll / tokens), 4) if tokens else None,
        "bpb": round(nll / math.log(2) / nbytes, 5) if nbytes else None,
        "nll": round(nll, 3),
        "tokens": tokens,
        "bytes": nbytes,
        "docs": len(scores),
        "truncated_docs": sum(s.truncated for s in scores),
    }

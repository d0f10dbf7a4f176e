"""Evaluation throughput of the local backend against a naive one-sample-at-a-time loop, same run, same
samples (lwip sources from Debian, cut like eval samples), bundled SmolLM2:

- perplexity: tokens/s of `score_texts` (length-sorted batches, one pass for ppl + top-1/top-5) against a
  loop that runs one `model(ids, labels=ids)` per sample;
- generation: samples/s of `LocalBackend` (left-padded batches) against one `generate()` per sample.

Prints JSON lines: {"bench": ..., "figure": firmlm, "baseline": naive, "ratio": firmlm / naive}.
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def samples(n: int, max_chars: int) -> list[str]:
    from firmlm.corpus.debian import AptSourceFetcher
    from firmlm.models import cache_dir

    tree = AptSourceFetcher(cache_dir()).fetch("lwip", (".c", ".h"), ["src/*"], [])
    files = sorted(p for p in tree.path.rglob("*") if p.suffix in (".c", ".h") and p.stat().st_size > max_chars)
    return [f.read_text(errors="replace")[:max_chars] for f in files[:n]]


def naive_perplexity(model, tok, texts: list[str]) -> int:
    tokens = 0
    with torch.inference_mode():
        for t in texts:
            ids = torch.tensor([[tok.eos_token_id, *tok(t, add_special_tokens=False)["input_ids"]]])
            model(input_ids=ids, labels=ids)
            tokens += ids.shape[1] - 1
    return tokens


def naive_generation(model, tok, prompts: list[str], new_tokens: int) -> None:
    with torch.inference_mode():
        for p in prompts:
            ids = torch.tensor([[tok.eos_token_id, *tok(p, add_special_tokens=False)["input_ids"]][-512:]])
            model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                           do_sample=False, pad_token_id=tok.eos_token_id)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="bundled:smollm2-135m")
    p.add_argument("--samples", type=int, default=24)
    p.add_argument("--max-chars", type=int, default=1200)
    p.add_argument("--gen-samples", type=int, default=8)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=4)
    args = p.parse_args()
    from firmlm import models
    from firmlm.evaluate.backends.local import LocalBackend
    from firmlm.evaluate.perplexity import score_texts, split_point

    torch.manual_seed(0)
    model, tok = models.load(args.model)
    texts = samples(args.samples, args.max_chars)
    score_texts(model, tok, texts[:2], batch_size=2, bf16=False)  # warm-up

    t0 = time.perf_counter()
    naive_tokens = naive_perplexity(model, tok, texts)
    naive_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    scores = score_texts(model, tok, texts, batch_size=args.batch_size, bf16=False)
    firmlm_s = time.perf_counter() - t0
    assert sum(s.tokens for s in scores) == naive_tokens
    fig, base = naive_tokens / firmlm_s, naive_tokens / naive_s
    print(json.dumps({"bench": "eval_perplexity_tokens_per_s", "samples": len(texts), "batch_size": args.batch_size,
                      "figure": round(fig, 1), "baseline": round(base, 1), "ratio": round(fig / base, 3)}))

    prompts = [t[: split_point(t)] for t in texts[: args.gen_samples]]
    t0 = time.perf_counter()
    naive_generation(model, tok, prompts, args.new_tokens)
    naive_s = time.perf_counter() - t0
    backend = LocalBackend(model, tok, "bench", args.batch_size, 512)
    t0 = time.perf_counter()
    backend.complete(prompts, args.new_tokens)
    firmlm_s = time.perf_counter() - t0
    fig, base = len(prompts) / firmlm_s, len(prompts) / naive_s
    print(json.dumps({"bench": "eval_generation_samples_per_s", "samples": len(prompts), "new_tokens": args.new_tokens,
                      "batch_size": args.batch_size, "figure": round(fig, 3), "baseline": round(base, 3),
                      "ratio": round(fig / base, 3)}))


if __name__ == "__main__":
    main()

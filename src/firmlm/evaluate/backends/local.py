"""Completion with a local transformers model (base, or base + adapter merged): greedy, or sampled."""

from __future__ import annotations

import threading

import torch

from firmlm.evaluate.backends import Sampling


class LocalBackend:
    """Batched decoding, greedy unless sampling is asked for; prompts are cut from the left to ``max_prompt_tokens``. The model is used
    where it was placed (``firmlm.models.load(..., placement=...)``), in its own dtype: no bf16 autocast on a
    CPU, where decoding is memory-bound and autocast re-casts the fp32 weights at every step (measured ~35%
    slower than fp32 on a native-bf16 CPU)."""

    def __init__(self, model, tokenizer, name: str = "local", batch_size: int = 4, max_prompt_tokens: int = 1024):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.batch_size = batch_size
        self.max_prompt_tokens = max_prompt_tokens
        self.device = next(model.parameters()).device  # inputs go where the model (its first layer) is
        self._lock = threading.Lock()  # one generate() at a time (the server handles requests in threads)

    def _encode(self, prompt: str) -> list[int]:
        ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        return [self.tokenizer.eos_token_id, *ids][-self.max_prompt_tokens :]

    def complete(self, prompts: list[str], max_new_tokens: int, sampling: Sampling | None = None) -> list[str]:
        """Continuations in prompt order; with ``sampling``, torch's generator is seeded from it first, so a call
        with the same prompts, batch size and seed gives the same samples."""
        outputs: list[str] = []
        decoding: dict = {"do_sample": False}
        if sampling is not None:
            decoding = {"do_sample": True, "temperature": sampling.temperature, "top_p": sampling.top_p}
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        for start in range(0, len(prompts), self.batch_size):
            encoded = [self._encode(p) for p in prompts[start : start + self.batch_size]]
            width = max(len(e) for e in encoded)
            ids = torch.full((len(encoded), width), pad, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for row, e in enumerate(encoded):  # left padding: every prompt ends at the last column
                ids[row, width - len(e) :] = torch.tensor(e)
                mask[row, width - len(e) :] = 1
            with self._lock, torch.inference_mode():
                if sampling is not None:
                    torch.manual_seed(sampling.seed * 1_000_003 + start)
                out = self.model.generate(
                    input_ids=ids.to(self.device), attention_mask=mask.to(self.device), max_new_tokens=max_new_tokens,
                    pad_token_id=pad, eos_token_id=self.tokenizer.eos_token_id, **decoding,
                )
            for row in range(len(encoded)):
                outputs.append(self.tokenizer.decode(out[row, width:], skip_special_tokens=True))
        return outputs

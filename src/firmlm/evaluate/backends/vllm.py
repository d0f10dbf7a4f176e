"""Completion with vLLM (GPU), greedy or sampled, for long generations over many samples.

The adapter is merged into the base weights and saved once to a scratch folder, which vLLM then loads:
merging keeps embed_tokens/lm_head adapters and untied embeddings exact, which vLLM's LoRA path does not
cover. Prompts are token-cut from the left exactly as in the transformers backend, so both see the same
prefix.
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from pathlib import Path

from firmlm import models
from firmlm.evaluate.backends import Sampling


def vllm_available() -> bool:
    """vLLM is installed and a CUDA device is visible."""
    if importlib.util.find_spec("vllm") is None:
        return False
    import torch

    return torch.cuda.is_available()


def use_vllm(engine: str, key: str) -> bool:
    """Whether an ``engine`` setting (auto, transformers, vllm; config key ``key``) picks vLLM here."""
    if engine == "vllm" and not vllm_available():
        from firmlm.errors import StageError

        raise StageError(f"{key} = 'vllm': vllm is not installed or no CUDA device is visible")
    return engine == "vllm" or (engine == "auto" and vllm_available())


class VllmBackend:
    """Batched decoding through ``vllm.LLM`` (continuous batching does the scheduling)."""

    def __init__(self, model_ref: str, adapter: Path | None, name: str, max_prompt_tokens: int, gpu_memory_utilization: float = 0.85):
        from vllm import LLM

        self.name = name
        self.max_prompt_tokens = max_prompt_tokens
        self._scratch: Path | None = None
        if adapter is not None:
            merged, tokenizer = models.load_merged(model_ref, adapter)
            self._scratch = Path(tempfile.mkdtemp(prefix="firmlm-vllm-"))
            merged.save_pretrained(self._scratch)
            tokenizer.save_pretrained(self._scratch)
            folder = self._scratch
        else:
            folder = models.prepare(model_ref)
        self.llm = LLM(model=str(folder), dtype="bfloat16", gpu_memory_utilization=gpu_memory_utilization)
        self.tokenizer = self.llm.get_tokenizer()

    def complete(self, prompts: list[str], max_new_tokens: int, sampling: Sampling | None = None) -> list[str]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        eos = self.tokenizer.eos_token_id
        token_prompts = [
            TokensPrompt(prompt_token_ids=[eos, *self.tokenizer(p, add_special_tokens=False)["input_ids"]][-self.max_prompt_tokens:])
            for p in prompts
        ]
        decoding = {"temperature": 0.0} if sampling is None else {
            "temperature": sampling.temperature, "top_p": sampling.top_p, "seed": sampling.seed}
        params = SamplingParams(max_tokens=max_new_tokens, skip_special_tokens=True, **decoding)
        outputs = self.llm.generate(token_prompts, params, use_tqdm=False)
        return [o.outputs[0].text for o in outputs]

    def close(self) -> None:
        del self.llm
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)

"""Per-step next-token accuracy and mean predictive entropy (the Spark paper's Table 12 columns), from a sample.

Computing them over every position would add a softmax over the whole vocabulary to each micro-batch; the first
``SAMPLE_ROWS`` predicted positions of each micro-batch give the figures at a small fraction of that cost. Both
are computed without gradients from logits the loss already produced.
"""

from __future__ import annotations

import torch

SAMPLE_ROWS = 256
IGNORE = -100


@torch.no_grad()
def prediction_stats(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """[correct, entropy sum, positions] over the first SAMPLE_ROWS positions whose label is not ignored.

    ``logits`` are [rows, vocab] with ``labels`` [rows] already aligned (the label is the token each row
    predicts); entropy is in nats.
    """
    valid = (labels != IGNORE).nonzero().squeeze(1)[:SAMPLE_ROWS]
    if valid.numel() == 0:
        return torch.zeros(3, device=logits.device)
    z = logits[valid].float()
    target = labels[valid]
    log_p = torch.log_softmax(z, dim=-1)
    entropy = -(log_p.exp() * log_p).sum(-1)
    correct = (z.argmax(-1) == target).sum()
    return torch.stack([correct.float(), entropy.sum(), torch.tensor(float(valid.numel()), device=z.device)])


def shifted(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A causal LM's logits [batch, seq, vocab] and input labels [batch, seq] as aligned rows: position t predicts
    label t + 1 (the last position of each row predicts nothing)."""
    return logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1).to(logits.device)

"""Sampled next-token accuracy and predictive entropy: the figures, and the same from the fused head loss."""

from __future__ import annotations

import math

import torch

from firmlm.train.predictions import SAMPLE_ROWS, prediction_stats, shifted


def test_accuracy_and_entropy_of_known_logits():
    logits = torch.tensor([[5.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 9.0, 0.0], [1.0, 2.0, 3.0]])
    labels = torch.tensor([0, 2, 0, -100])  # right, a uniform row, wrong, ignored
    correct, entropy, positions = prediction_stats(logits, labels).tolist()
    assert positions == 3 and correct == 1  # the uniform row's argmax is 0, not 2
    p = torch.softmax(logits[:3], -1)
    assert abs(entropy - float(-(p * p.log()).sum())) < 1e-4
    assert abs(float(-(p[1] * p[1].log()).sum()) - math.log(3)) < 1e-6


def test_only_a_sample_of_positions_is_scored():
    logits = torch.zeros(SAMPLE_ROWS + 50, 4)
    assert prediction_stats(logits, torch.zeros(SAMPLE_ROWS + 50, dtype=torch.long))[2] == SAMPLE_ROWS
    assert prediction_stats(logits, torch.full((10,), -100)).tolist() == [0.0, 0.0, 0.0]


def test_the_fused_head_loss_gives_the_models_own_figures():
    from firmlm import models
    from firmlm.train.head_loss import FusedHeadLoss

    torch.manual_seed(0)
    model, _ = models.load("tiny:llama")
    model.requires_grad_(False)  # a frozen head, as under LoRA
    ids = torch.randint(0, model.config.vocab_size, (2, 40))
    labels = ids.clone()
    labels[0, :5] = -100
    inputs = {"input_ids": ids, "labels": labels}
    fused = FusedHeadLoss.for_model(model, compiled=False)
    loss, stats = fused(inputs, None, with_predictions=True)
    with torch.no_grad():
        out = model(**inputs)
    assert torch.allclose(loss, out.loss, atol=1e-5)
    assert torch.allclose(stats, prediction_stats(*shifted(out.logits, labels)), atol=1e-3)

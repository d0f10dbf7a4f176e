"""Shared fixtures of the train tests."""

import pytest


@pytest.fixture
def lose_document_masking(monkeypatch):
    """Swap in a collator that adds an attention_mask: packed blocks then attend across documents."""
    from transformers import default_data_collator

    def padding_collator(features):
        batch = default_data_collator(features)
        batch["attention_mask"] = batch["input_ids"].ne(-1).long()
        return batch

    monkeypatch.setattr("transformers.default_data_collator", padding_collator)

"""Export: the base model with a trained adapter merged in (see ``models.load_merged``), saved as a plain
transformers folder that transformers and vLLM load without peft."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from firmlm.models import Precision, load_merged, placement_for


def export_merged(model_ref: str, adapter_dir: Path, out_dir: Path, precision: Precision = "auto") -> Path:
    """Write the merged model to ``out_dir`` (through a temporary folder, renamed into place).

    The merge runs where the placement policy puts the model for ``precision``: on a GPU in bf16 (so the
    folder holds bf16 weights; ``fp32`` keeps fp32), on a CPU in fp32.
    """
    model, tokenizer = load_merged(model_ref, adapter_dir, placement_for(model_ref, precision))
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    return out_dir

"""Export: the base model with a trained adapter merged in (see ``models.load_merged``), saved as a plain
transformers folder that transformers and vLLM load without peft."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from firmlm.models import load_merged


def export_merged(model_ref: str, adapter_dir: Path, out_dir: Path) -> Path:
    """Write the merged model to ``out_dir`` (through a temporary folder, renamed into place)."""
    model, tokenizer = load_merged(model_ref, adapter_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    return out_dir

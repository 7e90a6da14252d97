"""Job config (JSON or YAML, camelCase like the TrainingJob resource) and the rendezvous
environment. This module is the only reader of os.environ."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .compression import ALLOCATIONS, FACTOR_BITS, CompressionConfig
from .controller import AdaptiveConfig
from .model import ModelConfig
from .outer import START_MODES

METHODS = ("allreduce", "diloco", "diloco-x")
OUTER_SYNC = (0.7, 0.9)      # DiLoCo (Douillard et al. 2023)
OUTER_DELAYED = (0.35, 0.85)  # DiLoCoX with delayed overlap (tuned here, see README)


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class DataConfig:
    train: str
    held_out: str
    batch_size: int = 8
    held_out_tokens: int = 16384


@dataclass(frozen=True)
class InnerConfig:
    lr: float = 1e-3
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 20
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0


@dataclass(frozen=True)
class DilocoConfig:
    inner_steps: int = 30
    delayed_overlap: bool = True
    delayed_start: str = "speculative"
    compression: CompressionConfig = CompressionConfig()
    compression_enabled: bool = True
    adaptive: AdaptiveConfig = AdaptiveConfig()


@dataclass(frozen=True)
class CheckpointConfig:
    endpoint: str = ""
    bucket: str = "deai-checkpoints"
    prefix: str = "jobs/local"
    every_rounds: int = 0
    final: bool = True
    resume_from: str = ""


@dataclass(frozen=True)
class JobConfig:
    job_id: str
    method: str
    seed: int
    model: ModelConfig
    stages: int
    micro_batches: int
    data: DataConfig
    tokens: int
    stop_after_steps: int | None
    inner: InnerConfig
    outer_lr: float
    outer_momentum: float
    diloco: DilocoConfig
    bucket_bytes: int
    checkpoint: CheckpointConfig
    log_every_steps: int
    verify_replicas: bool
    timeout_s: float
    raw: Mapping[str, Any] = field(repr=False, default_factory=dict)


@dataclass(frozen=True)
class Rendezvous:
    master_addr: str
    master_port: int
    world_size: int
    rank: int
    group: int
    stage: int
    wire_iface: str | None
    rate_limit_mbit: float | None
    progress_path: str | None
    # elastic mode (DEAI_EXCHANGE set): this group's own world, the outer exchange via the coordinator
    exchange_url: str | None = None
    groups: int | None = None         # DEAI_GROUPS: the job's group count (schedule, tokens per step)
    resume_from: str | None = None    # DEAI_RESUME_FROM: overrides checkpoint.resumeFrom

    @property
    def elastic(self) -> bool:
        return self.exchange_url is not None


def _get(d: Mapping[str, Any], key: str, default: Any) -> Any:
    v = d.get(key, default)
    return default if v is None else v


def parse_job(doc: Mapping[str, Any]) -> JobConfig:
    method = str(doc.get("method", "diloco-x"))
    if method not in METHODS:
        raise ConfigError(f"method must be one of {METHODS}, got {method!r}")
    m = doc.get("model", {}) or {}
    model = ModelConfig(context_length=int(_get(m, "contextLength", 64)), d_model=int(_get(m, "dModel", 192)),
                        n_layers=int(_get(m, "nLayers", 4)), n_heads=int(_get(m, "nHeads", 4)))
    if model.d_model % model.n_heads:
        raise ConfigError("model.dModel must be divisible by model.nHeads")
    p = doc.get("pipeline", {}) or {}
    d = doc.get("data", {}) or {}
    if "train" not in d or "heldOut" not in d:
        raise ConfigError("data.train and data.heldOut (manifest paths) are required")
    data = DataConfig(train=str(d["train"]), held_out=str(d["heldOut"]), batch_size=int(_get(d, "batchSize", 8)),
                      held_out_tokens=int(_get(d, "heldOutTokens", 16384)))
    b = doc.get("budget", {}) or {}
    if "tokens" not in b:
        raise ConfigError("budget.tokens is required (methods are compared at equal tokens)")
    i = doc.get("inner", {}) or {}
    inner = InnerConfig(lr=float(_get(i, "lr", 1e-3)), weight_decay=float(_get(i, "weightDecay", 0.1)),
                        betas=tuple(_get(i, "betas", (0.9, 0.95))),  # type: ignore[arg-type]
                        warmup_steps=int(_get(i, "warmupSteps", 20)), min_lr_ratio=float(_get(i, "minLrRatio", 0.1)),
                        grad_clip=float(_get(i, "gradClip", 1.0)))
    o = doc.get("outer", {}) or {}
    dl = doc.get("diloco", {}) or {}
    c = dl.get("compression", {}) or {}
    a = dl.get("adaptive", {}) or {}
    h = int(_get(dl, "innerSteps", 30))
    comp = CompressionConfig(low_rank=bool(_get(c, "lowRank", True)), quantize=bool(_get(c, "quantize", True)),
                             energy=float(_get(c, "energy", 0.95)), min_rank=int(_get(c, "minRank", 1)),
                             max_rank=int(_get(c, "maxRank", 32)), block=int(_get(c, "block", 256)),
                             bits=int(_get(c, "bits", 4)), allocation=str(_get(c, "allocation", "uniform")))
    if comp.allocation not in ALLOCATIONS:
        raise ConfigError(f"diloco.compression.allocation must be one of {ALLOCATIONS}, got {comp.allocation!r}")
    if comp.bits not in FACTOR_BITS:
        raise ConfigError(f"diloco.compression.bits must be one of {FACTOR_BITS}, got {comp.bits}")
    adaptive = AdaptiveConfig(enabled=bool(_get(a, "enabled", True)), h_min=int(_get(a, "hMin", h)),
                              h_max=int(_get(a, "hMax", 8 * h)), hidden_fraction=float(_get(a, "hiddenFraction", 0.8)),
                              min_rank=comp.min_rank, max_rank=comp.max_rank)
    start = str(_get(dl, "delayedStart", "speculative"))
    if start not in START_MODES:
        raise ConfigError(f"diloco.delayedStart must be one of {START_MODES}, got {start!r}")
    diloco = DilocoConfig(inner_steps=h, delayed_overlap=bool(_get(dl, "delayedOverlap", True)), delayed_start=start,
                          compression=comp, compression_enabled=bool(_get(c, "enabled", True)), adaptive=adaptive)
    if method == "diloco":  # plain DiLoCo: the baseline without DiLoCoX's additions
        diloco = DilocoConfig(inner_steps=h, delayed_overlap=False, compression=comp, compression_enabled=False,
                              adaptive=AdaptiveConfig(enabled=False))
    if not diloco.compression_enabled:
        diloco = DilocoConfig(inner_steps=h, delayed_overlap=diloco.delayed_overlap, delayed_start=start, compression=comp,
                              compression_enabled=False,
                              adaptive=AdaptiveConfig(enabled=False))  # nothing to adapt without compression
    ck = doc.get("checkpoint", {}) or {}
    checkpoint = CheckpointConfig(endpoint=str(_get(ck, "endpoint", "")), bucket=str(_get(ck, "bucket", "deai-checkpoints")),
                                  prefix=str(_get(ck, "prefix", f"jobs/{_get(doc, 'jobId', 'local')}")),
                                  every_rounds=int(_get(ck, "everyRounds", 0)), final=bool(_get(ck, "final", True)),
                                  resume_from=str(_get(ck, "resumeFrom", "")))
    stop = b.get("stopAfterSteps")
    # Outer Nesterov defaults: DiLoCo's published (0.7, 0.9) when the outer step is synchronous;
    # with the one-round delay a lower step, (0.35, 0.85), measured best (README, "Where the loss goes").
    outer_lr, outer_mu = (OUTER_DELAYED if method == "diloco-x" and diloco.delayed_overlap else OUTER_SYNC)
    return JobConfig(
        job_id=str(_get(doc, "jobId", "local")), method=method, seed=int(_get(doc, "seed", 1)), model=model,
        stages=int(_get(p, "stages", 1)), micro_batches=int(_get(p, "microBatches", 1)), data=data,
        tokens=int(b["tokens"]), stop_after_steps=int(stop) if stop is not None else None, inner=inner,
        outer_lr=float(_get(o, "lr", outer_lr)), outer_momentum=float(_get(o, "momentum", outer_mu)), diloco=diloco,
        bucket_bytes=int(_get(doc.get("allreduce", {}) or {}, "bucketBytes", 1 << 20)), checkpoint=checkpoint,
        log_every_steps=int(_get(doc.get("progress", {}) or {}, "logEverySteps", 10)),
        verify_replicas=bool(_get(doc, "verifyReplicas", False)), timeout_s=float(_get(doc, "timeoutS", 1800)),
        raw=dict(doc),
    )


def load_job(path: str | Path) -> JobConfig:
    text = Path(path).read_text()
    if str(path).endswith((".yaml", ".yml")):
        import yaml  # Debian python3-yaml
        doc = yaml.safe_load(text)
    else:
        doc = json.loads(text)
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: job config must be a mapping")
    return parse_job(doc)


def standby_from_env(env: Mapping[str, str] | None = None) -> bool:
    """DEAI_STANDBY=1: a warm spare that loads torch and the data, then waits on stdin for one
    JSON object of rendezvous variables (its group assignment) before it trains."""
    env = os.environ if env is None else env
    return env.get("DEAI_STANDBY", "") == "1"


def with_env(overrides: Mapping[str, str]) -> dict[str, str]:
    """This process's environment with a standby assignment on top."""
    return {**os.environ, **{str(k): str(v) for k, v in overrides.items()}}


def rendezvous_from_env(stages: int, env: Mapping[str, str] | None = None) -> Rendezvous:
    """MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK, DEAI_GROUP, DEAI_STAGE (+ optional
    DEAI_WIRE_IFACE, DEAI_RATE_LIMIT_MBIT, DEAI_PROGRESS, DEAI_RESUME_FROM). Group/stage default from RANK.

    Elastic mode (DEAI_EXCHANGE=http://coordinator:port): the world is this group's stages only
    (WORLD_SIZE = stages, RANK = DEAI_STAGE), DEAI_GROUP is required and DEAI_GROUPS gives the
    job's group count (default DEAI_GROUP + 1)."""
    env = os.environ if env is None else env
    missing = [k for k in ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK") if k not in env]
    if missing:
        raise ConfigError(f"missing rendezvous environment: {', '.join(missing)}")
    try:
        rank, world = int(env["RANK"]), int(env["WORLD_SIZE"])
    except ValueError as exc:
        raise ConfigError(f"RANK and WORLD_SIZE must be integers: {exc}") from exc
    exchange = env.get("DEAI_EXCHANGE") or None
    resume = env.get("DEAI_RESUME_FROM") or None
    rate = env.get("DEAI_RATE_LIMIT_MBIT")
    common = dict(master_addr=env["MASTER_ADDR"], master_port=int(env["MASTER_PORT"]), world_size=world, rank=rank,
                  wire_iface=env.get("DEAI_WIRE_IFACE") or None, rate_limit_mbit=float(rate) if rate else None,
                  progress_path=env.get("DEAI_PROGRESS") or None, resume_from=resume)
    if exchange is not None:
        if not exchange.startswith(("http://", "https://")):
            raise ConfigError(f"DEAI_EXCHANGE must be an http(s) URL, got {exchange!r}")
        if "DEAI_GROUP" not in env:
            raise ConfigError("elastic mode (DEAI_EXCHANGE) needs DEAI_GROUP")
        group = int(env["DEAI_GROUP"])
        stage = int(env.get("DEAI_STAGE", rank))
        if world != stages or rank != stage:
            raise ConfigError(f"elastic mode: WORLD_SIZE={world} must equal pipeline.stages={stages} and "
                              f"RANK={rank} must equal DEAI_STAGE={stage} (one world per group)")
        groups = int(env.get("DEAI_GROUPS", group + 1))
        if group < 0 or groups < 1:
            raise ConfigError(f"DEAI_GROUP={group} / DEAI_GROUPS={groups} out of range")
        return Rendezvous(group=group, stage=stage, exchange_url=exchange, groups=groups, **common)  # type: ignore[arg-type]
    if world % stages:
        raise ConfigError(f"WORLD_SIZE={world} is not a multiple of pipeline.stages={stages}")
    group = int(env.get("DEAI_GROUP", rank // stages))
    stage = int(env.get("DEAI_STAGE", rank % stages))
    if rank != group * stages + stage:
        raise ConfigError(f"RANK={rank} disagrees with DEAI_GROUP={group}, DEAI_STAGE={stage} (rank = group*stages + stage)")
    return Rendezvous(group=group, stage=stage, **common)  # type: ignore[arg-type]

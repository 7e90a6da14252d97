"""The training run of one worker (one pipeline stage of one group).

allreduce: every inner step, gradients are averaged across groups (bucketed, per stage).
diloco:    H AdamW steps per group, fp32 pseudo-gradient all-reduce, Nesterov outer step.
diloco-x:  diloco + one-round-delay overlap + compressed exchange with error feedback
           + adaptive rank / H. Each switch can be turned off in the job config.
"""
from __future__ import annotations

import datetime
import hashlib
import math
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

from .blobstore import open_store
from .checkpoint import checkpoint_key, load_checkpoint, save_checkpoint
from .comm import Collectives, LinkMeter, RateLimiter, Topology, bucketed_mean_, make_process_groups
from .compression import ErrorFeedbackCompressor
from .config import JobConfig, Rendezvous
from .controller import CommController
from .data_sampler import BatchSampler, held_out_windows
from .dataset import read_dataset
from .elastic import CoordinatorClient, CoordinatorError, ElasticExchange
from .exchange import ExchangeResult, OuterExchange
from .manifest import load_manifest
from .model import build_stage, count_parameters
from .outer import OuterLoop
from .pipeline import GPipe
from .progress import Progress


class ReplicaDivergenceError(RuntimeError):
    """Replicas of a stage hold different weights where they must be identical."""


# Set by the worker's SIGTERM handler (elastic mode): checkpoint at the next round end and leave.
STOP = threading.Event()


def _read_tx_bytes(iface: str | None) -> int | None:
    if not iface:
        return None
    try:
        with open(f"/sys/class/net/{iface}/statistics/tx_bytes") as f:
            return int(f.read())
    except OSError:
        return None


def params_digest(tensors: list[torch.Tensor]) -> bytes:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().contiguous().numpy().tobytes())
    return h.digest()


def lr_at(step: int, total: int, base: float, warmup: int, min_ratio: float) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


@dataclass
class RunStats:
    exposed_s: float = 0.0
    losses: list[float] = field(default_factory=list)
    h_history: list[int] = field(default_factory=list)
    rank_history: list[float] = field(default_factory=list)
    payload_history: list[int] = field(default_factory=list)
    replica_checks: int = 0


class Worker:
    def __init__(self, cfg: JobConfig, rv: Rendezvous, progress: Progress,
                 data: tuple[bytes, bytes] | None = None) -> None:
        self.cfg, self.rv, self.progress = cfg, rv, progress
        self.preloaded = data  # (train, held-out) bytes a warm spare verified before its assignment
        self.elastic = rv.elastic
        if self.elastic:
            # one torch.distributed world per group (its stages); groups meet only at the coordinator
            self.topo = Topology(groups=1, stages=cfg.stages, group=0, stage=rv.stage)
            self.job_groups = int(rv.groups or rv.group + 1)
        else:
            self.topo = Topology(groups=rv.world_size // cfg.stages, stages=cfg.stages, group=rv.group, stage=rv.stage)
            self.job_groups = self.topo.groups
        self.group = rv.group  # the job's group index (topo.group is 0 in elastic mode)
        self.elastic_meter = LinkMeter()
        self.stats = RunStats()
        self.stopped = False
        self.membership: dict[str, Any] = {"member": 0, "late": 0, "joinedAtRound": None}

    # --- setup -------------------------------------------------------------------------------
    def _init_dist(self) -> None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        timeout = datetime.timedelta(seconds=self.cfg.timeout_s)
        dist.init_process_group(backend, init_method=f"tcp://{self.rv.master_addr}:{self.rv.master_port}",
                                world_size=self.rv.world_size, rank=self.rv.rank, timeout=timeout)
        self.pgs = make_process_groups(self.topo)
        # The main thread's own cross-group group, so it never shares one with the exchange thread.
        sync_pgs = [dist.new_group([self.topo.rank_of(g, s) for g in range(self.topo.groups)])
                    for s in range(self.topo.stages)]
        limiter = None
        if self.rv.rate_limit_mbit:
            limiter = RateLimiter(self.rv.rate_limit_mbit * 1e6 / self.topo.stages)
        self.stage_coll = Collectives(self.pgs.stage, limiter)
        self.control_coll = Collectives(self.pgs.control, limiter)
        self.sync_coll = Collectives(sync_pgs[self.topo.stage], limiter)

    def _check_replicas(self, tensors: list[torch.Tensor], where: str) -> None:
        digest = torch.frombuffer(bytearray(params_digest(tensors)), dtype=torch.uint8)
        digests = self.sync_coll.all_gather(digest)
        same = all(torch.equal(d, digests[0]) for d in digests)
        self.stats.replica_checks += 1
        self.progress.emit("replicaCheck", where=where, identical=same, digest=bytes(digest.tolist()).hex()[:16])
        if not same:
            raise ReplicaDivergenceError(f"stage {self.topo.stage} replicas differ at {where}")

    def _group_reduce(self, values: list[float]) -> list[list[float]]:
        """All-gather small stats among the stages of this group (loopback)."""
        if self.topo.stages == 1:
            return [values]
        t = torch.tensor(values, dtype=torch.float64)
        out = [torch.empty_like(t) for _ in range(self.topo.stages)]
        dist.all_gather(out, t, group=self.pgs.group)
        return [o.tolist() for o in out]

    def _clip_and_step(self, step: int) -> None:
        inner = self.cfg.inner
        lr = lr_at(step, self.total_steps, inner.lr, inner.warmup_steps, inner.min_lr_ratio)
        for g in self.opt.param_groups:
            g["lr"] = lr
        if inner.grad_clip > 0:
            sq = torch.zeros(1, dtype=torch.float64)
            for p in self.params:
                if p.grad is not None:
                    sq += p.grad.detach().double().pow(2).sum()
            if self.topo.stages > 1:
                dist.all_reduce(sq, group=self.pgs.group)
            norm = float(sq.sqrt())
            if norm > inner.grad_clip:
                for p in self.params:
                    if p.grad is not None:
                        p.grad.mul_(inner.grad_clip / (norm + 1e-6))
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)

    def setup(self) -> None:
        torch.set_num_threads(1)
        cfg = self.cfg
        self._init_dist()
        t0 = time.perf_counter()
        train_manifest, held_manifest = load_manifest(cfg.data.train), load_manifest(cfg.data.held_out)
        if self.preloaded is not None:
            train_bytes, held_bytes = self.preloaded
        else:
            train_bytes = read_dataset(train_manifest)
            held_bytes = read_dataset(held_manifest)
        self.progress.emit("data", train=train_manifest.content_digest, trainBytes=len(train_bytes),
                           heldOut=held_manifest.content_digest, heldOutBytes=len(held_bytes),
                           shardsVerified=(train_manifest.stripes + held_manifest.stripes) * train_manifest.k,
                           seconds=round(time.perf_counter() - t0, 3))
        self.sampler = BatchSampler(train_bytes, cfg.seed, self.group, cfg.data.batch_size, cfg.model.context_length)
        self.held_x, self.held_y = held_out_windows(held_bytes, cfg.model.context_length, cfg.data.held_out_tokens)
        self.model = build_stage(cfg.model, cfg.seed, self.topo.stage, self.topo.stages)
        self.params = list(self.model.parameters())
        decay = [p for p in self.params if p.dim() >= 2]
        no_decay = [p for p in self.params if p.dim() < 2]
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.inner.weight_decay},
                                      {"params": no_decay, "weight_decay": 0.0}],
                                     lr=cfg.inner.lr, betas=cfg.inner.betas)
        self.pipe = GPipe(self.model, self.topo, cfg.micro_batches, cfg.model.d_model)
        self.tokens_per_step = self.job_groups * cfg.data.batch_size * cfg.model.context_length
        self.group_tokens_per_step = cfg.data.batch_size * cfg.model.context_length
        self.total_steps = cfg.tokens // self.tokens_per_step
        if self.total_steps < 1:
            raise ValueError("budget.tokens is smaller than one step of every group")
        self.run_steps = min(self.total_steps, cfg.stop_after_steps or self.total_steps)
        self._check_replicas(self.params, "init")  # identical initial weights, checked not assumed
        self.store = open_store(cfg.checkpoint.endpoint) if cfg.checkpoint.endpoint else None
        self.progress.emit("start", method=cfg.method, groups=self.job_groups, stages=self.topo.stages, elastic=self.elastic,
                           stageParams=count_parameters(self.model), tokensPerStep=self.tokens_per_step,
                           totalSteps=self.total_steps, runSteps=self.run_steps,
                           rateLimitMbit=self.rv.rate_limit_mbit, backend=dist.get_backend())

    # --- methods -------------------------------------------------------------------------------
    def _log(self, step: int, round_: int | None, loss: float | None, extra: dict[str, Any]) -> None:
        own = [loss if loss is not None else float("nan"), self.stage_coll.meter.bytes_sent
               + self.control_coll.meter.bytes_sent + self.elastic_meter.bytes_sent, self.stats.exposed_s]
        rows = self._group_reduce(own)
        if self.topo.last_stage:
            self.progress.emit("progress", method=self.cfg.method, round=round_, step=step,
                               tokens=step * self.tokens_per_step, groupTokens=step * self.group_tokens_per_step,
                               loss=round(rows[-1][0], 5),
                               bytesSent=int(sum(r[1] for r in rows)), exposedCommS=round(max(r[2] for r in rows), 4),
                               elapsedS=round(time.perf_counter() - self.t_start, 3), **extra)

    def run_allreduce(self, resume: dict[str, Any] | None) -> None:
        step = 0
        if resume is not None:
            step = int(resume["step"])
        self.start_step = step
        window: list[float] = []
        while step < self.run_steps:
            x, y = self.sampler.batch(step)
            loss = self.pipe.train_step(x, y)
            grads = [p.grad for p in self.params]
            t0 = time.perf_counter()
            bucketed_mean_(self.stage_coll, grads, self.cfg.bucket_bytes)
            self.stats.exposed_s += time.perf_counter() - t0
            self._clip_and_step(step)
            step += 1
            if loss is not None:
                window.append(loss)
                self.stats.losses.append(loss)
            if self.cfg.verify_replicas:
                self._check_replicas(self.params, f"step {step}")
            if step % self.cfg.log_every_steps == 0 or step == self.run_steps:
                self._log(step, None, sum(window) / len(window) if window else None, {})
                window = []
            every = self.cfg.checkpoint.every_rounds
            if every and step % every == 0 and step < self.run_steps:
                self._save(step, step, None, None, None)
        self.steps_done, self.rounds_done = step, step

    def run_diloco(self, resume: dict[str, Any] | None) -> None:
        cfg, dl = self.cfg, self.cfg.diloco
        controller = CommController(dl.inner_steps, dl.adaptive)
        compressor = (ErrorFeedbackCompressor([p.shape for p in self.params], dl.compression)
                      if dl.compression_enabled else None)
        exchange: OuterExchange | ElasticExchange
        if self.elastic:
            exchange = ElasticExchange(CoordinatorClient(str(self.rv.exchange_url), cfg.timeout_s), self.group,
                                       self.topo.stage, [p.shape for p in self.params], compressor, self.elastic_meter)
        else:
            exchange = OuterExchange(self.stage_coll, self.control_coll if dl.adaptive.enabled else None, compressor)
        state: dict[str, Any] = {"step_s": 0.0, "last_job_s": 0.0, "last_comm_s": 0.0, "agreed": None,
                                 "round": 0, "step": 0, "h": 0, "members": None}

        def submit(delta: list[torch.Tensor]) -> "Future[ExchangeResult]":
            stats = [state["step_s"], state["last_job_s"]] if dl.adaptive.enabled else None
            if isinstance(exchange, ElasticExchange):
                return exchange.submit(delta, controller.rank_cap, stats, round_=state["round"], step=state["step"],
                                       h=state["h"])
            return exchange.submit(delta, controller.rank_cap, stats)

        def on_result(res: ExchangeResult) -> None:
            state["last_job_s"] = res.job_s
            state["last_comm_s"] = res.comm_s
            state["agreed"] = res.agreed_stats
            if self.elastic:
                state["members"] = getattr(res, "members", None)
            self.stats.payload_history.append(res.payload_bytes)
            if res.ranks:
                low = [r for r in res.ranks if r > 0]
                self.stats.rank_history.append(sum(low) / len(low) if low else 0.0)
            if res.agreed_stats is not None:
                controller.update(step_s=res.agreed_stats[0], comm_s=res.agreed_stats[1])  # job time of the previous exchange

        outer = OuterLoop(self.params, cfg.outer_lr, cfg.outer_momentum, dl.delayed_overlap, submit,
                          average_of=lambda r: r.average, on_result=on_result, start=dl.delayed_start)
        step, round_ = 0, 0
        if resume is not None:
            step, round_ = int(resume["step"]), int(resume["round"])
            controller.h, controller.rank_cap = int(resume["h"]), int(resume["rankCap"])
            if compressor is not None:
                compressor.calls = int(resume["compressorCalls"])
                for e, saved in zip(compressor.residual, resume["residual"]):
                    e.copy_(saved)
            with torch.no_grad():
                for mine, saved in ((outer.anchor, resume["anchor"]), (outer.start, resume["roundStart"]),
                                    (outer.momentum, resume["outerMomentum"])):
                    for t, v in zip(mine, saved):
                        t.copy_(v)
            outer.outer_steps = int(resume["outerSteps"])
            if resume.get("pendingAverage") is not None:
                done: Future[ExchangeResult] = Future()
                done.set_result(ExchangeResult(resume["pendingAverage"], None, None, 0, 0.0, 0.0))
                outer.pending = done
        if isinstance(exchange, ElasticExchange):
            try:
                step, round_ = self._join_elastic(exchange, outer, controller, compressor, on_result, step, round_)
            except BaseException:
                exchange.close()
                raise
        self.start_step = step
        try:
            while step < self.run_steps:
                h = min(controller.h, self.run_steps - step)
                self.stats.h_history.append(h)
                t0 = time.perf_counter()
                losses = []
                for _ in range(h):
                    x, y = self.sampler.batch(step)
                    loss = self.pipe.train_step(x, y)
                    self._clip_and_step(step)
                    step += 1
                    if loss is not None:
                        losses.append(loss)
                        self.stats.losses.append(loss)
                state["step_s"] = (time.perf_counter() - t0) / h
                state["round"], state["step"], state["h"] = round_ + 1, step, h
                outcome = outer.end_round()
                self.stats.exposed_s += outcome.exposed_s
                round_ += 1
                if cfg.verify_replicas and outcome.applied is not None:
                    self._check_replicas(outer.anchor, f"outer step {outer.outer_steps}")
                self._log(step, round_, sum(losses) / len(losses) if losses else None,
                          {"h": h, "rankCap": controller.rank_cap,
                           "meanRank": self.stats.rank_history[-1] if self.stats.rank_history else None,
                           "payloadBytes": self.stats.payload_history[-1] if self.stats.payload_history else None,
                           "outerSteps": outer.outer_steps, "stepS": round(state["step_s"], 4),
                           "exchangeJobS": round(state["last_job_s"], 4), "exchangeCommS": round(state["last_comm_s"], 4),
                           **({"members": state["members"]} if self.elastic else {})})
                if self.elastic and self._stop_requested():
                    self.stopped = True
                    break
                if cfg.checkpoint.every_rounds and round_ % cfg.checkpoint.every_rounds == 0 and step < self.run_steps:
                    self._save(round_, step, outer, controller, compressor)
            outcome = outer.flush()
            self.stats.exposed_s += outcome.exposed_s
            if cfg.verify_replicas and outcome.applied is not None:
                self._check_replicas(outer.anchor, f"outer step {outer.outer_steps} (flush)")
            if self.stopped:  # SIGTERM (scale down, suspend, lease pause): checkpoint, then leave the job
                self._save(round_, step, outer, controller, compressor)
                if self.topo.stages > 1:
                    dist.barrier(group=self.pgs.group)
                if self.topo.first_stage:
                    exchange.leave("stopped")
                self.progress.emit("stopped", round=round_, step=step)
        finally:
            exchange.close()
        self.steps_done, self.rounds_done = step, round_
        self.outer, self.controller, self.compressor = outer, controller, compressor

    def _stop_requested(self) -> bool:
        """SIGTERM seen by any stage of this group (all stages stop at the same round)."""
        flag = torch.tensor([1.0 if STOP.is_set() else 0.0])
        if self.topo.stages > 1:
            dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self.pgs.group)
        return bool(flag.item() > 0)

    def _join_elastic(self, exchange: ElasticExchange, outer: OuterLoop, controller: CommController,
                      compressor: ErrorFeedbackCompressor | None, on_result: Any, step: int, round_: int) -> tuple[int, int]:
        """Join the job's rounds. Founding (no round has closed): start where the checkpoint (or
        step 0) is. Otherwise, with p the last round anyone has posted: replay every closed round
        after this worker's outer state (its checkpoint, or the initial weights) through the same
        outer steps and controller updates the live groups took, until p stops moving, then train
        from round p + 2 at step E_p + h_{p+1} (delayed: the result of p + 1 is fetched in the
        background, as live groups wait for it) or from round p + 1 at E_p (synchronous). The
        anchor is then bitwise the live groups'."""
        def shared(values: list[float]) -> list[float]:  # stage 0 decides, the group's stages follow
            t = torch.tensor(values, dtype=torch.float64)
            if self.topo.stages > 1:
                dist.broadcast(t, src=0, group=self.pgs.group)
            return t.tolist()

        info = exchange.join(self.cfg.stages) if self.topo.first_stage else None
        founding, first = shared([float(info["founding"]), float(info["firstRound"])] if info else [0.0, 0.0])
        if founding:
            self.membership["joinedAtRound"] = round_ + 1
            self.progress.emit("joined", founding=True, round=round_ + 1, step=step)
            return step, round_
        delayed = self.cfg.diloco.delayed_overlap
        if outer.outer_steps + 1 < int(first):
            raise CoordinatorError(f"the coordinator keeps rounds from {int(first)}; this worker's state has "
                                   f"{outer.outer_steps} outer steps (resume from a later checkpoint)")
        outer.pending = None  # the checkpoint's in-flight average is round outer_steps + 1: fetched below
        if compressor is not None:
            for e in compressor.residual:  # what this group had not sent belongs to its old trajectory
                e.zero_()
        t0 = time.perf_counter()
        h_after = {outer.outer_steps: controller.h}  # controller.h after consuming n results

        def replay(upto: int) -> None:
            while outer.outer_steps < upto:
                res = exchange.fetch(outer.outer_steps + 1)
                on_result(res)
                outer._apply(res)
                h_after[outer.outer_steps] = controller.h

        p, end_p = -1, 0
        for _ in range(1000):  # catch up: replaying a round is much faster than training one
            head = exchange.head() if self.topo.first_stage else None
            new_p, new_end = shared([float(head["lastPosted"]), float(head["endStepOfLastPosted"])] if head else [0.0, 0.0])
            if int(new_p) == p:
                break
            p, end_p = int(new_p), int(new_end)
            replay(p - 1 if delayed else p)
        if delayed:
            # round p+1's H was set after results <= p-1; round p+2 starts where p+1 ends
            h_next = h_after.get(p - 1, controller.h)
            start, join_round = min(end_p + h_next, self.run_steps), p + 2
            replay(p)
            if start < self.run_steps:
                outer.pending = exchange.submit_fetch(p + 1)
        else:
            start, join_round = min(end_p, self.run_steps), p + 1
        replayed = outer.outer_steps - min(h_after)
        with torch.no_grad():
            outer._reset_local()  # x <- anchor, round start <- x
        self.membership["joinedAtRound"] = join_round
        if self.cfg.verify_replicas:
            self._check_replicas(outer.anchor, f"outer step {outer.outer_steps} (joined)")
        self.progress.emit("joined", founding=False, round=join_round, step=start, lastPosted=p, replayedRounds=replayed,
                           outerSteps=outer.outer_steps, replayS=round(time.perf_counter() - t0, 3))
        return start, join_round - 1

    # --- evaluation, checkpoints ------------------------------------------------------------
    def held_out_loss(self) -> float | None:
        """Mean token cross-entropy on the fixed held-out windows (groups share the work)."""
        g, G = self.topo.group, self.topo.groups
        idx = torch.arange(g, self.held_x.shape[0], G)
        total, count = 0.0, 0
        bs = self.cfg.data.batch_size
        self.model.eval()
        for i in range(0, idx.numel(), bs):
            sel = idx[i: i + bs]
            s = self.pipe.eval_loss_sum(self.held_x[sel], self.held_y[sel])
            if s is not None:
                total += s
                count += self.held_y[sel].numel()
        self.model.train()
        t = torch.tensor([total, float(count)], dtype=torch.float64)
        dist.all_reduce(t, group=self.sync_coll.pg)  # tiny; excluded from the training meters
        return float(t[0] / t[1]) if self.topo.last_stage else None

    def _save(self, round_: int, step: int, outer: OuterLoop | None, controller: CommController | None,
              compressor: ErrorFeedbackCompressor | None) -> None:
        if self.store is None:
            return
        state: dict[str, Any] = {"jobId": self.cfg.job_id, "method": self.cfg.method, "round": round_, "step": step,
                                 "tokens": step * self.tokens_per_step, "group": self.group,
                                 "stage": self.topo.stage, "model": self.model.state_dict(),
                                 "innerOptimizer": self.opt.state_dict()}
        if outer is not None:
            pending = None
            if outer.pending is not None:  # delayed mode: keep the in-flight average, applied on resume
                pending = outer.pending.result().average
            state.update(anchor=outer.anchor, roundStart=outer.start, outerMomentum=outer.momentum,
                         outerSteps=outer.outer_steps,
                         pendingAverage=pending)
        if controller is not None:
            state.update(h=controller.h, rankCap=controller.rank_cap)
        state["residual"] = compressor.residual if compressor is not None else None
        state["compressorCalls"] = compressor.calls if compressor is not None else 0
        key = checkpoint_key(self.cfg.checkpoint.prefix, round_, self.group, self.topo.stage)
        digest, size = save_checkpoint(self.store, self.cfg.checkpoint.bucket, key, state)
        self.progress.emit("checkpoint", round=round_, step=step, bucket=self.cfg.checkpoint.bucket, key=key,
                           sha256=digest, bytes=size)

    def resume_from(self) -> str:
        """DEAI_RESUME_FROM (set by the operator) wins over checkpoint.resumeFrom."""
        return (self.rv.resume_from or self.cfg.checkpoint.resume_from or "").rstrip("/")

    def load_resume_state(self) -> dict[str, Any] | None:
        ck, where = self.cfg.checkpoint, self.resume_from()
        if not where or self.store is None:
            return None
        key = f"{where}/group-{self.group}-stage-{self.topo.stage}.pt"
        if self.elastic and not self._exists(ck.bucket, key):
            # A group new to the job (scale-up, or moved) told to start from the job's latest
            # checkpoint round: take another group's file of that round. Only its outer state
            # matters: joining resets the weights to the anchor and zeroes the residual.
            for g in range(max(self.job_groups, self.group + 1) + 8):
                other = f"{where}/group-{g}-stage-{self.topo.stage}.pt"
                if g != self.group and self._exists(ck.bucket, other):
                    self.progress.emit("resumeFromOtherGroup", fromKey=other)
                    return load_checkpoint(self.store, ck.bucket, other)
            self.progress.emit("resumeSkipped", fromKey=where, reason=f"no checkpoint of this stage under {where}")
            return None
        return load_checkpoint(self.store, ck.bucket, key)

    def _exists(self, bucket: str, key: str) -> bool:
        try:
            self.store.get(bucket, key + ".sha256")  # type: ignore[union-attr]
            return True
        except FileNotFoundError:
            return False
        except Exception as exc:  # S3: NoSuchKey / 404
            if "NoSuchKey" in str(exc) or "404" in str(exc) or "Not Found" in str(exc):
                return False
            raise

    # --- entry --------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        self.setup()
        resume = self.load_resume_state()
        if resume is not None:
            if resume["method"] != self.cfg.method:
                raise ValueError(f"checkpoint is from method {resume['method']}, job says {self.cfg.method}")
            self.model.load_state_dict(resume["model"])
            self.opt.load_state_dict(resume["innerOptimizer"])
            self.progress.emit("resumed", fromKey=self.resume_from(), step=resume["step"],
                               round=resume["round"])
        dist.barrier()
        wire0 = _read_tx_bytes(self.rv.wire_iface)
        self.t_start = time.perf_counter()
        if self.cfg.method == "allreduce":
            self.run_allreduce(resume)
            self.outer = None
        else:
            self.run_diloco(resume)
        wall = time.perf_counter() - self.t_start
        wire1 = _read_tx_bytes(self.rv.wire_iface)
        if self.cfg.verify_replicas:
            self._check_replicas(self.params, "end")
        full = self.steps_done == self.total_steps
        held = self.held_out_loss() if full else None
        if self.cfg.checkpoint.final and full:
            self._save(self.rounds_done, self.steps_done, getattr(self, "outer", None),
                       getattr(self, "controller", None), getattr(self, "compressor", None))
        sent = self.stage_coll.meter.bytes_sent + self.control_coll.meter.bytes_sent
        summary = {
            "method": self.cfg.method, "innerSteps": self.steps_done, "rounds": self.rounds_done,
            "tokens": self.steps_done * self.tokens_per_step, "wallS": round(wall, 4),
            "tokensPerS": round((self.steps_done - self.start_step) * self.tokens_per_step / wall, 3),
            "bytesSent": int(sent), "bytesSentPerInnerStep": round(sent / max(1, self.steps_done), 2),
            "exposedCommS": round(self.stats.exposed_s, 4), "commS": round(self.stage_coll.meter.comm_s, 4),
            "heldOutLoss": held, "stageParams": count_parameters(self.model),
            "wireTxBytes": (wire1 - wire0) if wire0 is not None and wire1 is not None else None,
            "finalTrainLoss": (sum(self.stats.losses[-20:]) / len(self.stats.losses[-20:])) if self.stats.losses else None,
            "trainLosses": [round(x, 6) for x in self.stats.losses] if self.topo.last_stage else None,
            "hHistory": self.stats.h_history, "meanRankHistory": [round(r, 2) for r in self.stats.rank_history],
            "payloadBytesHistory": self.stats.payload_history, "replicaChecks": self.stats.replica_checks,
            "outerSteps": self.outer.outer_steps if self.outer is not None else None,
            "finalDigest": params_digest(self.params).hex(),
            "group": self.group, "elastic": self.elastic, "stopped": self.stopped,
        }
        if self.elastic:
            summary["joinedAtRound"] = self.membership["joinedAtRound"]
        if resume is not None:
            summary["resumedFromStep"] = int(resume["step"])
        self.progress.emit("summary", **summary)
        dist.barrier()
        dist.destroy_process_group()
        return summary

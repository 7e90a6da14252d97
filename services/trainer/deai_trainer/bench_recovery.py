"""Benchmark: recovering one failed group (elastic) against restarting the whole job.

    /usr/bin/python3 -m deai_trainer.bench_recovery --out ../../bench/results/recovery.json [--repeats 3]

One run, one machine, two groups (one stage each) in elastic mode behind one exchange
coordinator. The harness does what the operator's local runtime does (kill, tell the
coordinator the group left, restart with DEAI_RESUME_FROM = the group's last checkpoint);
it acts the moment it has killed, so detection latency is the same (zero) in both cases.
Per repeat, alternately:

  group failure   SIGKILL group 1 a few steps after one of its checkpoints; restart it alone
                  from that checkpoint. Measured: failure -> group 1 training again (its
                  `joined` line: the next instruction is an inner step) and -> its first round
                  done; the survivor's steps during the outage and whether it was left out of
                  any round it posted (tokens lost by it); group 1's steps since its checkpoint.
  warm spare      the same, but group 1 is replaced by a warm spare started beforehand
                  (DEAI_STANDBY=1: torch imported, data read and verified, waiting on stdin for
                  its group): what is left is the checkpoint load, the join and the replay.
  full restart    SIGKILL every group a few steps after their latest common checkpoint and
                  restart all of them from it (RecreateAll), with a new coordinator.
                  Measured: failure -> the last group training again; tokens lost by all.

Then one scale-up: start group 2; measured: start -> group 2 training (joined) and -> its
first round as a member. Ratios are against the same run's full restart. Last, what a missing
group costs in loss: the same job run twice to the end of a fixed budget, uninterrupted and with
group 1 away for `--outage-rounds` rounds; held-out loss of the final (identical) anchors.
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from . import __version__
from .coordinator import Coordinator, make_server
from .corpus import generate
from .launch import ElasticGroup
from .layout import build_layout, write_manifest

BATCH, CONTEXT, H = 8, 64, 10


class Harness:
    def __init__(self, root: Path, cfg: dict[str, Any]) -> None:
        self.root, self.cfg = root, cfg
        self.cfg_path = root / "job.json"
        self.cfg_path.write_text(json.dumps(cfg))
        self.groups: dict[int, ElasticGroup] = {}
        self.spares: list[ElasticGroup] = []
        self.killed: set[int] = set()
        self.attempt: dict[int, int] = {}
        self.server = None
        self.coord: Coordinator | None = None
        self.url = ""

    def new_coordinator(self, groups: int) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        self.coord = Coordinator(timeout_s=30, groups=groups)
        self.server = make_server(self.coord)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self, group: int, groups: int, resume: str | None = None) -> ElasticGroup:
        n = self.attempt.get(group, -1) + 1
        self.attempt[group] = n
        env = {"DEAI_RESUME_FROM": resume} if resume else None
        g = ElasticGroup(self.cfg_path, self.root, group, 1, groups, self.url, env=env, tag=f"-a{n}")
        self.groups[group] = g
        self.killed.discard(group)
        return g

    def spare(self) -> ElasticGroup:
        """A warm spare gang (torch and data loaded), waiting for a group."""
        n = self.attempt.get(-1, -1) + 1
        self.attempt[-1] = n
        sp = ElasticGroup(self.cfg_path, self.root, -1, 1, 2, self.url, tag=f"-spare{n}", standby=True)
        self.spares.append(sp)
        self.wait("the spare ready", sp.ready)
        return sp

    def promote(self, spare: ElasticGroup, group: int, groups: int, resume: str | None) -> None:
        self.spares.remove(spare)
        self.attempt[group] = self.attempt.get(group, -1) + 1
        spare.assign(group, self.url, {"DEAI_GROUPS": str(groups), **({"DEAI_RESUME_FROM": resume} if resume else {})})
        self.groups[group] = spare
        self.killed.discard(group)

    def kill(self, group: int) -> None:
        self.groups[group].kill()
        self.killed.add(group)
        assert self.coord is not None
        self.coord.leave(group, "killed")

    def events(self, group: int, event: str) -> list[dict[str, Any]]:
        return [e for e in self.groups[group].events() if e["event"] == event]

    def last_step(self, group: int) -> int:
        return max((e["step"] for e in self.events(group, "progress")), default=0)

    def wait(self, what: str, probe, timeout_s: float = 180.0):
        deadline = time.monotonic() + timeout_s
        while True:
            v = probe()
            if v:
                return v
            for gid, g in self.groups.items():
                if gid not in self.killed and any(p.poll() not in (None, 0) for p in g.procs):
                    raise RuntimeError(f"group {gid} died while waiting for {what}:\n{g.stderr()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            time.sleep(0.01)

    def close(self) -> None:
        for g in [*self.groups.values(), *self.spares]:
            g.kill()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def _ckpt_dir(e: dict[str, Any]) -> str:
    return e["key"].rsplit("/", 1)[0]


def group_failure(hx: Harness, warm: bool = False) -> dict[str, Any]:
    spare = hx.spare() if warm else None  # ready before the failure, as a kept spare would be
    cks = hx.events(1, "checkpoint")
    base = cks[-1]["round"] if cks else 0
    ck = hx.wait("a new group-1 checkpoint", lambda: next((e for e in hx.events(1, "checkpoint") if e["round"] > base), None))
    hx.wait("group 1 past its checkpoint", lambda: hx.last_step(1) >= ck["step"] + H)
    survivor_before = hx.last_step(0)
    t_fail = time.time()
    hx.kill(1)
    died_at = hx.last_step(1)
    ck = hx.events(1, "checkpoint")[-1]  # the last one it reported
    if spare is not None:
        hx.promote(spare, 1, 2, _ckpt_dir(ck))
    else:
        hx.start(1, 2, resume=_ckpt_dir(ck))
    joined = hx.wait("group 1 joined", lambda: next(iter(hx.events(1, "joined")), None))
    first = hx.wait("group 1's first round", lambda: next(iter(hx.events(1, "progress")), None))
    survivor_after = hx.last_step(0)
    assert hx.coord is not None
    return {
        "failureToTrainingS": round(joined["time"] - t_fail, 3),
        "failureToFirstRoundS": round(first["time"] - t_fail, 3),
        "replayedRounds": joined["replayedRounds"], "replayS": joined["replayS"],
        "survivorStepsDuringOutage": survivor_after - survivor_before,
        "failedGroupTokensLost": (died_at - ck["step"]) * BATCH * CONTEXT,
        "resumedFromStep": ck["step"], "attempt": hx.attempt[1], "warmSpare": warm,
    }


def full_restart(hx: Harness) -> dict[str, Any]:
    def common() -> dict[str, Any] | None:
        r0 = {e["round"]: e for e in hx.events(0, "checkpoint")}
        both = [e for e in hx.events(1, "checkpoint") if e["round"] in r0]
        return both[-1] if both else None
    cks = common()
    base = cks["round"] if cks else 0
    ck = hx.wait("a new common checkpoint", lambda: (lambda c: c if c and c["round"] > base else None)(common()))
    hx.wait("both groups past it", lambda: min(hx.last_step(0), hx.last_step(1)) >= ck["step"] + H)
    t_fail = time.time()
    for gid in list(hx.groups):
        hx.groups[gid].kill()
    died = {gid: hx.last_step(gid) for gid in (0, 1)}
    ck = common()
    assert ck is not None
    hx.new_coordinator(2)
    for gid in (0, 1):
        hx.start(gid, 2, resume=_ckpt_dir(ck))
    joined = hx.wait("both joined", lambda: (lambda js: js if all(js) else None)(
        [next(iter(hx.events(gid, "joined")), None) for gid in (0, 1)]))
    firsts = hx.wait("both first rounds", lambda: (lambda fs: fs if all(fs) else None)(
        [next(iter(hx.events(gid, "progress")), None) for gid in (0, 1)]))
    return {
        "failureToTrainingS": round(max(j["time"] for j in joined) - t_fail, 3),
        "failureToFirstRoundS": round(max(f["time"] for f in firsts) - t_fail, 3),
        "tokensLostPerGroup": {str(gid): (died[gid] - ck["step"]) * BATCH * CONTEXT for gid in (0, 1)},
        "resumedFromStep": ck["step"],
    }


def scale_up(hx: Harness) -> dict[str, Any]:
    # what the operator passes a new group: the job's latest checkpoint
    ck = hx.wait("a group-0 checkpoint", lambda: (hx.events(0, "checkpoint") or [None])[-1])
    t0 = time.time()
    hx.start(2, 3, resume=_ckpt_dir(ck))
    joined = hx.wait("group 2 joined", lambda: next(iter(hx.events(2, "joined")), None))
    member = hx.wait("group 2 a member", lambda: next((e for e in hx.events(2, "progress") if 2 in (e.get("members") or [])), None))
    hx.kill(2)  # scale back down (killed: the leave is what matters to the others)
    return {"startToTrainingS": round(joined["time"] - t0, 3), "startToFirstMemberRoundS": round(member["time"] - t0, 3),
            "replayedRounds": joined["replayedRounds"], "replayS": joined["replayS"]}


def loss_cost(root: Path, base: dict[str, Any], steps: int, outage_rounds: int) -> dict[str, Any]:
    """What a missing group costs in loss: the same job (same seed, data, steps) run twice, once
    uninterrupted and once with group 1 killed after a checkpoint and kept out for
    `outage_rounds` rounds of group 0 before it rejoins; held-out loss of the final anchor."""
    out: dict[str, Any] = {"innerSteps": steps, "outageRounds": outage_rounds}
    for label in ("uninterrupted", "withOutage"):
        d = root / f"loss-{label}"
        d.mkdir()
        cfg = {**base, "jobId": f"loss-{label}", "budget": {"tokens": 2 * BATCH * CONTEXT * steps},
               "checkpoint": {**base["checkpoint"], "prefix": f"jobs/loss-{label}"}}
        hx = Harness(d, cfg)
        try:
            hx.new_coordinator(2)
            hx.start(0, 2)
            hx.start(1, 2)
            if label == "withOutage":
                ck = hx.wait("group 1's round-6 checkpoint",
                             lambda: next((e for e in hx.events(1, "checkpoint") if e["round"] >= 6), None))
                hx.kill(1)
                ck = hx.events(1, "checkpoint")[-1]
                died = max(e["round"] for e in hx.events(1, "progress"))
                hx.wait("group 0 trains on", lambda: max((e["round"] for e in hx.events(0, "progress")), default=0)
                        >= died + outage_rounds)
                hx.start(1, 2, resume=_ckpt_dir(ck))
            codes = {gid: g.wait(900) for gid, g in hx.groups.items()}
            if any(c != [0] for c in codes.values()):
                raise RuntimeError(f"loss run {label} failed: {codes}\n" + "\n".join(g.stderr()[-2000:] for g in hx.groups.values()))
            summaries = [next(e for e in hx.groups[gid].events() if e["event"] == "summary") for gid in (0, 1)]
            assert summaries[0]["finalDigest"] == summaries[1]["finalDigest"], "anchors differ at the end"
            out[label] = {"heldOutLoss": round(summaries[0]["heldOutLoss"], 5)}
            if label == "withOutage":
                joined = next(e for e in hx.events(1, "joined"))
                out[label]["group1StepsMissed"] = joined["step"] - ck["step"]
                out[label]["group1ShareMissedPct"] = round(100 * (joined["step"] - ck["step"]) / steps, 1)
        finally:
            hx.close()
    a, b = out["uninterrupted"]["heldOutLoss"], out["withOutage"]["heldOutLoss"]
    out["lossIncreasePct"] = round(100 * (b - a) / a, 2)
    return out


def survivor_missed_rounds(hx: Harness) -> list[int]:
    """Rounds group 0 posted (this coordinator's life) without being in their average."""
    assert hx.coord is not None
    state = hx.coord.state()
    posted = {e["round"] for e in hx.events(0, "progress")}
    return [r["round"] for r in state["rounds"] if r["round"] in posted and 0 not in r["members"]]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--loss-steps", type=int, default=400, help="inner steps of each loss-cost run (0: skip)")
    ap.add_argument("--outage-rounds", type=int, default=10)
    args = ap.parse_args(argv)
    t_start = time.time()
    with tempfile.TemporaryDirectory(prefix="deai-recovery-") as tmp:
        root = Path(tmp)
        data = {}
        for name, size, seed in (("train", 2_000_000, 1), ("heldOut", 100_000, 2)):
            m = build_layout(generate(size, seed), root / "store", name=name, k=4, m=2, shard_size=65536)
            write_manifest(m, root / f"{name}.json")
            data[name] = str(root / f"{name}.json")
        cfg = {
            "jobId": "recovery", "method": "diloco-x", "seed": 1,
            "model": {"contextLength": CONTEXT, "dModel": 128, "nLayers": 4, "nHeads": 4},
            "pipeline": {"stages": 1},
            "data": {"train": data["train"], "heldOut": data["heldOut"], "batchSize": BATCH, "heldOutTokens": 4096},
            "budget": {"tokens": 2 * BATCH * CONTEXT * 1_000_000},  # the run ends when the measurements do
            "diloco": {"innerSteps": H},
            "checkpoint": {"endpoint": f"file://{root / 'ckpt'}", "bucket": "ck", "prefix": "jobs/recovery", "everyRounds": 2},
            "verifyReplicas": False, "timeoutS": 120,
        }
        hx = Harness(root, cfg)
        group_runs, warm_runs, full_runs, missed = [], [], [], []
        try:
            hx.new_coordinator(2)
            hx.start(0, 2)
            hx.start(1, 2)
            for i in range(args.repeats):
                print(f"recovery: repeat {i + 1}/{args.repeats}: group failure", file=sys.stderr, flush=True)
                group_runs.append(group_failure(hx))
                missed += survivor_missed_rounds(hx)
                print(f"recovery: repeat {i + 1}/{args.repeats}: group failure, warm spare", file=sys.stderr, flush=True)
                warm_runs.append(group_failure(hx, warm=True))
                missed += survivor_missed_rounds(hx)
                print(f"recovery: repeat {i + 1}/{args.repeats}: full restart", file=sys.stderr, flush=True)
                full_runs.append(full_restart(hx))
            print("recovery: scale up", file=sys.stderr, flush=True)
            added = scale_up(hx)
            missed += survivor_missed_rounds(hx)
        finally:
            hx.close()
        loss = None
        if args.loss_steps:
            print("recovery: what a missing group costs in loss (two runs)", file=sys.stderr, flush=True)
            loss = loss_cost(root, cfg, args.loss_steps, args.outage_rounds)
    w_med = statistics.median(r["failureToTrainingS"] for r in warm_runs)
    w_first = statistics.median(r["failureToFirstRoundS"] for r in warm_runs)
    g_med = statistics.median(r["failureToTrainingS"] for r in group_runs)
    f_med = statistics.median(r["failureToTrainingS"] for r in full_runs)
    g_first = statistics.median(r["failureToFirstRoundS"] for r in group_runs)
    f_first = statistics.median(r["failureToFirstRoundS"] for r in full_runs)
    survivor_lost = [r["tokensLostPerGroup"]["0"] for r in full_runs]
    doc = {
        "benchmark": "recovery", "version": __version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "setup": {"groups": 2, "stagesPerGroup": 1, "model": cfg["model"], "batchSize": BATCH, "innerSteps": H,
                  "checkpointEveryRounds": 2, "repeats": args.repeats,
                  "harness": "kill -9, coordinator leave, restart with DEAI_RESUME_FROM (what the local runtime does), "
                             "zero detection latency in both cases; full restart = every group from the latest common "
                             "checkpoint with a new coordinator"},
        "groupFailure": group_runs,
        "groupFailureWarmSpare": warm_runs,
        "fullRestart": full_runs,
        "scaleUp": added,
        "lossCostOfMissingGroup": loss,
        "summary": {
            "groupRecoveryS": g_med, "fullRestartS": f_med,
            "groupRecoveryOverFullRestart": round(g_med / f_med, 3) if f_med else None,
            "groupRecoveryWarmSpareS": w_med,
            "groupRecoveryWarmSpareOverFullRestart": round(w_med / f_med, 3) if f_med else None,
            "groupRecoveryWarmSpareFirstRoundS": w_first,
            "groupRecoveryFirstRoundS": g_first, "fullRestartFirstRoundS": f_first,
            "groupRecoveryOverFullRestartFirstRound": round(g_first / f_first, 3) if f_first else None,
            "tokensLostBySurvivorPerGroupFailure": 0 if not missed else None,
            "survivorRoundsLeftOut": missed,
            "tokensLostBySurvivorPerFullRestart": survivor_lost,
            "tokensLostByFailedGroupPerFailure": [r["failedGroupTokensLost"] for r in group_runs + warm_runs],
            # training capacity lost: groups not training x seconds (survivors train on in a group failure)
            "groupSecondsIdlePerGroupFailure": g_med, "groupSecondsIdlePerFullRestart": round(2 * f_med, 3),
            "timeToAddGroupS": added["startToTrainingS"],
            "timeToAddGroupFirstMemberRoundS": added["startToFirstMemberRoundS"],
        },
        "goals": {"groupRecoveryOverFullRestart": {"target": "<= 0.5"},
                  "groupRecoveryWarmSpareOverFullRestart": {"target": "<= 0.5"},
                  "tokensLostBySurvivor": {"target": 0}},
        "wallS": round(time.time() - t_start, 1),
    }
    s = doc["summary"]
    doc["goals"]["groupRecoveryOverFullRestart"]["met"] = s["groupRecoveryOverFullRestart"] is not None and s["groupRecoveryOverFullRestart"] <= 0.5
    doc["goals"]["groupRecoveryWarmSpareOverFullRestart"]["met"] = (
        s["groupRecoveryWarmSpareOverFullRestart"] is not None and s["groupRecoveryWarmSpareOverFullRestart"] <= 0.5)
    doc["goals"]["tokensLostBySurvivor"]["met"] = not missed
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc["summary"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

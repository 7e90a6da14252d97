"""Start one job's workers as local processes (tests, the benchmark, laptops).

Each group may be wrapped in a command prefix (e.g. `ip netns exec <ns>`) and given its
own environment (e.g. GLOO_SOCKET_IFNAME). Returns every worker's parsed JSON lines.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PYTHON = "/usr/bin/python3"
PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class GroupSpec:
    prefix: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class JobResult:
    returncodes: list[int]
    events: list[list[dict[str, Any]]]  # per rank
    stderr: list[str]

    @property
    def ok(self) -> bool:
        return all(rc == 0 for rc in self.returncodes)

    def of(self, event: str) -> list[dict[str, Any]]:
        return [e for evs in self.events for e in evs if e.get("event") == event]


def run_job(config: dict[str, Any], groups: int, stages: int, *, master_addr: str = "127.0.0.1",
            port: int | None = None, group_specs: list[GroupSpec] | None = None,
            extra_env: dict[str, str] | None = None, timeout_s: float = 600.0) -> JobResult:
    port = port or free_port()
    specs = group_specs or [GroupSpec() for _ in range(groups)]
    with tempfile.TemporaryDirectory(prefix="deai-job-") as tmp:
        cfg_path = Path(tmp) / "job.json"
        cfg_path.write_text(json.dumps(config))
        procs, outs, errs = [], [], []
        for g in range(groups):
            for s in range(stages):
                rank = g * stages + s
                env = {**os.environ, "MASTER_ADDR": master_addr, "MASTER_PORT": str(port),
                       "WORLD_SIZE": str(groups * stages), "RANK": str(rank), "DEAI_GROUP": str(g),
                       "DEAI_STAGE": str(s), "PYTHONPATH": str(PACKAGE_ROOT), "OMP_NUM_THREADS": "1",
                       **(extra_env or {}), **specs[g].env}
                out = open(Path(tmp) / f"rank{rank}.out", "w+")
                err = open(Path(tmp) / f"rank{rank}.err", "w+")
                cmd = [*specs[g].prefix, PYTHON, "-m", "deai_trainer.worker", "--config", str(cfg_path)]
                procs.append(subprocess.Popen(cmd, env=env, stdout=out, stderr=err, cwd=str(PACKAGE_ROOT)))
                outs.append(out)
                errs.append(err)
        deadline = time.monotonic() + timeout_s
        codes = []
        try:
            for p in procs:
                codes.append(p.wait(timeout=max(1.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            for p in procs:
                if p.poll() is None:
                    p.kill()
            codes = [p.wait() for p in procs]
            codes = [c if c != 0 else -9 for c in codes]
        except BaseException:  # interrupted: never leave workers behind
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            raise
        events, stderr = [], []
        for out, err in zip(outs, errs):
            out.seek(0)
            err.seek(0)
            evs = []
            for line in out:
                line = line.strip()
                if line.startswith("{"):
                    try:
                        evs.append(json.loads(line))
                    except json.JSONDecodeError:
                        pass
            events.append(evs)
            stderr.append(err.read())
            out.close()
            err.close()
        return JobResult(codes, events, stderr)


def parse_events(text: str) -> list[dict[str, Any]]:
    evs = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                evs.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return evs


class ElasticGroup:
    """One group of an elastic job: its own torch.distributed world (its stages), started as
    local processes that meet the other groups only at the coordinator (DEAI_EXCHANGE).

    `standby=True` starts warm spares (DEAI_STANDBY=1: torch imported, data read and verified)
    that train only once `assign` gives them a group."""

    def __init__(self, cfg_path: Path, workdir: Path, group: int, stages: int, groups: int, exchange_url: str,
                 env: dict[str, str] | None = None, tag: str = "", standby: bool = False) -> None:
        self.group, self.stages, self.procs, self.outs, self.errs = group, stages, [], [], []
        self.assignment = {"MASTER_ADDR": "127.0.0.1", "WORLD_SIZE": str(stages), "DEAI_GROUPS": str(groups),
                           "DEAI_EXCHANGE": exchange_url}
        for s in range(stages):
            e = {**os.environ, "PYTHONPATH": str(PACKAGE_ROOT), "OMP_NUM_THREADS": "1"}
            if standby:
                e["DEAI_STANDBY"] = "1"
            else:
                e.update(self._env(group, s, free_port() if s == 0 else self._port, env))
            out = open(workdir / f"g{group}{tag}-s{s}.out", "w+")
            err = open(workdir / f"g{group}{tag}-s{s}.err", "w+")
            self.procs.append(subprocess.Popen([PYTHON, "-m", "deai_trainer.worker", "--config", str(cfg_path)], env=e,
                                               stdout=out, stderr=err, cwd=str(PACKAGE_ROOT),
                                               stdin=subprocess.PIPE if standby else subprocess.DEVNULL))
            self.outs.append(out)
            self.errs.append(err)

    def _env(self, group: int, stage: int, port: int, extra: dict[str, str] | None) -> dict[str, str]:
        self._port = port
        return {**self.assignment, "MASTER_PORT": str(port), "RANK": str(stage), "DEAI_GROUP": str(group),
                "DEAI_STAGE": str(stage), **(extra or {})}

    def ready(self) -> bool:
        """Warm spares: every stage has loaded torch and the data."""
        return all(any(e["event"] == "standby" for e in parse_events(open(o.name).read())) for o in self.outs)

    def assign(self, group: int, exchange_url: str, env: dict[str, str] | None = None) -> None:
        """Give warm spares their group: one JSON line of rendezvous variables on each stage's stdin."""
        self.group = group
        self.assignment["DEAI_EXCHANGE"] = exchange_url
        port = free_port()
        for s, p in enumerate(self.procs):
            assert p.stdin is not None
            p.stdin.write((json.dumps(self._env(group, s, port, env)) + "\n").encode())
            p.stdin.flush()

    def events(self) -> list[dict[str, Any]]:
        evs = []
        for out in self.outs:
            out.flush()
            with open(out.name) as f:
                evs.extend(parse_events(f.read()))
        return evs

    def stderr(self) -> str:
        text = []
        for err in self.errs:
            with open(err.name) as f:
                text.append(f.read())
        return "\n".join(text)

    def wait(self, timeout_s: float) -> list[int]:
        deadline = time.monotonic() + timeout_s
        try:
            return [p.wait(timeout=max(1.0, deadline - time.monotonic())) for p in self.procs]
        except BaseException:
            self.kill()
            raise

    def kill(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()


if __name__ == "__main__":  # tiny manual driver: python -m deai_trainer.launch job.json groups stages
    cfg = json.loads(Path(sys.argv[1]).read_text())
    res = run_job(cfg, int(sys.argv[2]), int(sys.argv[3]))
    for evs in res.events:
        for e in evs:
            print(json.dumps(e))
    for i, e in enumerate(res.stderr):
        if e.strip():
            print(f"--- rank {i} stderr ---\n{e}", file=sys.stderr)
    sys.exit(0 if res.ok else 1)

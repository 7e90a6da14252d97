"""The elastic outer exchange: pseudo-gradients go through the job's coordinator
(deai_trainer/coordinator.py) instead of a cross-group collective, so groups join and
leave between rounds.

Same interface as exchange.OuterExchange (submit -> Future[ExchangeResult], one background
thread, jobs in submission order), plus `fetch` for replaying a closed round and `join` /
`leave`. Averages are computed by every worker from the same member payloads in the same
(group) order, so they are bitwise identical across live replicas.
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch

from .comm import LinkMeter
from .compression import ErrorFeedbackCompressor
from .coordinator import decode_result
from .exchange import ExchangeResult


class CoordinatorError(RuntimeError):
    pass


@dataclass
class ElasticResult(ExchangeResult):
    members: list[int] | None = None
    member: bool = True  # was this group part of the round


class CoordinatorClient:
    def __init__(self, url: str, timeout_s: float) -> None:
        self.url = url.rstrip("/")
        self.http_timeout = 3 * timeout_s + 60

    def _call(self, method: str, path: str, body: bytes | None = None, ctype: str = "application/json") -> bytes:
        req = urllib.request.Request(self.url + path, data=body, method=method,
                                     headers={"Content-Type": ctype} if body is not None else {})
        try:
            with urllib.request.urlopen(req, timeout=self.http_timeout) as resp:
                return resp.read()
        except urllib.error.HTTPError as exc:
            raise CoordinatorError(f"{method} {path}: HTTP {exc.code}: {exc.read().decode(errors='replace')}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise CoordinatorError(f"{method} {path}: {exc}") from exc

    def json(self, method: str, path: str, doc: Any | None = None) -> Any:
        body = json.dumps(doc).encode() if doc is not None else None
        return json.loads(self._call(method, path, body))

    def post_bytes(self, path: str, data: bytes) -> None:
        self._call("POST", path, data, "application/octet-stream")

    def get_bytes(self, path: str) -> bytes:
        return self._call("GET", path)


def _flatten(delta: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([d.reshape(-1).float() for d in delta])


class ElasticExchange:
    def __init__(self, client: CoordinatorClient, group: int, stage: int, shapes: list[torch.Size],
                 compressor: ErrorFeedbackCompressor | None, meter: LinkMeter) -> None:
        self.client, self.group, self.stage = client, group, stage
        self.shapes = [torch.Size(s) for s in shapes]
        self.compressor, self.meter = compressor, meter
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="elastic-exchange")

    # --- membership --------------------------------------------------------------------------
    def join(self, stages: int) -> dict[str, Any]:
        return self.client.json("POST", "/join", {"group": self.group, "stages": stages})

    def head(self) -> dict[str, Any]:
        return self.client.json("GET", "/head")

    def leave(self, why: str) -> None:
        self.client.json("POST", "/leave", {"group": self.group, "why": why})

    # --- one round ---------------------------------------------------------------------------
    def submit(self, delta: list[torch.Tensor], rank_cap: int, stats: list[float] | None, *, round_: int,
               step: int, h: int) -> "Future[ElasticResult]":
        return self.pool.submit(self._run, [d.detach().clone() for d in delta], rank_cap, stats, round_, step, h)

    def submit_fetch(self, round_: int) -> "Future[ElasticResult]":
        return self.pool.submit(self.fetch, round_)

    def _run(self, delta: list[torch.Tensor], rank_cap: int, stats: list[float] | None, round_: int, step: int,
             h: int) -> ElasticResult:
        started = time.perf_counter()
        local = self.compressor.propose_ranks(delta, rank_cap) if self.compressor is not None else None
        q = f"?round={round_}&stage={self.stage}&group={self.group}"
        t0 = time.perf_counter()
        agreed = self.client.json("POST", "/propose" + q, {"ranks": local, "stats": stats, "step": step, "h": h})
        net = time.perf_counter() - t0
        started = time.perf_counter()  # every member has proposed: time the job from here
        sent = 0
        if agreed["member"]:
            if self.compressor is not None:
                payload, _own = self.compressor.encode([int(r) for r in agreed["ranks"]])
                data = payload.numpy().tobytes()
            else:
                data = _flatten(delta).numpy().tobytes()
            t0 = time.perf_counter()
            self.client.post_bytes("/payload" + q, data)
            net += time.perf_counter() - t0
            sent = len(data)
        elif self.compressor is not None:
            self.compressor.defer()  # not in the round: keep the whole delta for the next one
        res = self.fetch(round_)
        self.meter.add(sent, net + res.comm_s)
        return ElasticResult(res.average, res.agreed_stats, res.ranks, sent, net + res.comm_s,
                             time.perf_counter() - started, res.members, bool(agreed["member"]))

    def fetch(self, round_: int) -> ElasticResult:
        """The final average of a closed round (blocks until it is final)."""
        t0 = time.perf_counter()
        header, blobs = decode_result(self.client.get_bytes(f"/result?round={round_}&stage={self.stage}"))
        comm = time.perf_counter() - t0
        if not blobs:
            raise CoordinatorError(f"round {round_} stage {self.stage} has no contributions")
        ranks = [int(r) for r in header["ranks"]] if header.get("ranks") is not None else None
        avg = [torch.zeros(s, dtype=torch.float32) for s in self.shapes]
        for blob in blobs:  # group order, the same on every replica
            t = torch.frombuffer(bytearray(blob), dtype=torch.uint8)
            if self.compressor is not None:
                parts = self.compressor.decode(t, ranks)
            else:
                flat = t.view(torch.float32)
                parts, off = [], 0
                for s in self.shapes:
                    n = s.numel()
                    parts.append(flat[off: off + n].view(s))
                    off += n
            for a, part in zip(avg, parts):
                a.add_(part.view_as(a))
        for a in avg:
            a.div_(len(blobs))
        return ElasticResult(avg, header.get("stats"), ranks, 0, comm, comm, header["members"], True)

    def close(self) -> None:
        self.pool.shutdown(wait=True)

"""The elastic outer-exchange coordinator: one small HTTP server per job.

In elastic mode every group is its own torch.distributed world (its pipeline stages), and
the outer (DiLoCoX) exchange between groups goes through this server instead of a
collective, so a group can die, restart from its checkpoint and rejoin while the others
keep training (torchft's per-step quorum, Prime Intellect's elastic device mesh).

Per round r, two phases, each keyed by (round, stage):

  propose  every worker posts {ranks, stats, step, h}. The round *closes* (its membership
           is fixed) when every expected group has posted all of its stages, or `timeout_s`
           after the first post. Members are the groups that posted all stages before the
           close; the answer is the agreed ranks of the stage (max over members) and the
           agreed controller stats (max over every member's every stage). A group that
           posts after the close is not a member of r; it gets the same answer (so its
           controller stays in step) and must not send a payload.
  payload  members post their payload for (r, stage). The (r, stage) result is final when
           every member's payload is in, or `timeout_s` after the close (missing members
           are left out of that stage's average).

`GET /result` returns the final member payloads of (r, stage) in group order, with the
agreed ranks and stats; every worker decodes and averages them in that order, so the
anchor is bitwise identical on every live replica. Results are kept for the job's life:
a rejoining group replays rounds after its checkpoint from them.

Membership: a group is *expected* (rounds wait for it) from its first post, or from its
join when no round has begun (founding groups). It stops being expected when it misses a
close (timeout), misses its payload, or leaves (`POST /leave`, sent by the operator when
it sees the group's processes exit, and by a group that stops on SIGTERM).

Join (`POST /join`): before any round has closed, the group is founding and starts at its
checkpoint (or from scratch); `--groups N` makes groups 0..N-1 expected from the start. Otherwise, with p the highest round anyone has posted, it is told p and
E_p (the step at the end of round p, also `GET /head`); it replays results after its
checkpoint until it has caught up and trains from round p + 2 (delayed) or p + 1
(synchronous; see trainer.Worker._join_elastic).

    /usr/bin/python3 -m deai_trainer.coordinator --port 0 --timeout-s 10
prints {"event": "listening", "port": N} on stdout once it serves.
"""
from __future__ import annotations

import argparse
import json
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


def _max_lists(lists: list[list[float] | None]) -> list[float] | None:
    present = [x for x in lists if x is not None]
    if not present:
        return None
    return [max(col) for col in zip(*present)]


@dataclass
class _Round:
    number: int
    first_post: float | None = None
    posts: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)  # (group, stage) -> body
    closed_at: float | None = None
    closed_by: str = ""
    members: list[int] = field(default_factory=list)
    agreed_ranks: dict[int, list[int] | None] = field(default_factory=dict)
    agreed_stats: list[float] | None = None
    end_step: int = 0
    h: int = 0
    payloads: dict[int, dict[int, bytes]] = field(default_factory=dict)  # stage -> group -> bytes
    final: dict[int, list[int]] = field(default_factory=dict)            # stage -> members in the average
    late: set[int] = field(default_factory=set)


class Coordinator:
    """The state machine, independent of HTTP (unit-testable, one lock)."""

    def __init__(self, timeout_s: float = 10.0, clock=time.monotonic, groups: int = 0) -> None:
        self.timeout_s = timeout_s
        self.clock = clock
        self.cond = threading.Condition()
        self.rounds: dict[int, _Round] = {}
        # the job's groups at start: the first round waits for them (up to the timeout)
        self.expected: set[int] = set(range(groups))
        self.stages: int | None = None
        self.events: list[dict[str, Any]] = []
        self.unsettled: set[int] = set()  # rounds not closed, or with a stage not final yet
        self.max_posted = 0

    # --- helpers (lock held) -------------------------------------------------------------
    def _event(self, kind: str, **fields: Any) -> None:
        self.events.append({"event": kind, "t": round(self.clock(), 3), **fields})

    def _round(self, r: int) -> _Round:
        if r not in self.rounds:
            self.rounds[r] = _Round(r)
            self.unsettled.add(r)
        return self.rounds[r]

    def _settle_check(self, rd: _Round) -> None:
        if rd.closed_at is not None and len(rd.final) >= (self.stages or 1):
            self.unsettled.discard(rd.number)

    def _recheck(self) -> None:
        for r in sorted(self.unsettled):
            rd = self.rounds[r]
            self._try_close(rd)
            for s in range(self.stages or 1):
                self._try_finalize(rd, s)

    def _complete_groups(self, rd: _Round) -> set[int]:
        stages = self.stages or 1
        by_group: dict[int, int] = {}
        for (g, _s) in rd.posts:
            by_group[g] = by_group.get(g, 0) + 1
        return {g for g, n in by_group.items() if n >= stages}

    def _try_close(self, rd: _Round) -> None:
        if rd.closed_at is not None or rd.first_post is None:
            return
        complete = self._complete_groups(rd)
        if not complete:
            return
        if self.expected <= complete:
            how = "all"
        elif self.clock() >= rd.first_post + self.timeout_s:
            how = "timeout"
        else:
            return
        rd.closed_at, rd.closed_by = self.clock(), how
        rd.members = sorted(complete)
        stages = self.stages or 1
        for s in range(stages):
            rd.agreed_ranks[s] = _max_lists([rd.posts[(g, s)].get("ranks") for g in rd.members])  # type: ignore[misc]
            rd.payloads.setdefault(s, {})
        rd.agreed_stats = _max_lists([rd.posts[(g, s)].get("stats") for g in rd.members for s in range(stages)])
        rd.end_step = max(int(rd.posts[(g, s)].get("step", 0)) for g in rd.members for s in range(stages))
        rd.h = max(int(rd.posts[(g, s)].get("h", 0)) for g in rd.members for s in range(stages))
        missing = self.expected - complete
        for g in missing:
            self.expected.discard(g)
            self._event("dropped", group=g, round=rd.number, why="missed the round's close")
        self._event("closed", round=rd.number, members=rd.members, how=how)
        self.cond.notify_all()

    def _try_finalize(self, rd: _Round, stage: int) -> None:
        if rd.closed_at is None or stage in rd.final:
            return
        got = rd.payloads.get(stage, {})
        waiting = [g for g in rd.members if g not in got and g in self.expected]
        if waiting and self.clock() < rd.closed_at + self.timeout_s:
            return
        rd.final[stage] = sorted(g for g in rd.members if g in got)
        self._settle_check(rd)
        for g in rd.members:
            if g not in got and g in self.expected:
                self.expected.discard(g)
                self._event("dropped", group=g, round=rd.number, stage=stage, why="no payload")
        self.cond.notify_all()

    def _wait(self, ready, deadline: float) -> bool:
        """Wait (lock held) until ready() or the deadline; re-checks closes as time passes."""
        while not ready():
            left = deadline - self.clock()
            if left <= 0:
                return False
            self.cond.wait(min(left, 0.05))
            self._recheck()
        return True

    def last_posted(self) -> int:
        return self.max_posted

    # --- operations ----------------------------------------------------------------------
    def join(self, group: int, stages: int) -> dict[str, Any]:
        with self.cond:
            if self.stages is None:
                self.stages = stages
            elif self.stages != stages:
                raise ValueError(f"group {group} has {stages} stages, the job's groups have {self.stages}")
            p = self.last_posted()
            # founding: no round has closed, so it can still take part in the first one
            founding = not any(rd.closed_at is not None for rd in self.rounds.values())
            if founding:
                self.expected.add(group)
            self._event("joined", group=group, founding=founding, lastPosted=p)
            return {"founding": founding, **self._head()}

    def _head(self) -> dict[str, Any]:
        p = self.last_posted()
        end_p = 0
        if p:  # E_p: the step at the end of round p, from the posts seen so far
            end_p = max(int(b.get("step", 0)) for b in self.rounds[p].posts.values())
        return {"lastPosted": p, "endStepOfLastPosted": end_p, "firstRound": min(self.rounds) if self.rounds else 0}

    def head(self) -> dict[str, Any]:
        with self.cond:
            return self._head()

    def leave(self, group: int, why: str) -> None:
        with self.cond:
            if group in self.expected:
                self.expected.discard(group)
            self._event("left", group=group, why=why)
            self._recheck()
            self.cond.notify_all()

    def propose(self, r: int, stage: int, group: int, body: dict[str, Any], wait_s: float) -> dict[str, Any]:
        with self.cond:
            if self.stages is None:
                raise ValueError("propose before any join")
            rd = self._round(r)
            if rd.closed_at is not None:
                rd.late.add(group)
                if group not in self.expected:
                    self.expected.add(group)  # it is training: wait for it from the next round on
                    self._event("rejoined", group=group, round=r + 1)
            else:
                rd.posts[(group, stage)] = body
                self.max_posted = max(self.max_posted, r)
                if rd.first_post is None:
                    rd.first_post = self.clock()
                if group not in self.expected:
                    self.expected.add(group)
                    self._event("member", group=group, round=r)
                self._try_close(rd)
                self.cond.notify_all()
            if not self._wait(lambda: rd.closed_at is not None, self.clock() + wait_s):
                raise TimeoutError(f"round {r} did not close within {wait_s} s")
            return {"member": group in rd.members, "members": rd.members, "ranks": rd.agreed_ranks.get(stage),
                    "stats": rd.agreed_stats}

    def payload(self, r: int, stage: int, group: int, data: bytes) -> None:
        with self.cond:
            rd = self.rounds.get(r)
            if rd is None or rd.closed_at is None or group not in rd.members:
                raise ValueError(f"group {group} is not a member of round {r}")
            if stage in rd.final:
                raise ValueError(f"round {r} stage {stage} is already final")
            rd.payloads.setdefault(stage, {})[group] = data
            self._try_finalize(rd, stage)
            self.cond.notify_all()

    def result(self, r: int, stage: int, wait_s: float) -> tuple[dict[str, Any], list[bytes]]:
        with self.cond:
            deadline = self.clock() + wait_s

            def ready() -> bool:
                rd = self.rounds.get(r)
                return rd is not None and stage in rd.final
            if not self._wait(ready, deadline):
                raise TimeoutError(f"round {r} stage {stage} has no result after {wait_s} s")
            rd = self.rounds[r]
            members = rd.final[stage]
            blobs = [rd.payloads[stage][g] for g in members]
            return ({"round": r, "stage": stage, "members": members, "sizes": [len(b) for b in blobs],
                     "ranks": rd.agreed_ranks.get(stage), "stats": rd.agreed_stats, "endStep": rd.end_step,
                     "h": rd.h}, blobs)

    def state(self) -> dict[str, Any]:
        with self.cond:
            return {"expected": sorted(self.expected), "stages": self.stages, "timeoutS": self.timeout_s,
                    "rounds": [{"round": rd.number, "members": rd.members, "closedBy": rd.closed_by,
                                "late": sorted(rd.late), "endStep": rd.end_step,
                                "final": {str(s): m for s, m in sorted(rd.final.items())}}
                               for rd in sorted(self.rounds.values(), key=lambda x: x.number) if rd.closed_at is not None],
                    "events": list(self.events)}


def encode_result(header: dict[str, Any], blobs: list[bytes]) -> bytes:
    h = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack(">I", len(h)) + h + b"".join(blobs)


def decode_result(data: bytes) -> tuple[dict[str, Any], list[bytes]]:
    (n,) = struct.unpack(">I", data[:4])
    header = json.loads(data[4: 4 + n])
    blobs, off = [], 4 + n
    for size in header["sizes"]:
        blobs.append(data[off: off + size])
        off += size
    return header, blobs


def make_server(coord: Coordinator, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _reply(self, status: int, body: bytes, ctype: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the worker that asked was killed while it waited

        def _json(self, status: int, doc: Any) -> None:
            self._reply(status, json.dumps(doc).encode())

        def _handle(self, method: str) -> None:
            url = urlparse(self.path)
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            n = int(self.headers.get("Content-Length", "0") or 0)
            raw = self.rfile.read(n) if n else b""
            try:
                if method == "GET" and url.path == "/healthz":
                    return self._json(200, {"ok": True})
                if method == "GET" and url.path == "/head":
                    return self._json(200, coord.head())
                if method == "GET" and url.path == "/state":
                    return self._json(200, coord.state())
                if method == "POST" and url.path == "/join":
                    doc = json.loads(raw)
                    return self._json(200, coord.join(int(doc["group"]), int(doc["stages"])))
                if method == "POST" and url.path == "/leave":
                    doc = json.loads(raw)
                    coord.leave(int(doc["group"]), str(doc.get("why", "")))
                    return self._json(200, {"ok": True})
                if method == "POST" and url.path == "/propose":
                    out = coord.propose(int(q["round"]), int(q["stage"]), int(q["group"]), json.loads(raw),
                                        float(q.get("wait", 3 * coord.timeout_s + 30)))
                    return self._json(200, out)
                if method == "POST" and url.path == "/payload":
                    coord.payload(int(q["round"]), int(q["stage"]), int(q["group"]), raw)
                    return self._json(200, {"ok": True})
                if method == "GET" and url.path == "/result":
                    header, blobs = coord.result(int(q["round"]), int(q["stage"]),
                                                 float(q.get("wait", 3 * coord.timeout_s + 30)))
                    return self._reply(200, encode_result(header, blobs), "application/octet-stream")
                return self._json(404, {"error": f"no route {method} {url.path}"})
            except (KeyError, ValueError, json.JSONDecodeError) as exc:
                return self._json(400, {"error": f"{type(exc).__name__}: {exc}"})
            except TimeoutError as exc:
                return self._json(504, {"error": str(exc)})

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--timeout-s", type=float, default=10.0, help="round quorum and payload timeout")
    ap.add_argument("--groups", type=int, default=0, help="groups 0..N-1 are expected from the first round")
    args = ap.parse_args(argv)
    server = make_server(Coordinator(args.timeout_s, groups=args.groups), args.host, args.port)
    print(json.dumps({"event": "listening", "host": args.host, "port": server.server_address[1]}), flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

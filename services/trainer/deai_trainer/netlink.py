"""Two network namespaces joined by a veth pair, shaped with `tc tbf` (netem-free).

Group 0 lives in namespace A (10.213.0.1), group 1 in namespace B (10.213.0.2). Traffic
between the stages of one group stays inside its namespace (loopback), so only the
cross-group exchange crosses the shaped link. Everything created here is deleted on exit,
on exceptions and on SIGINT/SIGTERM.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from types import FrameType

ADDR_A, ADDR_B = "10.213.0.1", "10.213.0.2"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def _tc(ns: str, *args: str) -> None:
    subprocess.run(["tc", "-n", ns, *args], check=True, capture_output=True, text=True)


class ShapedLink:
    def __init__(self) -> None:
        tag = f"{os.getpid() % 100000}"
        self.ns = (f"deai-trb-{tag}-a", f"deai-trb-{tag}-b")
        self.dev = (f"dtr{tag}a", f"dtr{tag}b")
        self.addr = (ADDR_A, ADDR_B)
        self._created: list[str] = []
        self._old_handlers: dict[int, object] = {}
        self.rate_mbit: float | None = None

    # -- lifecycle --------------------------------------------------------------------------
    def __enter__(self) -> "ShapedLink":
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old_handlers[sig] = signal.signal(sig, self._on_signal)
        try:
            for ns in self.ns:
                _ip("netns", "add", ns)
                self._created.append(ns)
            _ip("link", "add", self.dev[0], "type", "veth", "peer", "name", self.dev[1])
            for ns, dev, addr in zip(self.ns, self.dev, self.addr):
                _ip("link", "set", dev, "netns", ns)
                _ip("-n", ns, "addr", "add", f"{addr}/30", "dev", dev)
                _ip("-n", ns, "link", "set", dev, "up")
                _ip("-n", ns, "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise
        return self

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.close()
        sys.exit(128 + signum)

    def close(self) -> None:
        for ns in reversed(self._created):  # deleting a namespace deletes its veth end too
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self._created = []

    def __exit__(self, *exc: object) -> None:
        self.close()
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]

    # -- shaping -----------------------------------------------------------------------------
    def set_rate(self, mbit: float | None) -> None:
        """Token-bucket shape both directions to `mbit` (None: unshaped veth)."""
        for ns, dev in zip(self.ns, self.dev):
            subprocess.run(["tc", "-n", ns, "qdisc", "del", "dev", dev, "root"], capture_output=True)
            if mbit is not None:
                rate_bytes = mbit * 1e6 / 8
                burst = max(16 * 1024, int(rate_bytes / 250))  # >= rate/HZ and a few MTUs
                _tc(ns, "qdisc", "add", "dev", dev, "root", "tbf", "rate", f"{mbit}mbit",
                    "burst", str(burst), "latency", "50ms")
        self.rate_mbit = mbit

    def prefix(self, group: int) -> list[str]:
        return ["ip", "netns", "exec", self.ns[group]]

    def measure_mbit(self, seconds: float = 1.5) -> float:
        """Bulk TCP throughput A -> B through the shaped link, as the workers will see it."""
        port = 29400 + os.getpid() % 500
        server = subprocess.Popen(self.prefix(1) + [sys.executable, "-c", _SINK, ADDR_B, str(port)],
                                  stdout=subprocess.PIPE, text=True)
        try:
            time.sleep(0.4)
            out = subprocess.run(self.prefix(0) + [sys.executable, "-c", _SOURCE, ADDR_B, str(port), str(seconds)],
                                 capture_output=True, text=True, check=True, timeout=60)
            return float(out.stdout.strip())
        finally:
            server.wait(timeout=30)


_SINK = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1); c, _ = s.accept()
while c.recv(1 << 16):
    pass
c.sendall(b"k"); c.close()
"""

_SOURCE = """
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
buf = b"x" * 65536; n = 0; t0 = time.perf_counter(); end = t0 + float(sys.argv[3])
while time.perf_counter() < end:
    s.sendall(buf); n += len(buf)
s.shutdown(socket.SHUT_WR); s.recv(1)
print(n * 8 / (time.perf_counter() - t0) / 1e6)
"""


def namespaces_available() -> tuple[bool, str]:
    """Can we create (and delete) a namespace and a veth pair here?"""
    probe = f"deai-trb-probe-{os.getpid() % 100000}"
    try:
        _ip("netns", "add", probe)
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        return False, f"ip netns add failed: {getattr(exc, 'stderr', exc)}".strip()
    try:
        _ip("-n", probe, "link", "add", "dtrprobea", "type", "veth", "peer", "name", "dtrprobeb")
        subprocess.run(["tc", "-V"], check=True, capture_output=True)
        return True, "ok"
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        return False, f"veth/tc unavailable: {getattr(exc, 'stderr', exc)}".strip()
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)


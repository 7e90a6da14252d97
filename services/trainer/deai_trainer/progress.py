"""Progress as JSON lines (one object per line) on stdout or a file, for the operator."""
from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any, TextIO


class Progress:
    def __init__(self, job_id: str, rank: int, group: int, stage: int, path: str | None = None) -> None:
        self.base = {"jobId": job_id, "rank": rank, "group": group, "stage": stage}
        self._out: TextIO = open(path, "a", buffering=1) if path else sys.stdout
        self._lock = threading.Lock()

    def emit(self, event: str, **fields: Any) -> None:
        line = json.dumps({"event": event, "time": round(time.time(), 3), **self.base, **fields},
                          separators=(",", ":"), default=float)
        with self._lock:
            self._out.write(line + "\n")
            self._out.flush()

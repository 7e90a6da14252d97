"""Worker CLI: one process = one pipeline stage of one group.

    MASTER_ADDR=… MASTER_PORT=… WORLD_SIZE=… RANK=… DEAI_GROUP=… DEAI_STAGE=… \\
        /usr/bin/python3 -m deai_trainer.worker --config job.yaml

JSON lines go to stdout (or $DEAI_PROGRESS); diagnostics to stderr. Exit 0 on success,
2 on a configuration error, 3 on a data integrity error, 1 otherwise.
"""
from __future__ import annotations

import argparse
import signal
import sys
import traceback

from .config import ConfigError, load_job, rendezvous_from_env
from .dataset import ContentDigestError, ShardIntegrityError
from .manifest import ManifestError
from .progress import Progress


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="job config (.json, .yaml or .yml)")
    args = ap.parse_args(argv)
    try:
        cfg = load_job(args.config)
        rv = rendezvous_from_env(cfg.stages)
        if rv.elastic and cfg.method == "allreduce":
            raise ConfigError("method allreduce averages every step across groups: it needs one world, not DEAI_EXCHANGE")
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    progress = Progress(cfg.job_id, rv.rank, rv.group, rv.stage, rv.progress_path)
    from .trainer import STOP, Worker  # imports torch; keep --help and config errors fast
    if rv.elastic:  # SIGTERM: checkpoint at the next round end, leave the job, exit 0
        signal.signal(signal.SIGTERM, lambda *_: STOP.set())
    try:
        Worker(cfg, rv, progress).run()
    except (ShardIntegrityError, ContentDigestError, ManifestError) as exc:
        progress.emit("error", kind=type(exc).__name__, message=str(exc))
        print(f"data integrity error: {exc}", file=sys.stderr)
        return 3
    except Exception as exc:  # report, then fail the pod so the operator restarts the group
        progress.emit("error", kind=type(exc).__name__, message=str(exc))
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

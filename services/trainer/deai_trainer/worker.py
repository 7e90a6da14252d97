"""Worker CLI: one process = one pipeline stage of one group.

    MASTER_ADDR=… MASTER_PORT=… WORLD_SIZE=… RANK=… DEAI_GROUP=… DEAI_STAGE=… \\
        /usr/bin/python3 -m deai_trainer.worker --config job.yaml

JSON lines go to stdout (or $DEAI_PROGRESS); diagnostics to stderr. Exit 0 on success,
2 on a configuration error, 3 on a data integrity error, 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import traceback

from .config import ConfigError, load_job, rendezvous_from_env, standby_from_env, with_env
from .dataset import ContentDigestError, ShardIntegrityError
from .manifest import ManifestError
from .progress import Progress


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="job config (.json, .yaml or .yml)")
    args = ap.parse_args(argv)
    data = None
    try:
        cfg = load_job(args.config)
        if standby_from_env():
            # warm spare: pay for torch and the verified data reads now, train when assigned
            from .dataset import read_dataset
            from .manifest import load_manifest
            try:
                data = (read_dataset(load_manifest(cfg.data.train)), read_dataset(load_manifest(cfg.data.held_out)))
            except (ShardIntegrityError, ContentDigestError, ManifestError) as exc:
                print(f"data integrity error: {exc}", file=sys.stderr)
                return 3
            from . import trainer as _warm  # noqa: F401  (imports torch)
            print(json.dumps({"event": "standby", "ready": True}), flush=True)
            line = sys.stdin.readline()
            if not line.strip():
                return 0  # released without an assignment
            try:
                assignment = json.loads(line)
            except ValueError as exc:
                raise ConfigError(f"standby assignment is not a JSON object: {exc}") from exc
            if not isinstance(assignment, dict):
                raise ConfigError("standby assignment must be a JSON object of environment variables")
            rv = rendezvous_from_env(cfg.stages, with_env(assignment))
        else:
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
        Worker(cfg, rv, progress, data=data).run()
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

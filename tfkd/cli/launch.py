"""`python -m tfkd.launch`: run `tfkd.train` as N MultiWorkerMirroredStrategy workers on this machine.

Each worker is a `python -m tfkd.train <flags> --strategy=multi_worker`
process with its own `TF_CONFIG` (a localhost cluster on free ports); worker 0
is the chief. `--batch_size` stays the global batch: every step splits it
across all workers' replicas. Only the chief writes the run's workdir
(checkpoints, model, logs, results.json); the others write a scratch copy that
is removed when they finish, and read the chief's checkpoints to resume.

The chief's output is printed; worker i's goes to `<workdir>/launch/worker-<i>.log`.
When a worker fails, the others are stopped and its exit status is returned;
SIGTERM is passed on to every worker (they checkpoint and exit with 75).

On several machines, start the same `python -m tfkd.train ... --strategy=multi_worker`
on each host yourself with a `TF_CONFIG` naming every host.

Example:
    python -m tfkd.launch --workers=2 -- --flagfile=configs/kd.flags --glue_dir=../shared/glue --workdir=runs/kd2
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from typing import List, Optional, Sequence

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_integer("workers", 2, "Worker processes to start on this machine.")
flags.DEFINE_integer("stop_grace_seconds", 60, "After one worker fails, how long the others get to stop before being killed.")


def free_ports(count: int) -> List[int]:
    """`count` distinct TCP ports that were free on localhost a moment ago."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in sockets]


def tf_configs(ports: Sequence[int]) -> List[str]:
    """One `TF_CONFIG` per worker of a localhost cluster; worker 0 is the chief."""
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    return [json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}) for i in range(len(ports))]


def flag_value(args: Sequence[str], name: str) -> Optional[str]:
    """The last `--name=value` in `args` (None when absent)."""
    value = None
    for arg in args:
        if arg.startswith(f"--{name}="):
            value = arg.split("=", 1)[1]
    return value


def launch(train_args: Sequence[str], workers: int, log_dir: str) -> int:
    """Starts the workers, waits for them, returns the first failing exit status (0 when all succeed)."""
    os.makedirs(log_dir, exist_ok=True)
    processes: List[subprocess.Popen] = []
    logs = []
    for index, config in enumerate(tf_configs(free_ports(workers))):
        env = dict(os.environ, TF_CONFIG=config, PYTHONUNBUFFERED="1")
        command = [sys.executable, "-m", "tfkd.train", *train_args, "--strategy=multi_worker"]
        if index == 0:
            out = None
        else:
            out = open(os.path.join(log_dir, f"worker-{index}.log"), "w")
            logs.append(out)
        processes.append(subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT if out else None))

    def forward(signum, frame):
        for process in processes:
            if process.poll() is None:
                process.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        status = 0
        while any(p.poll() is None for p in processes):
            failed = [p.returncode for p in processes if p.returncode not in (None, 0)]
            if failed and not status:
                status = failed[0]
                print(f"[tfkd.launch] a worker exited with status {status}; stopping the others", file=sys.stderr, flush=True)
                forward(signal.SIGTERM, None)
                deadline = time.monotonic() + FLAGS.stop_grace_seconds
                while any(p.poll() is None for p in processes) and time.monotonic() < deadline:
                    time.sleep(0.5)
                for process in processes:
                    if process.poll() is None:
                        process.kill()
            time.sleep(0.5)
        return status or next((p.returncode for p in processes if p.returncode), 0)
    finally:
        signal.signal(signal.SIGTERM, previous)
        for out in logs:
            out.close()


def main(argv: List[str]) -> None:
    train_args = argv[1:]
    if FLAGS.workers < 1:
        raise app.UsageError("--workers must be at least 1")
    if any(arg.startswith("--strategy=") for arg in train_args):
        raise app.UsageError("tfkd.launch sets --strategy=multi_worker itself; leave --strategy out of the training flags")
    workdir = flag_value(train_args, "workdir")
    if not workdir:
        raise app.UsageError("pass the training flags after '--', including --workdir=<output directory>")
    print(f"[tfkd.launch] {FLAGS.workers} workers on localhost; worker 0 (chief) prints here, the others log to "
          f"{os.path.join(workdir, 'launch')}", flush=True)
    sys.exit(launch(train_args, FLAGS.workers, os.path.join(workdir, "launch")))


def run() -> None:
    app.run(main)


if __name__ == "__main__":
    run()

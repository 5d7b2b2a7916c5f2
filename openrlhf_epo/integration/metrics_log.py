"""`--logger.jsonl_path FILE`: every logged training step and evaluation as one JSON line, next to wandb / tensorboard.

A line is {"kind": "train" | "eval", "step": global_step, "time": unix seconds, <metric>: value, ...}: the keys
OpenRLHF logs (train metrics under their plain names, eval metrics as `eval_*`). Lines are appended and flushed one
by one, so a crash loses nothing already logged. A step is logged before its checkpoint is saved, so a run killed in
between has logged steps its resume will redo: when a run starts, `keep_steps_up_to` moves the lines of steps after
the one it resumes from to `<file>.superseded` (and drops a line the kill cut short), so the file holds each step
once. `openrlhf-epo plot` reads these files.
"""
import json
import math
import os
import time
from typing import Dict

from openrlhf_epo.integration.checkpoints import replace_file


def add_logging_arguments(parser) -> None:
    parser.add_argument("--logger.jsonl_path", type=str, default=None,
                        help="append every logged train step and evaluation to this JSON-lines file (openrlhf-epo)")


def _number(value):
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return None if isinstance(value, float) and math.isnan(value) else value
    return None


def _path(args):
    return getattr(getattr(args, "logger", None), "jsonl_path", None)


def keep_steps_up_to(args, global_step: int) -> int:
    """At the start of a run resuming from global_step (0: a fresh start): move every line of a later step to
    `<file>.superseded`, drop a torn last line, rewrite the file atomically. The number of lines moved."""
    path = _path(args)
    if not path or not os.path.exists(path):
        return 0
    with open(path) as handle:
        lines = handle.read().splitlines()
    kept, later = [], []
    for number, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
            step = int(row["step"])
        except (ValueError, KeyError, TypeError):
            if number == len(lines):
                continue  # the kill cut the last write short
            raise ValueError(f"{path}, line {number}: not a metrics line ({line[:80]!r}); --logger.jsonl_path files "
                             "hold one JSON object with a \"step\" per line") from None
        (kept if step <= global_step else later).append(line)
    if len(kept) == len(lines):
        return 0
    if later:
        with open(f"{path}.superseded", "a") as handle:
            handle.write("".join(line + "\n" for line in later))
        print(f"openrlhf-epo: {path}: {len(later)} line(s) of steps after {global_step}, which this run redoes, "
              f"moved to {path}.superseded", flush=True)
    replace_file(path, "".join(line + "\n" for line in kept))
    return len(later)


def log_metrics(args, kind: str, step: int, logs: Dict) -> None:
    """Append one line for `logs` (numbers only; NaN becomes null) when --logger.jsonl_path is set."""
    path = _path(args)
    if not path:
        return
    row = {"kind": kind, "step": int(step), "time": round(time.time(), 3)}
    for key, value in logs.items():
        if isinstance(value, (int, float, bool)) or hasattr(value, "item"):
            row[key] = _number(value)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "a") as handle:
        handle.write(json.dumps(row) + "\n")
        handle.flush()

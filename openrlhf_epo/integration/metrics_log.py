"""`--logger.jsonl_path FILE`: every logged training step and evaluation as one JSON line, next to wandb / tensorboard.

A line is {"kind": "train" | "eval", "step": global_step, "time": unix seconds, <metric>: value, ...}: the keys
OpenRLHF logs (train metrics under their plain names, eval metrics as `eval_*`). Lines are appended and flushed one
by one, so a crash loses nothing already logged and a resumed run appends to the same file (readers keep the last
line per (kind, step)). `openrlhf-epo plot` reads these files.
"""
import json
import math
import os
import time
from typing import Dict


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


def log_metrics(args, kind: str, step: int, logs: Dict) -> None:
    """Append one line for `logs` (numbers only; NaN becomes null) when --logger.jsonl_path is set."""
    path = getattr(getattr(args, "logger", None), "jsonl_path", None)
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

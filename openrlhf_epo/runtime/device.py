"""Which runtime a process is on: upstream's GPU path, or the CPU runtime.

Upstream's device calls go through DeepSpeed's accelerator API (patch 0006: `get_accelerator().current_device_name()`,
`.synchronize()`, `.set_device()`, `.current_stream()`, `.device_name()`), which is CUDA on a GPU node and DeepSpeed's
CPU accelerator where $DS_ACCELERATOR=cpu (the CPU runtime sets it for every worker). What that API lacks is the
choice itself, before DeepSpeed is imported: this module holds it.

The CPU runtime is on when $OPENRLHF_EPO_DEVICE is "cpu", or when it is unset / "auto" and torch sees no CUDA device.
The driver sets the variable from `--runtime.device` and forwards it to every Ray worker.
"""
import os

import torch

DEVICE_ENV = "OPENRLHF_EPO_DEVICE"
CHOICES = ("auto", "cpu", "cuda")


def requested() -> str:
    value = os.environ.get(DEVICE_ENV, "auto") or "auto"
    if value not in CHOICES:
        raise ValueError(f"${DEVICE_ENV}={value!r} is not one of {', '.join(CHOICES)}")
    return value


def use_cpu() -> bool:
    """True on the CPU runtime."""
    value = requested()
    return value == "cpu" or (value == "auto" and not torch.cuda.is_available())

"""The trainer's device, and upstream's few direct CUDA calls routed through one place.

OpenRLHF calls `torch.cuda.current_device()`, `synchronize()`, `set_device()` and `current_stream()` directly; each
raises on a machine without CUDA. Patch 0005 replaces those calls with these functions, which are the very same
CUDA calls on a GPU (behaviour unchanged) and the CPU equivalents on the CPU runtime: the device "cpu", nothing to
synchronise, no device to select, no stream.

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


def current_device():
    """`torch.cuda.current_device()` (an index) on GPU, `torch.device("cpu")` on the CPU runtime."""
    return torch.device("cpu") if use_cpu() else torch.cuda.current_device()


def device_name() -> str:
    """"cuda:<index>" or "cpu": for `torch.device(...)`."""
    return "cpu" if use_cpu() else f"cuda:{torch.cuda.current_device()}"


def set_device(local_rank: int) -> None:
    if not use_cpu():
        torch.cuda.set_device(local_rank)


def synchronize() -> None:
    if not use_cpu():
        torch.cuda.synchronize()


def current_stream():
    """The current CUDA stream, None on the CPU runtime (the gloo group takes no stream)."""
    return None if use_cpu() else torch.cuda.current_stream()


def device_type() -> str:
    """"cuda" or "cpu": the device type of torch.distributed's device meshes."""
    return "cpu" if use_cpu() else "cuda"

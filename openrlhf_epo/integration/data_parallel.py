"""Sums and maxima over the actor's (or critic's) data-parallel ranks, on the accelerator the ranks train on.

Upstream's DP group (`loss_utils._get_dp_group`) leaves out ring-attention / tensor-parallel peers, which hold copies
of the same samples; without torch.distributed (one process) every reduction is the identity.
"""
import torch
import torch.distributed as dist


def current_device() -> torch.device:
    from deepspeed.accelerator import get_accelerator

    return torch.device(get_accelerator().current_device_name())


def _reduce(values: torch.Tensor, strategy, op) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized():
        from openrlhf.utils.loss_utils import _get_dp_group

        dist.all_reduce(values, op=op, group=_get_dp_group(strategy))
    return values


def all_reduce_sum(values: torch.Tensor, strategy) -> torch.Tensor:
    """`values` summed over the DP ranks, in place."""
    return _reduce(values, strategy, dist.ReduceOp.SUM)


def all_reduce_max(value: int, strategy) -> int:
    return int(_reduce(torch.tensor([value], dtype=torch.long, device=current_device()), strategy,
                       dist.ReduceOp.MAX).item())

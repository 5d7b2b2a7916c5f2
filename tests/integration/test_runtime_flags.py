"""`--runtime.device` through the real, patched `train_ppo_ray` argument parser."""
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "epo_testkit"))
from train_args import parse_train_ppo_args  # noqa: E402

from openrlhf_epo.integration.runtime_flags import DECLARED_GPUS, ray_init_kwargs, runtime_env_vars  # noqa: E402
from openrlhf_epo.runtime import device  # noqa: E402

BASE = ["--actor.model_name_or_path", "m", "--algo.advantage.estimator", "reinforce"]


@pytest.fixture(autouse=True)
def restore_device_env(monkeypatch):
    monkeypatch.delenv(device.DEVICE_ENV, raising=False)
    monkeypatch.delenv("DS_ACCELERATOR", raising=False)


def test_cpu_runtime_switches_what_needs_cuda_and_says_so(capsys, monkeypatch):
    args = parse_train_ppo_args(BASE + ["--runtime.device", "cpu"])
    out = capsys.readouterr().out
    assert args.ds.attn_implementation == "sdpa" and "flash_attention_2 -> sdpa" in out
    assert args.vllm.sync_backend == "gloo" and "--vllm.sync_backend nccl -> gloo" in out
    assert os.environ[device.DEVICE_ENV] == "cpu" and device.use_cpu()
    assert runtime_env_vars() == {device.DEVICE_ENV: "cpu", "DS_ACCELERATOR": "cpu", "VLLM_CPU_KVCACHE_SPACE": "1",
                                  "VLLM_CPU_OMP_THREADS_BIND": "nobind"}
    monkeypatch.setenv("RAY_ADDRESS", "local")  # Ray's own word for "start a Ray here"
    kwargs = ray_init_kwargs()
    assert kwargs["num_gpus"] == DECLARED_GPUS and kwargs["num_cpus"] >= 2 * DECLARED_GPUS and kwargs["include_dashboard"] is False


def test_joining_a_cluster_passes_no_resources(monkeypatch):
    parse_train_ppo_args(BASE + ["--runtime.device", "cpu"])
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")  # Ray refuses num_cpus / num_gpus when joining a cluster
    assert ray_init_kwargs() == {} and runtime_env_vars()["DS_ACCELERATOR"] == "cpu"


@pytest.mark.parametrize("argv, largest", [
    (["--algo.kl.init_coef", "0"], ("actor", 8)),  # upstream's defaults: 1 node x 8 GPUs per group
    (["--actor.num_gpus_per_node", "2", "--algo.kl.init_coef", "0", "--vllm.num_engines", "4"], ("vllm", 4)),
    (["--actor.num_gpus_per_node", "2", "--algo.kl.init_coef", "0", "--vllm.num_engines", "2",
      "--vllm.tensor_parallel_size", "3"], ("vllm", 6)),
    (["--actor.num_gpus_per_node", "1", "--algo.kl.init_coef", "0.01", "--ref.num_nodes", "2"], ("ref", 16)),
    (["--actor.num_gpus_per_node", "1", "--algo.kl.init_coef", "0", "--algo.advantage.estimator", "gae",
      "--critic.model_name_or_path", "m", "--critic.num_gpus_per_node", "3"], ("critic", 3)),
])
def test_the_largest_placement_group_is_counted(argv, largest):
    from openrlhf_epo.integration.runtime_flags import placement_gpus

    groups = placement_gpus(parse_train_ppo_args(BASE + ["--runtime.device", "cpu"] + argv))
    assert max(groups.items(), key=lambda item: item[1]) == largest


def test_auto_is_cpu_here_and_the_gpu_path_is_left_alone(monkeypatch):
    args = parse_train_ppo_args(BASE)  # this machine has no GPU: auto resolves to the CPU runtime
    assert args.runtime.device == "auto" and device.use_cpu() and args.vllm.sync_backend == "gloo"
    with pytest.raises(SystemExit, match="--runtime.device cuda, but torch sees no CUDA device"):
        parse_train_ppo_args(BASE + ["--runtime.device", "cuda"])
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # as on a GPU node: upstream's settings stay
    args = parse_train_ppo_args(BASE)
    assert args.ds.attn_implementation == "flash_attention_2" and args.vllm.sync_backend == "nccl"
    assert not device.use_cpu() and ray_init_kwargs() == {} and "DS_ACCELERATOR" not in runtime_env_vars()


def test_sleep_modes_are_off_on_the_cpu_and_the_users_vllm_settings_win(capsys, monkeypatch):
    args = parse_train_ppo_args(BASE + ["--runtime.device", "cpu", "--train.colocate_all", "--vllm.enable_sleep",
                                        "--ds.enable_sleep"])
    out = capsys.readouterr().out
    assert not args.vllm.enable_sleep and not args.ds.enable_sleep
    assert "--vllm.enable_sleep -> off" in out and "--ds.enable_sleep -> off" in out
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "3")
    assert runtime_env_vars()["VLLM_CPU_KVCACHE_SPACE"] == "3"


@pytest.mark.parametrize("argv, message", [
    (["--ds.packing_samples"], "--ds.packing_samples needs flash-attention (CUDA)"),
    (["--ds.param_dtype", "fp16"], "--ds.param_dtype fp16 does not run on DeepSpeed's CPU accelerator"),
    (["--runtime.device", "tpu"], "invalid choice: 'tpu'"),  # the last --runtime.device wins, and is refused
])
def test_settings_without_a_cpu_equivalent_are_refused(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_train_ppo_args(BASE + ["--runtime.device", "cpu"] + argv)
    assert message in f"{exit_info.value}{capsys.readouterr().err}"


def test_a_bad_device_variable_is_named(monkeypatch):
    monkeypatch.setenv(device.DEVICE_ENV, "gpu0")
    with pytest.raises(ValueError, match=r"\$OPENRLHF_EPO_DEVICE='gpu0' is not one of auto, cpu, cuda"):
        device.use_cpu()


@pytest.mark.parametrize("flags, cpu_dtype, expected", [
    ({"avx2", "avx512f", "avx512_bf16"}, "auto", "bf16"),   # Zen 4 / Cooper Lake: bf16 units
    ({"avx2", "amx_bf16", "amx_tile"}, "auto", "bf16"),     # Sapphire Rapids: AMX
    ({"avx2", "fma"}, "auto", "fp32"),                      # AVX2 only: bf16 would run in torch's reference gemm
    ({"fp", "asimd", "bf16"}, "auto", "bf16"),              # Arm with the BF16 extension
    ({"avx2", "fma"}, "bf16", "bf16"),                      # asked for: kept, whatever the hardware
    ({"avx2", "avx512_bf16"}, "fp32", "fp32"),
])
def test_the_cpu_runtime_computes_in_a_dtype_the_cpu_has_units_for(monkeypatch, capsys, flags, cpu_dtype, expected):
    from openrlhf_epo.runtime import cpu_dtype as module

    monkeypatch.setattr(module, "cpu_flags", lambda: frozenset(flags))  # the boundary: /proc/cpuinfo's flags
    args = parse_train_ppo_args(BASE + ["--runtime.device", "cpu", "--runtime.cpu_dtype", cpu_dtype])
    assert args.ds.param_dtype == expected
    out = capsys.readouterr().out
    assert f"computing in {expected} (--runtime.cpu_dtype {cpu_dtype}: " in out
    assert ("has bf16 units" in out) == bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def test_the_gpu_path_keeps_bf16_whatever_the_cpu(monkeypatch):
    import torch

    from openrlhf_epo.runtime import cpu_dtype as module

    monkeypatch.setattr(module, "cpu_flags", lambda: frozenset({"avx2"}))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert parse_train_ppo_args(BASE).ds.param_dtype == "bf16"
    assert parse_train_ppo_args(BASE + ["--ds.param_dtype", "fp32"]).ds.param_dtype == "fp32"  # upstream's new choice


def test_this_machines_flags_are_read():
    from openrlhf_epo.runtime.cpu_dtype import cpu_flags

    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    line = next((ln for ln in text.splitlines() if ln.split(":")[0].strip() in ("flags", "Features")), None)
    if line is None:
        assert cpu_flags() == frozenset()
    else:
        assert cpu_flags() == frozenset(line.split(":", 1)[1].split())

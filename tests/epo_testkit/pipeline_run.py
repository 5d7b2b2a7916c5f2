"""The real, patched `python -m openrlhf.cli.train_ppo_ray` on the CPU runtime, as the end-to-end tests start it, and
the processes such a run leaves (or must not leave) on this machine.

`train_command` builds the command line of one run: per-turn samples, EPO on, a tiny Qwen2, checkpoints and the
metrics log under `work`; `shape` holds the topology flags (ranks, engines, colocation) the test is about.
"""
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Sequence

VENV = sys.prefix  # the venv: only this installation's processes count (their command lines name its files)

# Ray's daemons, ScienceWorld's JVM, the environments' and vLLM's spawned children
NEEDLES = ("raylet", "gcs_server", "py4j.GatewayServer", "multiprocessing.spawn")

# epo_common.sh's HYBRID_ARGS at two ranks (without --ds.packing_samples: flash-attention only, the CPU runtime pads)
HYBRID_SHAPE = [
    "--actor.num_nodes", "1", "--actor.num_gpus_per_node", "2", "--ref.num_nodes", "1",
    "--ref.num_gpus_per_node", "2", "--vllm.num_engines", "2", "--vllm.tensor_parallel_size", "1",
    "--train.colocate_all", "--vllm.enable_sleep", "--ds.enable_sleep", "--vllm.gpu_memory_utilization", "0.5",
    "--ds.zero_stage", "3",
]


def train_command(work: Path, model: Path, data: Path, *, shape: Sequence[str], estimator: str, episodes: int,
                  train_batch: int, resume: bool = False, extra: Sequence[str] = ()) -> List[str]:
    if estimator == "gae":  # PPO: one prompt per episode, a critic of two ranks
        algo = ["--rollout.batch_size", "2", "--rollout.n_samples_per_prompt", "1",
                "--critic.model_name_or_path", str(model), "--critic.num_nodes", "1",
                "--critic.num_gpus_per_node", "2"]
    else:  # GRPO: a group of two episodes of the same task instance
        algo = ["--rollout.batch_size", "1", "--rollout.n_samples_per_prompt", "2"]
    return [
        sys.executable, "-m", "openrlhf.cli.train_ppo_ray", "--runtime.device", "cpu",
        "--actor.model_name_or_path", str(model), *shape, *algo,
        "--agent.mode", "per_turn", "--agent.max_turns", "3", "--agent.max_response_tokens", "24",
        "--agent.max_prompt_tokens", "1024", "--agent.pool_size", "2",
        "--data.max_len", "1100", "--data.prompt_dataset", str(data), "--data.input_key", "prompt",
        "--data.label_key", "label", "--rollout.micro_batch_size", "1",
        "--train.batch_size", str(train_batch), "--train.micro_batch_size", "1", "--train.num_episodes", str(episodes),
        "--algo.advantage.estimator", estimator, "--algo.kl.init_coef", "0",
        "--actor.epo.enable", "--actor.epo.total_steps", "8",
        "--ckpt.path", str(work / "ckpt"), "--ckpt.save_steps", "1", "--ckpt.output_dir", str(work / "final"),
        "--logger.tensorboard_dir", str(work / "tb"), "--logger.jsonl_path", str(work / "metrics.jsonl"),
        *extra,
    ] + (["--ckpt.load_enable"] if resume else [])


def run(command: List[str], env: dict, timeout: float = 1200):
    """(CompletedProcess, seconds). The driver starts a Ray of its own (RAY_ADDRESS=local) unless env names a
    cluster: ray.init() would otherwise join any cluster another run started on this machine (`ray start`,
    cluster_utils), as a user's driver would."""
    started = time.time()
    env = {"RAY_ADDRESS": "local", **env}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    return done, time.time() - started


def _cmdline(pid: str) -> str:
    return open(f"/proc/{pid}/cmdline").read().replace("\0", " ")


def venv_processes(*needles: str):
    """Live processes of this venv whose command line holds one of the needles (another checkout's Ray or JVMs,
    running alongside, are not this test's business): [(pid, command line)]."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = _cmdline(pid)
            state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and VENV in cmd and any(n in cmd for n in needles):
            found.append((int(pid), cmd[:120]))
    return found


def titled_processes(*titles: str):
    """Processes that retitle themselves, so no venv path is left to match: [(pid, title)]."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = _cmdline(pid)
        except OSError:
            continue
        if cmd.startswith(titles):
            found.append((int(pid), cmd[:60]))
    return found


def engine_processes():
    """vLLM's engine-core and worker processes ("VLLM::...") and the environments' child processes
    ("openrlhf-epo::env-...", envs/subprocess_env.py)."""
    return titled_processes("VLLM::", ENV_TITLE)


ENV_TITLE = "openrlhf-epo::env-"


def left_behind(before, wait_s: float = 30):
    """This venv's Ray / environment / engine processes that appeared after `before` (pids) and are still alive after
    up to wait_s seconds."""
    deadline = time.time() + wait_s
    while True:
        left = [p for p in venv_processes(*NEEDLES) + engine_processes() if p[0] not in before]
        if not left or time.time() > deadline:
            return left
        time.sleep(1)


def alive(pid: int) -> bool:
    """pid runs (an exited process its parent has not reaped yet, a zombie, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def ancestors(pid: int) -> List[int]:
    """pid's parent chain up to init (empty once the process is gone)."""
    chain = []
    try:
        while pid > 1:
            pid = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
            chain.append(pid)
    except OSError:
        pass
    return chain

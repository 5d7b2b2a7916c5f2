#!/usr/bin/env bash
# The main job on a CPU-only machine: set up .venv (idempotent), apply the patch series onto the installed
# OpenRLHF 0.11.2, check the installed stack, then run the CPU training demo: PPO+EPO on ALFWorld in the paper's
# per-turn setting with SmolLM2-135M-Instruct after a short SFT format warm-up
# (examples/scripts/train_ppo_epo_alfworld_cpu.sh). It prints the before / after table and where the logs,
# checkpoints and final model are. Rerunning resumes (every stage skips itself when done).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
export DS_ACCELERATOR=cpu
bash "$ROOT/scripts/patch-venv.sh"
"$ROOT/.venv/bin/openrlhf-epo" selfcheck
bash "$ROOT/examples/scripts/train_ppo_epo_alfworld_cpu.sh"

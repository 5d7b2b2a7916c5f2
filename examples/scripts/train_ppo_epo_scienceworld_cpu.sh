#!/usr/bin/env bash
# PPO+EPO on ScienceWorld on a CPU-only machine: SmolLM2-135M-Instruct, SFT format warm-up on gold paths, then the
# patched train_ppo_ray in the paper's per-turn setting (see cpu_demo_common.sh for the stages).
# Variables: SEED, WORK (output folder), TRAIN_N, EVAL_N, SFT_N, MAX_TURNS, ... (cpu_demo_common.sh).
ENV_NAME=scienceworld
TASKS=${TASKS:-"find-living-thing find-non-living-thing find-plant find-animal"}  # short gold paths (6-8 steps)
SMOOTH_COEF=${SMOOTH_COEF:-0.05}  # table 2 (ScienceWorld)
MAX_PROMPT_TOKENS=${MAX_PROMPT_TOKENS:-1536}  # a room's action list is long; the prompt keeps its head
MICRO_BATCH=${MICRO_BATCH:-1}  # 1,600-token samples: at 4 per micro-batch actor and critic took 9 GB each
source "$(dirname "${BASH_SOURCE[0]}")/cpu_demo_common.sh"

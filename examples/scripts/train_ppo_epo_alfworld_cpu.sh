#!/usr/bin/env bash
# PPO+EPO on ALFWorld on a CPU-only machine: SmolLM2-135M-Instruct, SFT format warm-up, then the patched
# train_ppo_ray in the paper's per-turn setting (see cpu_demo_common.sh for the stages; about 20 minutes on 2 cores).
# Variables: SEED, WORK (output folder), TRAIN_N, EVAL_N, SFT_N, MAX_TURNS, ... (cpu_demo_common.sh).
ENV_NAME=alfworld
TASKS=${TASKS:-"pick_and_place_simple look_at_obj_in_light"}  # the two shortest task types: a 135M model's reach
SMOOTH_COEF=${SMOOTH_COEF:-0.1}  # table 3 (ALFWorld)
source "$(dirname "${BASH_SOURCE[0]}")/cpu_demo_common.sh"

#!/usr/bin/env bash
# Ablation "EPO-Base" on ALFWorld: EPO without the entropy smoothing regularizer, L = L_MT - lambda L_H.
# Appendix B.3 / figure 6 (b,d,f) compares PPO+EPO with PPO+EPO-Base on ALFWorld. ALGO=ppo (default) or ALGO=grpo;
# everything else as the PPO+EPO / GRPO+EPO row (table 3).
# Run it on the head of a Ray cluster of one 8-GPU node (`ray start --head --num-gpus 8`), from any folder (data
# and checkpoints go under the current one unless DATA_DIR / SAVE_DIR say otherwise); LAUNCH="" runs the driver
# without `ray job submit`. Settings shared by every row, and their sources: epo_common.sh.
set -euo pipefail

ENV_NAME=alfworld
ALGO=${ALGO:-ppo}  # ppo | grpo
SEED=${SEED:-0}
MODEL=${MODEL:-Qwen/Qwen2.5-3B-Instruct}  # table 3: foundation model
DATA_DIR=${DATA_DIR:-$PWD/data/epo}  # task datasets (built below when missing)
# checkpoints, final model, tensorboard and metrics.jsonl
SAVE_DIR=${SAVE_DIR:-${SAVE_ROOT:-$PWD/checkpoints/epo}/${ALGO}_epo_base_alfworld_seed${SEED}}

source "$(dirname "${BASH_SOURCE[0]}")/epo_common.sh"

# what this row adds to the common flags
ROW_ARGS=(
  "${EPO_ARGS[@]}"           # EPO as tables 2-3 set it (epo_common.sh)
  --actor.epo.smoothing off  # EPO-Base: no L_smooth (eq. 5-6)
)

# openrlhf-epo data alfworld --split train|iid|ood ... --out $DATA_DIR/...; skipped when the files exist
epo_build_datasets

set -x
# shellcheck disable=SC2086  # LAUNCH is a command prefix, split on purpose
${LAUNCH} python3 -m openrlhf.cli.train_ppo_ray \
   "${COMMON_ARGS[@]}" \
   "${ROW_ARGS[@]}" \
   "${EXTRA_ARGS_ARRAY[@]}"

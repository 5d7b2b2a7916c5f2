#!/usr/bin/env bash
# Model study "PPO+EPO-Decay" on ScienceWorld (section 5.4, appendix B.4.1, figure 7): EPO-Base (no smoothing term)
# whose entropy weight lambda decays exponentially over the K steps instead of staying constant; compare with
# train_ablation_epo_base_scienceworld.sh. ALGO=ppo (the paper's) or ALGO=grpo; everything else as PPO+EPO (table 2).
# Run it on the head of a Ray cluster of one 8-GPU node (`ray start --head --num-gpus 8`), from any folder (data
# and checkpoints go under the current one unless DATA_DIR / SAVE_DIR say otherwise); LAUNCH="" runs the driver
# without `ray job submit`. Settings shared by every row, and their sources: epo_common.sh.
set -euo pipefail

ENV_NAME=scienceworld
ALGO=${ALGO:-ppo}  # ppo | grpo
SEED=${SEED:-0}
MODEL=${MODEL:-Qwen/Qwen2.5-7B-Instruct}  # table 2: foundation model
DATA_DIR=${DATA_DIR:-$PWD/data/epo}  # task datasets (built below when missing)
# checkpoints, final model, tensorboard and metrics.jsonl
SAVE_DIR=${SAVE_DIR:-${SAVE_ROOT:-$PWD/checkpoints/epo}/${ALGO}_epo_decay_scienceworld_seed${SEED}}

source "$(dirname "${BASH_SOURCE[0]}")/epo_common.sh"

# what this row adds to the common flags
ROW_ARGS=(
  --actor.epo.enable
  --actor.epo.smoothing off        # B.4.1: the decay variant of EPO-Base (no L_smooth)
  --actor.epo.coef_schedule decay  # lambda_k = coef (coef_end / coef)^(k / (K-1))
  --actor.epo.coef 0.01            # not in the paper: ten times the tables' lambda = 0.001 ...
  --actor.epo.coef_end 0.0001      # ... down to a tenth of it
  --actor.epo.total_steps 0        # K from the run (table 2: 125)
)

# openrlhf-epo data scienceworld --split train|iid|ood ... --out $DATA_DIR/...; skipped when the files exist
epo_build_datasets

set -x
# shellcheck disable=SC2086  # LAUNCH is a command prefix, split on purpose
${LAUNCH} python3 -m openrlhf.cli.train_ppo_ray \
   "${COMMON_ARGS[@]}" \
   "${ROW_ARGS[@]}" \
   "${EXTRA_ARGS_ARRAY[@]}"

#!/usr/bin/env bash
# Model study "PPO+EA" on ScienceWorld (section 5.4, appendix B.4.2, figures 4b and 8): the entropy-based advantage
# shaping of Cheng et al. 2025 (arXiv 2506.14758), A <- A + min(alpha H.detach(), |A| / kappa), with no entropy term in
# the loss. ALGO=ppo (the paper's) or ALGO=grpo; everything else as the PPO row (table 2).
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
SAVE_DIR=${SAVE_DIR:-${SAVE_ROOT:-$PWD/checkpoints/epo}/${ALGO}_ea_scienceworld_seed${SEED}}

source "$(dirname "${BASH_SOURCE[0]}")/epo_common.sh"

# what this row adds to the common flags
ROW_ARGS=(
  --actor.epo.enable         # the EA shaping lives in EPO's actor hook ...
  --actor.epo.coef 0         # ... with EPO's own loss term off (lambda = 0)
  --actor.epo.smoothing off
  --actor.epo.ea_alpha 0.4   # Cheng et al.'s alpha (the EPO paper gives none)
  --actor.epo.ea_kappa 2.0   # Cheng et al.'s kappa
)

# openrlhf-epo data scienceworld --split train|iid|ood ... --out $DATA_DIR/...; skipped when the files exist
epo_build_datasets

set -x
# shellcheck disable=SC2086  # LAUNCH is a command prefix, split on purpose
${LAUNCH} python3 -m openrlhf.cli.train_ppo_ray \
   "${COMMON_ARGS[@]}" \
   "${ROW_ARGS[@]}" \
   "${EXTRA_ARGS_ARRAY[@]}"

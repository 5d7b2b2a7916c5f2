#!/usr/bin/env bash
# EPO on Signpost, the built-in environment (openrlhf_epo/envs/signpost_env.py), on a CPU-only machine: the recipe of
# the README's "Learning on the built-in environment" as one launcher, run by the main job:
#   1. data: training trails, 128 held-out iid trails, and the warm-up's turns: the uniformly random admissible agent
#      in the <think>/<action> format (format, no expertise);
#   2. format warm-up of the built-in signpost model (1.5 M parameters, word-level tokenizer) with OpenRLHF's own SFT
#      trainer;
#   3. held-out success of the warm-up (`openrlhf-epo eval`: about the random agent's 0.213);
#   4. GRPO (the default) or PPO (ESTIMATOR=gae: GAE, a critic) with EPO, the patched train_ppo_ray on the CPU
#      runtime, per-turn samples, held-out evaluation after the last step;
#   5. the before / after table, the figures (`openrlhf-epo plot`) and where everything is.
# Stages 1-3 live in WORK and are shared by every run there (each skips itself when done); a run lives in WORK/RUN
# and resumes from its last checkpoint when rerun. The GRPO run with the defaults: about 9 minutes on 2 cores after
# the warm-up (about 4) and its evaluation (about 1).
# Variables: ESTIMATOR (group_norm | gae), SEED, STEPS, EPISODES (per RL step), LR, CRITIC_LR, CRITIC_FREEZE,
# LR_SCHEDULER, LR_WARMUP, EXTRA, POOL, WORK, RUN.
set -euo pipefail

ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
PY=${PY:-$ROOT/.venv/bin/python}
EPO_CLI=${EPO_CLI:-"$PY -m openrlhf_epo.tools.cli"}
export DS_ACCELERATOR=${DS_ACCELERATOR:-cpu}  # DeepSpeed's CPU accelerator for train_sft and the trainers
ESTIMATOR=${ESTIMATOR:-group_norm}
case "$ESTIMATOR" in
  group_norm) DEFAULT_STEPS=8; GROUP=8 ;;  # GRPO: groups of 8 episodes on one trail
  gae) DEFAULT_STEPS=10; GROUP=1 ;;        # PPO: one episode per trail, a critic started from the warm-up (its first
                                           # CRITIC_FREEZE steps train the critic only)
  *) echo "ESTIMATOR=$ESTIMATOR: accepted gae (PPO) or group_norm (GRPO)" >&2; exit 2 ;;
esac
SEED=${SEED:-0}
STEPS=${STEPS:-$DEFAULT_STEPS}
EPISODES=${EPISODES:-128}      # episodes per RL step
LR=${LR:-1e-4}                 # one optimizer step per RL step; 2e-4 and 3e-4 broke the policy in the first step
CRITIC_LR=${CRITIC_LR:-5e-4}
CRITIC_FREEZE=${CRITIC_FREEZE:-2}  # PPO: RL steps that train the critic only (upstream's --critic.freezing_steps): the
                                   # critic's value head starts random, and its per-token values bias the first update
LR_SCHEDULER=${LR_SCHEDULER:-constant_with_warmup}  # a cosine over 8 RL steps is at 0.45x by step 5, before learning starts
LR_WARMUP=${LR_WARMUP:-0.1}    # share of the RL steps the LR warms up over (upstream's default is 0.03)
EXTRA=${EXTRA:-}                # more train_ppo_ray flags, split on spaces (e.g. "--actor.epo.coef 0.1")
POOL=${POOL:-32}               # environment instances (concurrent episodes) of the engine: 8 took 23 s a step to
                               # generate 128 episodes, 32 took 9-12 s
WORK=${WORK:-$ROOT/runs/signpost_cpu}
RUN=${RUN:-${ESTIMATOR}_s${SEED}}
MAX_TURNS=10                   # the environment's default: the random admissible agent wins 0.2131 of trails
MAX_PROMPT_TOKENS=512          # a turn's prompt is about 142 tokens (history off: the trail is fully observed)
MAX_RESPONSE_TOKENS=48         # the warm-up's responses are 33 tokens
TEMPERATURE=0.5                # rollout and evaluation: no stray format tokens, the three directions stay equal
EVAL_N=128                     # held-out trails, EVAL_SAMPLES episodes each: a standard error of about 0.03
EVAL_SAMPLES=2
SFT_N=100                      # random-agent episodes of the warm-up (971 turns)
if (( EPISODES % GROUP )); then
  echo "EPISODES=$EPISODES: must be a multiple of the group size $GROUP of ESTIMATOR=$ESTIMATOR" >&2; exit 2
fi
PROMPTS_PER_STEP=$((EPISODES / GROUP))
OUT=$WORK/$RUN
DATA=$WORK/data
mkdir -p "$DATA" "$OUT"
MODEL=$($PY -c 'from openrlhf_epo.runtime.signpost_model import signpost_model_dir; print(signpost_model_dir())')

# 1. data
[ -s "$DATA/train.jsonl" ] || $EPO_CLI data signpost --split train --n 2000 --seed 0 --out "$DATA/train.jsonl"
[ -s "$DATA/iid.jsonl" ] || $EPO_CLI data signpost --split iid --n "$EVAL_N" --seed 0 --out "$DATA/iid.jsonl"
[ -s "$DATA/sft.jsonl" ] || $EPO_CLI sft-data signpost --policy random --n "$SFT_N" --seed 1000 --history-length 0 \
  --tokenizer "$MODEL" --max-prompt-tokens "$MAX_PROMPT_TOKENS" --out "$DATA/sft.jsonl"
NEED=$((PROMPTS_PER_STEP * STEPS))
if (( NEED > $(wc -l < "$DATA/train.jsonl") )); then
  echo "STEPS=$STEPS x $PROMPTS_PER_STEP trails: more than the $(wc -l < "$DATA/train.jsonl") of $DATA/train.jsonl" >&2
  exit 2
fi
head -n "$NEED" "$DATA/train.jsonl" > "$OUT/prompts.jsonl"

# 2. format warm-up with OpenRLHF's SFT trainer (one process: DeepSpeed on gloo); fp32: the model is tiny
if [ ! -s "$WORK/sft/config.json" ]; then
  RANK=0 WORLD_SIZE=1 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=${SFT_PORT:-$($PY -c \
    'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')} \
  $PY -m openrlhf.cli.train_sft \
    --model.model_name_or_path "$MODEL" \
    --data.dataset "$DATA/sft.jsonl" --data.input_key prompt --data.output_key response --data.input_template '{}' \
    --data.max_len $((MAX_PROMPT_TOKENS + MAX_RESPONSE_TOKENS)) \
    --train.batch_size 32 --train.micro_batch_size 32 --train.max_epochs 7 --train.seed 0 \
    --adam.lr 3e-3 --lr_warmup_ratio 0.05 \
    --ds.zero_stage 2 --ds.param_dtype fp32 --ds.attn_implementation sdpa \
    --logger.tensorboard_dir "$WORK/tb_sft" --ckpt.output_dir "$WORK/sft.partial"
  mv "$WORK/sft.partial" "$WORK/sft"  # a killed warm-up leaves no folder a rerun would take for done
fi

# 3. the warm-up on the held-out trails
[ -s "$WORK/eval_warmup.json" ] || $EPO_CLI eval "$WORK/sft" --data "$DATA/iid.jsonl" --max-turns "$MAX_TURNS" \
  --history-length 0 --max-prompt-tokens "$MAX_PROMPT_TOKENS" --max-response-tokens "$MAX_RESPONSE_TOKENS" \
  --temperature "$TEMPERATURE" --n-samples "$EVAL_SAMPLES" --dtype fp32 --out "$WORK/eval_warmup.json"

# 4. RL with EPO: the patched train_ppo_ray on the CPU runtime
ALGO=(--algo.advantage.estimator "$ESTIMATOR")
if [ "$ESTIMATOR" = gae ]; then
  ALGO+=(--critic.model_name_or_path "$WORK/sft" --critic.num_nodes 1 --critic.num_gpus_per_node 1
         --critic.adam.lr "$CRITIC_LR" --critic.lr_scheduler "$LR_SCHEDULER" --critic.freezing_steps "$CRITIC_FREEZE")
fi
if [ ! -s "$OUT/final/config.json" ]; then
  $PY -m openrlhf.cli.train_ppo_ray \
    --runtime.device cpu --runtime.cpu_dtype fp32 \
    --actor.model_name_or_path "$WORK/sft" --actor.num_nodes 1 --actor.num_gpus_per_node 1 \
    --vllm.num_engines 1 --vllm.tensor_parallel_size 1 --ds.zero_stage 2 \
    --agent.mode per_turn --agent.max_turns "$MAX_TURNS" --agent.history_length 0 \
    --agent.max_prompt_tokens "$MAX_PROMPT_TOKENS" --agent.max_response_tokens "$MAX_RESPONSE_TOKENS" \
    --agent.pool_size "$POOL" \
    --data.prompt_dataset "$OUT/prompts.jsonl" --data.input_key prompt --data.label_key label \
    --data.max_len $((MAX_PROMPT_TOKENS + MAX_RESPONSE_TOKENS)) \
    --eval.dataset "$DATA/iid.jsonl" --eval.steps "$STEPS" --eval.temperature "$TEMPERATURE" \
    --eval.n_samples_per_prompt "$EVAL_SAMPLES" \
    --rollout.batch_size "$PROMPTS_PER_STEP" --rollout.n_samples_per_prompt "$GROUP" \
    --rollout.micro_batch_size 32 --rollout.temperature "$TEMPERATURE" \
    --train.batch_size $((EPISODES * MAX_TURNS)) --train.micro_batch_size 32 --train.num_episodes 1 \
    --train.seed "$SEED" "${ALGO[@]}" --algo.kl.init_coef 0 \
    --actor.loss_agg_mode trajectory --actor.adam.lr "$LR" --actor.lr_scheduler "$LR_SCHEDULER" \
    --actor.lr_warmup_ratio "$LR_WARMUP" --actor.epo.enable \
    --ckpt.path "$OUT/ckpt" --ckpt.save_steps 1 --ckpt.max_num 1 --ckpt.load_enable --ckpt.output_dir "$OUT/final" \
    --logger.tensorboard_dir "$OUT/tb" --logger.jsonl_path "$OUT/metrics.jsonl" $EXTRA
fi

# 5. before / after, figures
$EPO_CLI plot --run "$RUN=$OUT/metrics.jsonl" --out "$OUT/figures" > /dev/null
$PY - "$WORK" "$RUN" <<'EOF'
import json, sys
from pathlib import Path
work, run = Path(sys.argv[1]), sys.argv[2]
rows = [json.loads(line) for line in (work / run / "metrics.jsonl").read_text().splitlines()]
train = {r["step"]: r for r in rows if r["kind"] == "train"}
after = [r for r in rows if r["kind"] == "eval"][-1]
before = json.loads((work / "eval_warmup.json").read_text())["overall"]
print(f"\n{'held-out success (' + str(work / 'data' / 'iid.jsonl') + ')':<60} {'success':>8} {'invalid':>8}")
print(f"{'after the warm-up (openrlhf-epo eval)':<60} {before['success_rate']:>8.3f} {before['invalid_ratio']:>8.3f}")
label = f"after {after['step']} RL steps ({run}: the run's own evaluation)"
print(f"{label:<60} {after['eval_success_rate']:>8.3f} {after['eval_invalid_ratio']:>8.3f}")
print("training success by step: " + " ".join(f"{train[s]['rollout/success_rate']:.2f}" for s in sorted(train)))
print(f"\nmetrics (JSON lines): {work / run / 'metrics.jsonl'}")
print(f"figures:              {work / run / 'figures'}")
print(f"tensorboard logs:     {work / run / 'tb'}  (SFT: {work / 'tb_sft'})")
print(f"checkpoints:          {work / run / 'ckpt'}  (resume: rerun this script)")
print(f"final model:          {work / run / 'final'}")
EOF

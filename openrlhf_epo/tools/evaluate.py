"""`openrlhf-epo eval MODEL --data iid.jsonl ood.jsonl --out results.json`: a model on task splits, as training plays.

Every task instance of the datasets (lines of `openrlhf-epo data`) is played `--n-samples` times by the same agent
loop the rollout uses (agent/episode.py: the paper's prompts, parsing, turn limit), on vLLM (on a machine without a
GPU, vLLM built for CPUs, in the dtype the CPU computes fast: runtime/cpu_dtype.py). Reported per data source
(`alfworld_iid`, ...) and overall:
success rate, success per task type, mean turns, invalid-action ratio (invalid turns / turns), episode return, and
pass@n when n > 1 (agent/episode_summary.py: the definitions of the training logs).

MODEL is a Hugging Face folder: OpenRLHF's final `--ckpt.output_dir`, a `--ckpt.save_hf` checkpoint, or a base model.
"""
import asyncio
import json
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional

from openrlhf_epo.agent.env_pool import WORKERS, EnvPool, env_factory, play_groups
from openrlhf_epo.agent.episode import EpisodeConfig
from openrlhf_epo.agent.episode_summary import EpisodeRecord, summarize, summarize_sources
from openrlhf_epo.agent.samples import MODES, episode_return
from openrlhf_epo.envs.base import TURN_LIMITS
from openrlhf_epo.envs.task_check import read_task_file


class LocalEngine:
    """The agent loop's engine seam over an in-process vllm.AsyncLLMEngine, as upstream's rollout actor wraps it."""

    def __init__(self, llm):
        self.llm, self._ids = llm, 0

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        self._ids += 1
        final = None
        async for output in self.llm.generate({"prompt_token_ids": list(prompt_token_ids)}, sampling_params,
                                              request_id=f"eval-{self._ids}"):
            final = output
        return final


def load_engine(model: str, seed: int, max_model_len: int, dtype: str = "auto"):
    """(vllm.AsyncLLMEngine, its dtype): bf16 on a GPU; on the CPU runtime `dtype` (auto: from the CPU's units)."""
    import vllm

    from openrlhf_epo.runtime import cpu_dtype, device, vllm_cpu

    if device.use_cpu():
        chosen, reason = cpu_dtype.choose(dtype)
        print(f"openrlhf-epo eval: vLLM on the CPU in {chosen} ({reason})")
        os.environ.update(vllm_cpu.engine_env())
    else:
        chosen = "bf16" if dtype == "auto" else dtype
    args = vllm.AsyncEngineArgs(model=model, seed=seed, max_model_len=max_model_len, dtype=vllm_cpu.vllm_dtype(chosen),
                                trust_remote_code=True, enable_prefix_caching=True)
    return vllm.AsyncLLMEngine.from_engine_args(args), chosen


def read_tasks(paths: List[Path]) -> List[Dict]:
    """[{"spec", "source", "prompt"}] from prompt datasets; a line that is not a task spec is named."""
    tasks = []
    for path in paths:
        for spec, row in read_task_file(path):  # every line a playable task instance, before the engine starts
            tasks.append({"spec": spec, "source": row.get("datasource") or f"{spec.env}_{spec.split}",
                          "prompt": row.get("prompt", "")})
    if not tasks:
        raise ValueError(f"no task instances in {', '.join(map(str, paths))}")
    return tasks


def check_model_folder(model: str) -> None:
    folder = Path(model)
    if folder.is_dir() and not (folder / "config.json").exists():
        if any(folder.glob("*model_states.pt")) or (folder / "latest").exists():
            raise ValueError(f"{model} is a DeepSpeed checkpoint; evaluate a Hugging Face folder: the run's "
                             "--ckpt.output_dir, or a checkpoint saved with --ckpt.save_hf")
        raise ValueError(f"{model} holds no config.json: not a Hugging Face model folder")


async def play_all(tasks, engine, tokenizer, params, config: EpisodeConfig, n_samples: int, concurrency: int,
                   workers: str, progress: bool = True, stream: bool = False):
    """[(task, group, episode)]: n_samples episodes of every task line (its group: the line's index), at most
    `concurrency` at a time (the pool's size)."""
    from tqdm import tqdm

    bar = tqdm(total=len(tasks) * n_samples, desc="eval episodes", unit="ep", disable=not progress)
    with EnvPool(concurrency, env_factory(workers, start_timeout=config.env_timeout_s)) as pool:
        groups = await play_groups(pool, [t["spec"] for t in tasks], n_samples, engine, tokenizer, params, config,
                                   stream=stream, on_episode=bar.update)
    bar.close()
    return [(task, group, episode) for group, (task, played) in enumerate(zip(tasks, groups)) for episode in played]


def report(done, n_samples: int) -> Dict:
    """The results file: per data source and overall (agent/episode_summary.py's definitions), failed environments
    counted apart, and one line per episode."""
    records, errors = [], defaultdict(lambda: defaultdict(float))
    episodes = []
    for i, (task, group, episode) in enumerate(done):
        episodes.append({"source": task["source"], "task": task["spec"].task, "variation": task["spec"].variation,
                         "won": episode.won, "turns": len(episode.turns), "invalid": episode.invalid_count,
                         "error": episode.error})
        if episode.failed:  # its environment failed: counted, not scored
            for scope in (task["source"], "overall"):
                errors[scope]["env_errors"] += 1
                errors[scope][f"env_errors_{task['spec'].env}"] += 1
            continue
        records.append(EpisodeRecord(trajectory=i, group=group, won=float(episode.won),
                                     episode_return=episode_return(episode), turns=float(len(episode.turns)),
                                     invalid=float(episode.invalid_count), task=task["spec"].task,
                                     source=task["source"]))
    by_source = summarize_sources(records, n_samples)
    result = {"overall": {**summarize(records), "env_errors": 0.0, **errors["overall"]}, "splits": {}}
    for source in sorted(set(by_source) | (set(errors) - {"overall"})):
        result["splits"][source] = {**by_source.get(source, {}), "env_errors": 0.0, **errors[source]}
    result["episodes"] = episodes
    return result


def evaluate(model: str, data: List[Path], out: Optional[Path], n_samples: int = 1, temperature: float = 0.0,
             top_p: float = 1.0, seed: int = 0, dtype: str = "auto", concurrency: int = 8, workers: str = "auto",
             episode: Optional[EpisodeConfig] = None, progress: bool = True, mode: str = "per_turn") -> Dict:
    if n_samples < 1 or concurrency < 1:
        raise ValueError(f"--n-samples {n_samples} and --concurrency {concurrency} must be >= 1")
    if mode not in MODES:
        raise ValueError(f"--mode {mode!r} is not one of {', '.join(MODES)}")
    check_model_folder(model)
    tasks = read_tasks(list(data))
    config = episode or EpisodeConfig()
    from transformers import AutoTokenizer
    from vllm import SamplingParams

    tokenizer = AutoTokenizer.from_pretrained(model, trust_remote_code=True)
    llm, dtype = load_engine(model, seed, config.max_prompt_tokens + config.max_response_tokens, dtype)
    params = SamplingParams(temperature=temperature, top_p=top_p, max_tokens=config.max_response_tokens, seed=None)
    started = time.time()
    try:
        done = asyncio.run(play_all(tasks, LocalEngine(llm), tokenizer, params, config, n_samples, concurrency,
                                    workers, progress, stream=mode == "concat"))
    finally:
        llm.shutdown()  # the engine core is a process of its own: never left running
    result = report(done, n_samples)
    result["settings"] = {"model": str(model), "engine": "vllm", "dtype": dtype, "data": [str(p) for p in data],
                          "n_samples": n_samples, "temperature": temperature, "top_p": top_p, "seed": seed,
                          "mode": mode,
                          "episode": vars(config), "seconds": round(time.time() - started, 1)}
    if out:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1))
    return result


def print_summary(result: Dict) -> None:
    print(f"{'split':<22} {'episodes':>8} {'success':>8} {'turns':>6} {'invalid':>8} {'env errors':>10}")
    for source, m in list(result["splits"].items()) + [("overall", result["overall"])]:
        if "num_episodes" not in m:  # every episode of the split lost its environment
            print(f"{source:<22} {0:>8} {'-':>8} {'-':>6} {'-':>8} {m['env_errors']:>10.0f}")
            continue
        print(f"{source:<22} {m['num_episodes']:>8.0f} {m['success_rate']:>8.3f} {m['turns_mean']:>6.1f} "
              f"{m['invalid_ratio']:>8.3f} {m['env_errors']:>10.0f}")


def add_parser(sub) -> None:
    parser = sub.add_parser("eval", help="play a model on task splits (success, per task type, turns, invalid ratio)")
    parser.add_argument("model", help="a Hugging Face model folder (e.g. a run's --ckpt.output_dir)")
    parser.add_argument("--data", nargs="+", type=Path, required=True, metavar="FILE.jsonl",
                        help="prompt datasets of `openrlhf-epo data` (e.g. the iid and ood splits)")
    parser.add_argument("--out", type=Path, default=None, metavar="RESULTS.json")
    parser.add_argument("--n-samples", type=int, default=1, help="episodes per task instance (default 1)")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", choices=["auto", "bf16", "fp32"], default="auto",
                        help="auto: bf16 on a GPU; on a CPU bf16 where it has bf16 units, else fp32 (default: auto)")
    parser.add_argument("--concurrency", type=int, default=8, help="episodes played at once (default 8)")
    parser.add_argument("--env-workers", choices=WORKERS, default="auto")
    parser.add_argument("--max-turns", type=int, default=None, help=f"default: the environment's, {TURN_LIMITS}")
    defaults = EpisodeConfig()  # the agent loop's defaults, as --agent.* gives them to training
    parser.add_argument("--history-length", type=int, default=defaults.history_length)
    parser.add_argument("--max-response-tokens", type=int, default=defaults.max_response_tokens)
    parser.add_argument("--max-prompt-tokens", type=int, default=defaults.max_prompt_tokens)
    parser.add_argument("--env-timeout-s", type=float, default=defaults.env_timeout_s,
                        help="an environment build, reset or step slower than this is killed and its episode counted "
                             f"as an env error, not scored (default {defaults.env_timeout_s:g})")
    parser.add_argument("--mode", choices=MODES, default="per_turn",
                        help="the prompts the model was trained on, as --agent.mode: per_turn = a history-window "
                             "prompt every turn (default), concat = the episode's growing token stream")
    parser.set_defaults(func=cmd_eval)


def cmd_eval(args) -> int:
    config = EpisodeConfig(max_turns=args.max_turns, history_length=args.history_length,
                           max_response_tokens=args.max_response_tokens, max_prompt_tokens=args.max_prompt_tokens,
                           env_timeout_s=args.env_timeout_s)
    result = evaluate(args.model, args.data, args.out, args.n_samples, args.temperature, args.top_p, args.seed,
                      args.dtype, args.concurrency, args.env_workers, config, mode=args.mode)
    print_summary(result)
    if args.out:
        print(f"wrote {args.out}")
    return 0

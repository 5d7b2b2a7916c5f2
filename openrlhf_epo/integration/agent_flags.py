"""The `--agent.*` flags of `openrlhf.cli.train_ppo_ray`: the multi-turn agent loop selected and configured by flag.

`--agent.mode per_turn` (the paper's setting) or `concat` points `--train.agent_func_path` at openrlhf-epo's executor
and serialises the agent settings (AgentConfig, EpisodeConfig) into $OPENRLHF_EPO_AGENT, which the driver forwards to
every Ray worker through the job's runtime_env (so the engines on other nodes see the same settings).

The flags are generated from the dataclasses' fields: one source of truth for names, defaults and help.
GiGPO's `--algo.gigpo.*` flags live here too: its step-level advantage needs the agent's per-turn samples.
"""
import argparse
import os
import sys
from dataclasses import fields
from pathlib import Path
from typing import Dict, Iterable

from openrlhf_epo.agent import gigpo, samples
from openrlhf_epo.agent.config import CONFIG_ENV, DEFAULTS, ENV_PREFIX, AgentConfig
from openrlhf_epo.agent.env_pool import WORKERS
from openrlhf_epo.agent.episode import EpisodeConfig
from openrlhf_epo.envs.base import TURN_LIMITS
from openrlhf_epo.envs.task_check import check_dataset_files
from openrlhf_epo.integration.lr_schedule import rl_steps

PREFIX = "agent"
MODES = ("off",) + samples.MODES  # off: no agent loop, upstream's single-turn rollout
EXECUTOR_FILE = str(Path(__file__).with_name("agent_executor.py"))

_EPISODE_HELP = {
    "history_length": "h: past (observation, action) pairs shown in each turn's prompt (appendix D; peers use 2)",
    "max_turns": f"turn limit of an episode (default: the environment's, {TURN_LIMITS})",
    "max_prompt_tokens": "prompt budget per turn; a longer prompt drops the tail of its action list (the paper: 2048)",
    "max_response_tokens": "per-turn response cap; generation also stops after </action> (the paper: 512)",
    "success_reward": "outcome reward of a won episode, shared by all its turns (the paper: 1)",
    "invalid_penalty": "reward subtracted on a turn whose output is invalid (peers: 0.1)",
    "require_think": "an output without <think>...</think> is invalid",
    "require_admissible": "an action outside the environment's admissible list is invalid",
    "max_action_chars": "an action longer than this is invalid",
    "env_timeout_s": "seconds every environment build, reset and step may take; a slower environment is killed and "
                     "its episode counted in rollout/env_errors, not trained on",
}


def add_agent_arguments(parser: argparse.ArgumentParser) -> None:
    """Register `--agent.mode`, `--agent.pool_size`, `--agent.env_workers` and every EpisodeConfig field."""
    group = parser.add_argument_group("Multi-turn agents in ScienceWorld / ALFWorld (openrlhf-epo)")
    group.add_argument(
        f"--{PREFIX}.mode", choices=MODES, default="off",
        help="per_turn: one training sample per turn, its history-window prompt + response (the paper's setting); "
             "concat: one sample per episode, the token stream every turn was generated from (upstream's multi-turn "
             "form; the context stays within --agent.max_prompt_tokens); off: no agent loop (default: off)",
    )
    group.add_argument(f"--{PREFIX}.pool_size", type=int, default=DEFAULTS.pool_size,
                       help=f"environment instances per rollout engine, reused across episodes "
                            f"(default: {DEFAULTS.pool_size})")
    group.add_argument(
        f"--{PREFIX}.env_workers", choices=WORKERS, default=DEFAULTS.env_workers,
        help="where pooled environments run: process (one child process each: ALFWorld's PDDL engine serialises a "
             "process's instances), thread (in the engine actor), auto: process for ALFWorld, thread for ScienceWorld "
             f"(its work runs in its own JVM) (default: {DEFAULTS.env_workers})",
    )
    group.add_argument(
        f"--{PREFIX}.max_env_error_ratio", type=float, default=DEFAULTS.max_env_error_ratio,
        help="stop the run when more than this share of a step's episodes lost their environment (crashed, hung, "
             f"raised; such episodes are never trained on) (default: {DEFAULTS.max_env_error_ratio})",
    )
    for f in fields(EpisodeConfig):
        flag, helptext = f"--{PREFIX}.{f.name}", _EPISODE_HELP[f.name]
        if f.default is not None:
            helptext += f" (default: {f.default})"
        if f.type is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default, help=helptext)
        else:
            kind = int if f.name == "max_turns" else f.type
            group.add_argument(flag, type=kind, default=f.default, help=helptext)
    add_gigpo_arguments(parser)


def add_gigpo_arguments(parser: argparse.ArgumentParser) -> None:
    """`--algo.gigpo.*`: the settings of `--algo.advantage.estimator gigpo` (agent/gigpo.py)."""
    group = parser.add_argument_group("GiGPO: episode- and step-level group advantages (openrlhf-epo)")
    group.add_argument("--algo.gigpo.gamma", type=float, default=gigpo.DEFAULT_GAMMA,
                       help="discount of the turns' returns within a trajectory, compared in each anchor-state step "
                            f"group (the GiGPO paper: {gigpo.DEFAULT_GAMMA}) (default: {gigpo.DEFAULT_GAMMA})")
    group.add_argument("--algo.gigpo.omega", type=float, default=gigpo.DEFAULT_OMEGA,
                       help="weight of the step-level advantage: A = A_E + omega * A_S (the GiGPO paper: "
                            f"{gigpo.DEFAULT_OMEGA}) (default: {gigpo.DEFAULT_OMEGA})")
    group.add_argument("--algo.gigpo.norm", choices=gigpo.NORMS, default=gigpo.DEFAULT_NORM,
                       help="normalisation of both levels: mean (minus the group mean, F_norm = 1) or std (also "
                            f"divided by the group's std) (default: {gigpo.DEFAULT_NORM})")


def check_gigpo_args(args) -> None:
    """GiGPO needs per-turn samples (turns and their anchor states) and groups of several trajectories."""
    if args.algo.advantage.estimator != gigpo.ESTIMATOR:
        return
    section = args.algo.gigpo
    mode = getattr(getattr(args, PREFIX, None), "mode", "off")
    if mode != "per_turn":
        raise ValueError(f"--algo.advantage.estimator gigpo with --agent.mode {mode}: GiGPO's step groups are made "
                         "of turns, which only per-turn samples keep apart; use --agent.mode per_turn")
    if args.rollout.n_samples_per_prompt < 2:
        raise ValueError(f"--algo.advantage.estimator gigpo with --rollout.n_samples_per_prompt "
                         f"{args.rollout.n_samples_per_prompt}: its groups need at least 2 trajectories per task")
    if not 0.0 <= section.gamma <= 1.0:
        raise ValueError(f"--algo.gigpo.gamma {section.gamma} must be within [0, 1]")


def agent_config_json(args) -> str:
    """The AgentConfig of hierarchized args as JSON (validated by AgentConfig itself)."""
    section = args.agent
    episode = {f.name: getattr(section, f.name) for f in fields(EpisodeConfig)}
    return AgentConfig(mode=section.mode, pool_size=section.pool_size, env_workers=section.env_workers,
                       max_env_error_ratio=section.max_env_error_ratio, episode=episode).to_json()


def _per_response_settings(args):
    """(flag, value, what to use instead) of upstream's settings that act on a single-turn response and would be
    silently wrong on an agent's turns."""
    cut = ("a turn cut at --agent.max_response_tokens has no closed <action> and is an invalid turn: penalise it with "
           "--agent.invalid_penalty")
    return [
        ("--rollout.max_new_tokens", getattr(args.rollout, "max_new_tokens", None),
         "each turn's response is capped by --agent.max_response_tokens; set that instead"),
        ("--reward.overlong_buffer_len", getattr(args.reward, "overlong_buffer_len", None), cut),
        ("--reward.stop_properly_penalty_coef", getattr(args.reward, "stop_properly_penalty_coef", None), cut),
    ]


def check_agent_args(args) -> None:
    """Validate the agent flags; with a mode set, select openrlhf-epo's executor. Exits like argparse on bad input."""
    section = getattr(args, PREFIX, None)
    try:
        check_gigpo_args(args)
    except ValueError as exc:
        raise SystemExit(f"train_ppo_ray.py: error: {exc}") from None
    if section is None or section.mode == "off":
        return
    try:
        given = args.train.agent_func_path
        if given and Path(given).resolve() != Path(EXECUTOR_FILE).resolve():
            raise ValueError(f"--agent.mode {section.mode} runs openrlhf-epo's executor, but --train.agent_func_path "
                             f"is {given!r}: drop one of them")
        if section.max_turns is not None and section.max_turns < 1:
            raise ValueError(f"--agent.max_turns {section.max_turns} must be >= 1")
        for name in ("history_length", "max_prompt_tokens", "max_response_tokens", "max_action_chars"):
            if getattr(section, name) < (0 if name == "history_length" else 1):
                raise ValueError(f"--agent.{name} {getattr(section, name)} is out of range")
        for flag, value, instead in _per_response_settings(args):
            if value is not None:
                raise ValueError(f"--agent.mode {section.mode} with {flag} {value}: {instead}")
        if section.mode == "per_turn" and getattr(args.train, "dynamic_batch_enable", False):
            raise ValueError("--agent.mode per_turn with --train.dynamic_batch_enable: per-turn samples are balanced "
                             "across ranks in whole optimizer windows (integration/rank_balance.py), which dynamic "
                             "batching re-cuts; drop --train.dynamic_batch_enable")
        need = section.max_prompt_tokens + section.max_response_tokens
        if section.mode != "off" and args.data.max_len < need:
            raise ValueError(
                f"--data.max_len {args.data.max_len} < --agent.max_prompt_tokens + --agent.max_response_tokens "
                f"= {need}: samples would be cut; raise --data.max_len to {need}"
            )
        config = agent_config_json(args)
        _check_task_data(args)
    except ValueError as exc:
        raise SystemExit(f"train_ppo_ray.py: error: {exc}") from None
    args.train.agent_func_path = EXECUTOR_FILE
    os.environ[CONFIG_ENV] = config


def _check_task_data(args) -> None:
    """Every line of the prompt and eval datasets names a playable task instance (envs/task_check.py), before Ray."""
    if not args.data.label_key:
        raise ValueError(f"--agent.mode {args.agent.mode} needs --data.label_key: the column holding each line's task "
                         "spec ('label' in the files of `openrlhf-epo data`)")
    unchecked = []
    for datasets, input_key in ((args.data.prompt_dataset, args.data.input_key), (args.eval.dataset, None)):
        unchecked += check_dataset_files(datasets, args.data.label_key, input_key)
    if unchecked:
        print(f"openrlhf-epo: task data not checked before the run (not a local .json / .jsonl file): "
              f"{', '.join(unchecked)}", file=sys.stderr)


def agent_runtime_env() -> Dict[str, str]:
    """Environment variables the driver forwards to every Ray worker (ray.init's runtime_env): the agent settings and
    every other OPENRLHF_EPO_* variable set in the driver (cache and game folders). Workers on other nodes are started
    by their node's raylet and inherit nothing from the driver's shell."""
    return {name: value for name, value in os.environ.items() if name.startswith(ENV_PREFIX) and value}


def scheduler_steps(max_steps: int, args, labels: Iterable[str] = ()) -> int:
    """The LR scheduler's step count: upstream's optimizer steps, or with per-turn samples the run's RL steps K,
    which the actor's and critic's schedulers then count (integration/lr_schedule.py): an RL step's optimizer-step
    count depends on its episodes' turns and is unknown in advance."""
    section = getattr(args, PREFIX, None)
    if section is None or section.mode != "per_turn":
        return max_steps
    return rl_steps(len(list(labels)), args)



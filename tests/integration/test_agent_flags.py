"""`--agent.*` through the real, patched `train_ppo_ray` argument parser, and the patched `prepare_datasets` counting
the LR scheduler's steps for per-turn samples."""
import json
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "epo_testkit"))
from train_args import parse_train_ppo_args, stub_strategy  # noqa: E402

from openrlhf_epo.agent.config import CONFIG_ENV, AgentConfig  # noqa: E402
from openrlhf_epo.integration.agent_flags import EXECUTOR_FILE  # noqa: E402

BASE = ["--actor.model_name_or_path", "some/model", "--algo.advantage.estimator", "reinforce",
        "--data.label_key", "label"]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    monkeypatch.delenv(CONFIG_ENV, raising=False)


def test_agent_mode_selects_the_executor_and_ships_its_settings(monkeypatch):
    import os

    args = parse_train_ppo_args(BASE + [
        "--agent.mode", "per_turn", "--data.max_len", "2600", "--agent.max_turns", "7", "--agent.history_length", "3",
        "--agent.invalid_penalty", "0.1", "--no-agent.require_think", "--agent.pool_size", "4",
    ])
    assert args.train.agent_func_path == EXECUTOR_FILE
    assert args.reward.remote_url == ["agent"]  # upstream's own consequence of an agent executor
    config = AgentConfig.from_env()  # what the engine actors build from the forwarded variable
    assert (config.mode, config.pool_size) == ("per_turn", 4)
    assert (config.episode.max_turns, config.episode.history_length) == (7, 3)
    assert config.episode.invalid_penalty == 0.1 and config.episode.require_think is False
    assert config.episode.max_prompt_tokens == 2048 and config.episode.max_response_tokens == 512  # paper defaults

    from openrlhf_epo.integration.agent_flags import agent_runtime_env

    forwarded = agent_runtime_env()
    assert json.loads(forwarded[CONFIG_ENV]) == json.loads(os.environ[CONFIG_ENV])
    assert all(name.startswith("OPENRLHF_EPO_") for name in forwarded)


def test_the_packages_variables_reach_workers_on_every_node(monkeypatch):
    from openrlhf_epo.integration.agent_flags import agent_runtime_env

    monkeypatch.setenv("OPENRLHF_EPO_ALFWORLD_GAMES", "/shared/games")  # a worker on another node must see these
    monkeypatch.setenv("OPENRLHF_EPO_CACHE", "/shared/cache")
    monkeypatch.setenv("OPENRLHF_EPO_EMPTY", "")
    monkeypatch.setenv("HOME_OF_SOMETHING_ELSE", "x")
    forwarded = agent_runtime_env()
    assert forwarded["OPENRLHF_EPO_ALFWORLD_GAMES"] == "/shared/games" and forwarded["OPENRLHF_EPO_CACHE"] == "/shared/cache"
    assert "OPENRLHF_EPO_EMPTY" not in forwarded and "HOME_OF_SOMETHING_ELSE" not in forwarded


def test_gigpo_is_an_advantage_estimator_with_the_papers_defaults():
    argv = BASE + ["--agent.mode", "per_turn", "--data.max_len", "4096", "--algo.advantage.estimator", "gigpo",
                   "--rollout.n_samples_per_prompt", "8"]
    args = parse_train_ppo_args(argv)
    assert args.algo.advantage.estimator == "gigpo" and args.critic.model_name_or_path is None  # critic-free
    assert (args.algo.gigpo.gamma, args.algo.gigpo.omega, args.algo.gigpo.norm) == (0.95, 1.0, "mean")
    args = parse_train_ppo_args(argv + ["--algo.gigpo.gamma", "0.9", "--algo.gigpo.omega", "0.5",
                                        "--algo.gigpo.norm", "std"])
    assert (args.algo.gigpo.gamma, args.algo.gigpo.omega, args.algo.gigpo.norm) == (0.9, 0.5, "std")


def test_agent_mode_off_leaves_upstream_alone():
    import os

    args = parse_train_ppo_args(BASE)
    assert args.agent.mode == "off" and args.train.agent_func_path is None
    assert CONFIG_ENV not in os.environ


@pytest.mark.parametrize("argv, message", [
    (["--agent.mode", "per_turn"], "--data.max_len 2048 < --agent.max_prompt_tokens + --agent.max_response_tokens = 2560"),
    (["--agent.mode", "per_turn", "--data.max_len", "4096", "--train.agent_func_path", "/x/my_agent.py"],
     "but --train.agent_func_path is '/x/my_agent.py'"),
    (["--agent.mode", "concat", "--agent.max_turns", "0"], "--agent.max_turns 0 must be >= 1"),
    (["--agent.mode", "per_turn", "--data.max_len", "4096", "--agent.scheduler_turns", "9"],
     "unrecognized arguments: --agent.scheduler_turns"),  # gone: the schedulers count RL steps now
    (["--agent.mode", "everything"], "invalid choice: 'everything' (choose from 'off', 'per_turn', 'concat')"),
    (["--agent.mode", "per_turn", "--data.max_len", "4096", "--rollout.max_new_tokens", "300"],
     "--agent.mode per_turn with --rollout.max_new_tokens 300: each turn's response is capped by "
     "--agent.max_response_tokens"),
    (["--agent.mode", "concat", "--data.max_len", "4096", "--reward.overlong_buffer_len", "64"],
     "--agent.mode concat with --reward.overlong_buffer_len 64.0: a turn cut at --agent.max_response_tokens has no "
     "closed <action> and is an invalid turn: penalise it with --agent.invalid_penalty"),
    (["--agent.mode", "per_turn", "--data.max_len", "4096", "--reward.stop_properly_penalty_coef", "0.5"],
     "--agent.mode per_turn with --reward.stop_properly_penalty_coef 0.5: a turn cut"),
    (["--agent.mode", "per_turn", "--data.max_len", "4096", "--train.dynamic_batch_enable"],
     "--agent.mode per_turn with --train.dynamic_batch_enable: per-turn samples are balanced across ranks"),
    (["--agent.mode", "per_turn", "--data.max_len", "4096", "--agent.max_env_error_ratio", "1.5"],
     "--agent.max_env_error_ratio 1.5 must be within [0, 1]"),
    (["--agent.mode", "per_turn", "--data.max_len", "4096", "--agent.env_timeout_s", "0"],
     "--agent.env_timeout_s 0.0 must be > 0"),
    (["--agent.mode", "concat", "--data.max_len", "4096", "--algo.advantage.estimator", "gigpo",
      "--rollout.n_samples_per_prompt", "4"],
     "--algo.advantage.estimator gigpo with --agent.mode concat: GiGPO's step groups are made of turns"),
    (["--algo.advantage.estimator", "gigpo", "--rollout.n_samples_per_prompt", "4"],
     "--algo.advantage.estimator gigpo with --agent.mode off"),
    (["--agent.mode", "per_turn", "--data.max_len", "4096", "--algo.advantage.estimator", "gigpo"],
     "--algo.advantage.estimator gigpo with --rollout.n_samples_per_prompt 1: its groups need at least 2"),
    (["--agent.mode", "per_turn", "--data.max_len", "4096", "--algo.advantage.estimator", "gigpo",
      "--rollout.n_samples_per_prompt", "4", "--algo.gigpo.gamma", "1.5"], "--algo.gigpo.gamma 1.5 must be within"),
    (["--algo.gigpo.norm", "max"], "invalid choice: 'max' (choose from 'mean', 'std')"),
])
def test_bad_agent_flags_are_named(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_train_ppo_args(BASE + argv)
    assert message in f"{exit_info.value}{capsys.readouterr().err}"


@pytest.mark.parametrize("extra, expected", [
    (["--agent.mode", "per_turn"], math.ceil(5 / 2) * 3),  # RL steps: ceil(prompts / rollout batch) x episodes
    (["--agent.mode", "per_turn", "--agent.max_turns", "12"], math.ceil(5 / 2) * 3),  # turns do not enter
    (["--agent.mode", "concat"], (5 * 4 // 8) * 3),  # one sample per episode: upstream's optimizer steps
    ([], (5 * 4 // 8) * 3),
])
def test_scheduler_steps_are_rl_steps_with_per_turn_samples(tmp_path, extra, expected):
    from openrlhf.trainer.ppo_trainer import prepare_datasets
    from openrlhf_epo.envs.base import TaskSpec
    from openrlhf_epo.runtime.offline_models import qwen_tokenizer
    from openrlhf_epo.tools.data import record

    data = tmp_path / "train.jsonl"
    specs = [TaskSpec("scienceworld", "boil", variation=v) for v in range(5)]
    data.write_text("".join(json.dumps(record(s)) + "\n" for s in specs))
    args = parse_train_ppo_args(BASE + extra + [
        "--data.max_len", "2600", "--data.prompt_dataset", str(data), "--data.input_key", "prompt",
        "--data.label_key", "label", "--rollout.n_samples_per_prompt", "4", "--train.batch_size", "8",
        "--train.num_episodes", "3", "--rollout.batch_size", "2",
    ])
    _, _, max_steps = prepare_datasets(stub_strategy(args), qwen_tokenizer())
    assert max_steps == expected  # upstream: prompts x n / batch x episodes

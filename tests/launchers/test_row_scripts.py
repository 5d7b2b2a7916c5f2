"""The SFT and prompting rows of table 1 (`examples/scripts/sft_expert.sh`, `eval_react.sh`) under bash, their outside
commands stubbed (`deepspeed`, `openrlhf-epo`, `hf`: launcher_stubs.py), and the calls they make parsed by the real
parsers: upstream's `train_sft` and openrlhf-epo's own. Expected values: RLVMR's released cold-start SFT (200 expert
trajectories under 30 steps, lr 1e-5, 5 epochs, micro-batch 16 per GPU) and the RL rows' evaluation settings."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "epo_testkit"))
from launcher_stubs import SEED, launch, make_stubs, run_script  # noqa: E402
from train_args import parse_train_sft_args  # noqa: E402

from openrlhf_epo.tools.cli import build_parser as epo_cli_parser  # noqa: E402

pytestmark = pytest.mark.slow  # bash subprocesses and upstream's SFT parser: a few seconds

SCRIPTS = Path(__file__).resolve().parents[2] / "examples" / "scripts"
TURNS = {"scienceworld": 30, "alfworld": 50}  # the RL rows' turn limits (the authors' launcher)
MODEL = "Qwen/Qwen2.5-7B-Instruct"  # table 1: the SFT and ReAct rows' open model


@pytest.fixture(scope="module")
def stubs(tmp_path_factory):
    return make_stubs(tmp_path_factory.mktemp("stubs"), names=("deepspeed", "openrlhf-epo", "hf"))


def _epo_calls(calls, command):
    return [epo_cli_parser().parse_args(c["argv"]) for c in calls if c["cmd"] == "openrlhf-epo" and
            c["argv"][0] == command]


@pytest.mark.parametrize("env", sorted(TURNS))
def test_sft_row_builds_expert_data_trains_with_train_sft_and_evaluates(env, tmp_path, stubs):
    calls = run_script(SCRIPTS / "sft_expert.sh", tmp_path, stubs, ENV_NAME=env)
    model_dir = tmp_path / "models" / "Qwen2.5-7B-Instruct"
    assert [c["argv"] for c in calls if c["cmd"] == "hf"] == [["download", MODEL, "--local-dir", str(model_dir)]]
    data = {a.split: a for a in _epo_calls(calls, "data")}
    assert sorted(data) == ["iid", "ood"] and all(a.env == env for a in data.values())
    (sft,) = _epo_calls(calls, "sft-data")
    assert (sft.env, sft.policy, sft.n, sft.max_turns, sft.history_length) == (env, "expert", 200, 30, 2)
    assert sft.tokenizer == str(model_dir) and sft.max_prompt_tokens == 2048

    (train,) = [c["argv"] for c in calls if c["cmd"] == "deepspeed"]
    assert train[:2] == ["--module", "openrlhf.cli.train_sft"]
    args = parse_train_sft_args(train[2:])
    assert args.model.model_name_or_path == str(model_dir) and args.data.dataset == sft.out
    assert (args.adam.lr, args.train.max_epochs, args.train.micro_batch_size) == (1e-5, 5, 16)
    assert args.train.batch_size == 16 * 8 and args.train.seed == SEED  # one accumulation step on 8 GPUs
    assert args.data.max_len == 2048 + 512 and args.ds.zero_stage == 3

    (evaluation,) = _epo_calls(calls, "eval")
    assert evaluation.model == args.ckpt.output_dir  # the SFT result, on the RL rows' splits and turn limit
    assert [str(p) for p in evaluation.data] == [data["iid"].out, data["ood"].out]
    assert (evaluation.max_turns, evaluation.history_length, evaluation.temperature) == (TURNS[env], 2, 0.4)


@pytest.mark.parametrize("env", sorted(TURNS))
def test_react_row_evaluates_the_base_model_without_training(env, tmp_path, stubs):
    folder = tmp_path / "my-model"
    folder.mkdir()
    calls = run_script(SCRIPTS / "eval_react.sh", tmp_path, stubs, ENV_NAME=env, MODEL=str(folder))
    assert not [c for c in calls if c["cmd"] in ("deepspeed", "hf")]  # a local folder: nothing trained or fetched
    (evaluation,) = _epo_calls(calls, "eval")
    data = {a.split: a.out for a in _epo_calls(calls, "data")}
    assert evaluation.model == str(folder) and [str(p) for p in evaluation.data] == [data["iid"], data["ood"]]
    assert (evaluation.max_turns, evaluation.history_length, evaluation.temperature) == (TURNS[env], 2, 0.4)


@pytest.mark.parametrize("script", ["sft_expert.sh", "eval_react.sh"])
def test_a_missing_or_unknown_environment_is_refused(script, tmp_path, stubs):
    done = launch(SCRIPTS / script, tmp_path, stubs, ENV_NAME="webshop")
    assert done.returncode == 2 and "ENV_NAME=webshop is not one of scienceworld, alfworld" in done.stderr

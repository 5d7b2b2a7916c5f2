"""The GPU launch scripts `examples/scripts/train_*.sh` (the CPU demos `*_cpu.sh` aside) through the real, patched
`train_ppo_ray` argument parser.

Each script runs for real under bash. The two outside commands it calls are stubs first on PATH that log their
arguments: `ray` (the default launcher, `ray job submit --address=... -- python3 -m openrlhf.cli.train_ppo_ray ...`)
and `openrlhf-epo` (the dataset-building step; the stub writes the --out file). The train_ppo_ray argument list the
script would submit then goes through `parse_train_ppo_args`, which runs the patched module's own `__main__`
(parser and validation) and stops before training, as on a GPU node (see `parse`). The expected values are the paper's, written out here
independently of the scripts: tables 2-3, the ablations of section 5.3 / appendix B, the README's flag table.
"""
import json
import math
import os
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "epo_testkit"))
from launcher_stubs import SEED as LAUNCHER_SEED, launch, make_stubs, official_alfworld_data, run_script  # noqa: E402, E501
from train_args import parse_train_ppo_args  # noqa: E402

from openrlhf_epo.integration.agent_flags import EXECUTOR_FILE  # noqa: E402
from openrlhf_epo.tools.cli import build_parser as epo_cli_parser  # noqa: E402

pytestmark = pytest.mark.slow  # bash subprocesses and a dozen runs of the real parser: about half a minute

SCRIPTS = Path(__file__).resolve().parents[2] / "examples" / "scripts"
LAUNCH_SCRIPTS = sorted(p.name for p in SCRIPTS.glob("train_*.sh") if not p.name.endswith("_cpu.sh"))
SEED = LAUNCHER_SEED
TRAINER = ["python3", "-m", "openrlhf.cli.train_ppo_ray"]
RAY_SUBMIT = ["job", "submit", "--address=http://127.0.0.1:8265", "--"]

# ---- what the paper says, independently of the scripts --------------------------------------------------------------
ENVS = {  # tables 2-3 (model, K, lambda_k = alpha), turn limits of the authors' launcher
    "scienceworld": dict(model="Qwen/Qwen2.5-7B-Instruct", total_steps=125, smooth_coef=0.05, max_turns=30),
    "alfworld": dict(model="Qwen/Qwen2.5-3B-Instruct", total_steps=150, smooth_coef=0.1, max_turns=50),
}
TABLES = {  # (env, algo) -> learning rate, mini-batch, micro-batch (tables 2-3; table 3 leaves GRPO's batches blank)
    ("scienceworld", "ppo"): (3e-6, 64, 8),
    ("scienceworld", "grpo"): (5e-6, 128, 16),
    ("alfworld", "ppo"): (5e-6, 256, 32),
    ("alfworld", "grpo"): (5e-6, 256, 32),
    # GiGPO: verl-agent's run_alfworld.sh / RLVMR's run_sciworld.sh LR 1e-6; mini-batch 256 (ALFWorld), the GRPO row's
    ("scienceworld", "gigpo"): (1e-6, 128, 16),
    ("alfworld", "gigpo"): (1e-6, 256, 32),
}
GIGPO = dict(gamma=0.95, omega=1.0, norm="std")  # GiGPO's launchers: gamma 0.95, step_advantage_w 1, mean_std_norm
GIGPO_INVALID_PENALTY = 0.1  # GiGPO's launchers: an invalid action costs 0.1
GROUP_SIZE = 8  # GRPO's n: the authors' launcher (the paper gives none)
ENV_SMOOTH = object()  # stands for the environment's lambda_k
EPO_PAPER = dict(enable=True, coef=0.001, smoothing="hinge", smooth_coef=ENV_SMOOTH, kappa_l=0.0, kappa_r=2.0,
                 beta_schedule="adaptive", beta_start=2.0, beta_end=1.0, beta_decay=3.0, coef_schedule="constant",
                 aggregation="trajectory", total_steps=0, ea_alpha=0.0)
VARIANTS = {  # the README's table "The paper's runs as configurations"
    "baseline": dict(enable=False),
    "epo": EPO_PAPER,
    "epo_base": {**EPO_PAPER, "smoothing": "off"},
    "epo_wo_dw": {**EPO_PAPER, "beta_schedule": "constant", "beta_const": 1.0},
    "epo_decay": dict(enable=True, smoothing="off", coef_schedule="decay", coef=0.01, coef_end=0.0001, ea_alpha=0.0,
                      total_steps=0),
    "ea": dict(enable=True, coef=0.0, smoothing="off", coef_schedule="constant", ea_alpha=0.4, ea_kappa=2.0),
}
EXPECTED = {  # script -> (environment, algorithm, EPO variant)
    "train_ppo_scienceworld.sh": ("scienceworld", "ppo", "baseline"),
    "train_ppo_epo_scienceworld.sh": ("scienceworld", "ppo", "epo"),
    "train_grpo_scienceworld.sh": ("scienceworld", "grpo", "baseline"),
    "train_grpo_epo_scienceworld.sh": ("scienceworld", "grpo", "epo"),
    "train_ppo_alfworld.sh": ("alfworld", "ppo", "baseline"),
    "train_ppo_epo_alfworld.sh": ("alfworld", "ppo", "epo"),
    "train_grpo_alfworld.sh": ("alfworld", "grpo", "baseline"),
    "train_grpo_epo_alfworld.sh": ("alfworld", "grpo", "epo"),
    "train_gigpo_scienceworld.sh": ("scienceworld", "gigpo", "baseline"),
    "train_gigpo_epo_scienceworld.sh": ("scienceworld", "gigpo", "epo"),
    "train_gigpo_alfworld.sh": ("alfworld", "gigpo", "baseline"),
    "train_gigpo_epo_alfworld.sh": ("alfworld", "gigpo", "epo"),
    "train_ablation_epo_base_scienceworld.sh": ("scienceworld", "ppo", "epo_base"),  # section 5.3, B.4.1
    "train_ablation_epo_base_alfworld.sh": ("alfworld", "ppo", "epo_base"),  # B.3, figure 6 (b,d,f)
    "train_ablation_epo_wo_dw_alfworld.sh": ("alfworld", "ppo", "epo_wo_dw"),  # section 5.3, figure 3 (d-f)
    "train_ablation_epo_decay_scienceworld.sh": ("scienceworld", "ppo", "epo_decay"),  # B.4.1, figure 7
    "train_ablation_ea_scienceworld.sh": ("scienceworld", "ppo", "ea"),  # B.4.2, figure 8
}
# Runs: every script with its defaults, plus GRPO+EPO-Base on ScienceWorld (appendix B.3, figure 6 a,c,e)
RUNS = [(name, ()) for name in LAUNCH_SCRIPTS] + [("train_ablation_epo_base_scienceworld.sh", (("ALGO", "grpo"),))]


def run_id(run):
    name, env = run
    return name + "".join(f"[{k}={v}]" for k, v in env)


# ---- harness (launcher_stubs.py: the stubs and the bash run) --------------------------------------------------


def trainer_flags(calls: list, launcher: str = "ray") -> list:
    """The train_ppo_ray flags of the one launch call, checking the launcher prefix on the way."""
    launches = [c["argv"] for c in calls if c["cmd"] == launcher]
    assert len(launches) == 1, f"expected one `{launcher}` call, got {calls}"
    argv = launches[0]
    prefix = RAY_SUBMIT + TRAINER if launcher == "ray" else TRAINER[1:]
    assert argv[: len(prefix)] == prefix, argv[:8]
    return argv[len(prefix):]


@contextmanager
def restored_environ():
    """train_ppo_ray's checks export settings for the Ray workers (OPENRLHF_EPO_AGENT, OPENRLHF_EPO_DEVICE=cuda):
    keep them out of the rest of the test session."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def parse(flags: list):
    """parse_train_ppo_args as on the GPU node the scripts are written for: they ask for `--runtime.device cuda`,
    which the patched CLI refuses where torch sees no CUDA device (this test's machine may have none)."""
    with restored_environ(), mock.patch("torch.cuda.is_available", return_value=True):
        return parse_train_ppo_args(flags)


class Run:
    def __init__(self, name, env, work, first_calls, second_calls, flags, args):
        self.name, self.env, self.work = name, dict(env), work
        self.first_calls, self.second_calls, self.flags, self.args = first_calls, second_calls, flags, args

    @property
    def data_calls(self):
        return [c["argv"] for c in self.first_calls if c["cmd"] == "openrlhf-epo"]


@pytest.fixture(scope="module")
def stubs(tmp_path_factory):
    return make_stubs(tmp_path_factory.mktemp("stubs"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, stubs):
    """Every run: the script twice in a fresh folder (datasets built, then reused), its flags parsed once."""
    out = {}
    for run in RUNS:
        name, env = run
        work = tmp_path_factory.mktemp(name.replace(".sh", ""))
        first = run_script(SCRIPTS / name, work, stubs, **dict(env))
        second = run_script(SCRIPTS / name, work, stubs, **dict(env))
        flags = trainer_flags(first)
        out[run] = Run(name, env, work, first, second, flags, parse(flags))
    return out


# ---- tests ------------------------------------------------------------------------------------------------------------
def test_every_gpu_launch_script_has_expected_values():
    assert LAUNCH_SCRIPTS, f"no train_*.sh in {SCRIPTS}"
    missing = sorted(set(LAUNCH_SCRIPTS) - set(EXPECTED))
    assert not missing, f"add the expected environment / algorithm / EPO variant of {missing} to EXPECTED"
    assert sorted(EXPECTED) == LAUNCH_SCRIPTS, f"scripts gone: {sorted(set(EXPECTED) - set(LAUNCH_SCRIPTS))}"


@pytest.mark.parametrize("run", RUNS, ids=run_id)
def test_script_submits_through_ray_and_the_real_parser_accepts_it(runs, run):
    r = runs[run]
    assert r.args.actor.model_name_or_path  # parse_train_ppo_args returned the validated args
    assert [c["cmd"] for c in r.first_calls] == ["openrlhf-epo"] * 3 + ["ray"]
    names = [flag for flag in r.flags if flag.startswith("--")]
    assert len(names) == len(set(names)), f"a flag given twice (the last silently wins): {names}"


@pytest.mark.parametrize("run", RUNS, ids=run_id)
def test_script_builds_its_datasets_once_and_trains_and_evaluates_on_them(runs, run):
    r = runs[run]
    env_name, _, _ = EXPECTED[r.name]
    parsed = [epo_cli_parser().parse_args(argv) for argv in r.data_calls]  # the real `openrlhf-epo` parser
    assert [(p.command, p.env, p.split) for p in parsed] == [("data", env_name, s) for s in ("train", "iid", "ood")]
    # table 1's ALFWorld numbers are on ALFWorld's own games: asked for explicitly
    assert {p.source for p in parsed} == {"official" if env_name == "alfworld" else "auto"}
    out = {p.split: p.out for p in parsed}
    assert all(Path(path).is_absolute() and Path(path).stat().st_size > 0 for path in out.values())
    assert r.args.data.prompt_dataset == out["train"]
    assert r.args.eval.dataset.split(",") == [out["iid"], out["ood"]]
    # second run: the files exist, nothing is rebuilt, the same command is submitted
    assert [c["cmd"] for c in r.second_calls] == ["ray"]
    assert trainer_flags(r.second_calls) == r.flags


@pytest.mark.parametrize("run", RUNS, ids=run_id)
def test_script_sets_the_papers_hyperparameters(runs, run):
    r = runs[run]
    a = r.args
    env_name, algo, _ = EXPECTED[r.name]
    algo = r.env.get("ALGO", algo)
    env = ENVS[env_name]
    lr, mini_batch, micro_batch = TABLES[(env_name, algo)]

    assert a.actor.model_name_or_path == env["model"]
    assert a.train.seed == SEED
    # hybrid engine on one 8-GPU node
    assert a.train.colocate_all and a.vllm.enable_sleep and a.ds.enable_sleep
    assert a.vllm.gpu_memory_utilization == 0.5
    assert a.actor.num_nodes == 1 and a.actor.num_gpus_per_node == 8
    assert a.vllm.num_engines * a.vllm.tensor_parallel_size == 8
    assert a.runtime.device == "cuda"
    # the agent loop in the paper's per-turn setting
    assert a.agent.mode == "per_turn" and a.train.agent_func_path == EXECUTOR_FILE
    assert (a.agent.max_prompt_tokens, a.agent.max_response_tokens, a.data.max_len) == (2048, 512, 2560)
    assert a.agent.max_turns == env["max_turns"] and a.agent.history_length == 2
    assert (a.data.input_key, a.data.label_key) == ("prompt", "label")
    # algorithm
    if algo == "ppo":
        assert a.algo.advantage.estimator == "gae"
        assert a.critic.model_name_or_path == env["model"]
        assert a.critic.adam.lr == lr
        assert a.algo.advantage.gamma == 1.0  # section 3.2
    else:
        assert a.algo.advantage.estimator == {"grpo": "group_norm", "gigpo": "gigpo"}[algo]
        assert a.critic.model_name_or_path is None
        assert a.rollout.n_samples_per_prompt == GROUP_SIZE
    if algo == "gigpo":
        assert vars(a.algo.gigpo) == GIGPO and a.agent.invalid_penalty == GIGPO_INVALID_PENALTY
    else:
        assert a.agent.invalid_penalty == 0.0  # the EPO paper's rows: no penalty
    # tables 2-3
    assert a.actor.adam.lr == lr
    assert (a.train.batch_size, a.train.micro_batch_size) == (mini_batch, micro_batch)
    assert a.actor.lr_scheduler == "cosine_with_min_lr"
    assert (a.actor.lr_warmup_ratio, a.actor.min_lr_ratio) == (0.1, 0.2)
    assert a.eval.steps == 5
    # K: the RL steps of the run (what --actor.epo.total_steps 0 reads) is the table's
    train_tasks = epo_cli_parser().parse_args(r.data_calls[0]).n
    steps = math.ceil(train_tasks / a.rollout.batch_size) * a.train.num_episodes
    assert steps == env["total_steps"]
    assert a.rollout.batch_size * a.rollout.n_samples_per_prompt == 128  # episodes per RL step, both algorithms
    # outputs under SAVE_DIR = $SAVE_ROOT/<run>_seed7
    save = Path(a.logger.jsonl_path).parent
    assert save.parent == r.work / "save" and save.name.endswith(f"_seed{SEED}") and env_name in save.name
    assert Path(a.logger.jsonl_path) == save / "metrics.jsonl"
    assert Path(a.logger.tensorboard_dir).parent == save and Path(a.ckpt.path).parent == save


@pytest.mark.parametrize("run", RUNS, ids=run_id)
def test_script_turns_epo_on_exactly_for_its_variant(runs, run):
    r = runs[run]
    env_name, _, variant = EXPECTED[r.name]
    epo = r.args.actor.epo
    for field, want in VARIANTS[variant].items():
        want = ENVS[env_name]["smooth_coef"] if want is ENV_SMOOTH else want
        assert getattr(epo, field) == want, f"{r.name}: --actor.epo.{field} is {getattr(epo, field)!r}, not {want!r}"
    assert r.args.actor.entropy_coef is None  # no upstream entropy bonus beside EPO's
    if variant == "baseline":
        assert not any(flag.startswith("--actor.epo.") for flag in r.flags)


def test_ablation_algorithm_is_a_variable(runs):
    ppo = runs[("train_ablation_epo_base_scienceworld.sh", ())].args
    grpo = runs[("train_ablation_epo_base_scienceworld.sh", (("ALGO", "grpo"),))].args
    assert (ppo.algo.advantage.estimator, grpo.algo.advantage.estimator) == ("gae", "group_norm")
    assert Path(ppo.ckpt.path).parent.name == f"ppo_epo_base_scienceworld_seed{SEED}"
    assert Path(grpo.ckpt.path).parent.name == f"grpo_epo_base_scienceworld_seed{SEED}"


def test_empty_launch_runs_python3_directly_and_extra_args_come_last(tmp_path, stubs):
    calls = run_script(SCRIPTS / "train_grpo_epo_alfworld.sh", tmp_path, stubs, LAUNCH="",
                       EXTRA_ARGS="--eval.steps 10 --ckpt.save_steps 50")
    assert "ray" not in [c["cmd"] for c in calls]
    flags = trainer_flags(calls, launcher="python3")
    assert flags[-4:] == ["--eval.steps", "10", "--ckpt.save_steps", "50"]
    args = parse(flags)
    assert (args.eval.steps, args.ckpt.save_steps) == (10, 50)


@pytest.mark.parametrize("script, file, good, bad", [
    ("train_ablation_epo_wo_dw_alfworld.sh", "train_ablation_epo_wo_dw_alfworld.sh",
     "--actor.epo.beta_schedule constant", "--actor.epo.beta_shedule constant"),
    ("train_ppo_scienceworld.sh", "epo_common.sh", "--train.colocate_all\n", "--train.colocate_everything\n"),
])
def test_a_misspelled_flag_is_refused_by_the_parser(tmp_path, stubs, script, file, good, bad):
    folder = tmp_path / "scripts"
    folder.mkdir()
    for name in {script, "epo_common.sh", "epo_env.sh"}:
        shutil.copy(SCRIPTS / name, folder / name)
    text = (folder / file).read_text()
    assert text.count(good) == 1
    (folder / file).write_text(text.replace(good, bad))
    work = tmp_path / "work"
    work.mkdir()
    flags = trainer_flags(run_script(folder / script, work, stubs))
    assert bad.split()[0] in flags
    with pytest.raises(SystemExit) as refused:
        parse(flags)
    assert refused.value.code == 2  # argparse: unrecognized arguments


ALFWORLD_SCRIPTS = [name for name in LAUNCH_SCRIPTS if EXPECTED[name][0] == "alfworld"]


@pytest.mark.parametrize("name", ALFWORLD_SCRIPTS)
def test_alfworld_scripts_refuse_to_start_without_the_official_games(name, tmp_path, stubs):
    done = launch(SCRIPTS / name, tmp_path, stubs)  # no ~/.cache/alfworld, no ALFWORLD_DATA
    assert done.returncode == 2
    assert "table 1's ALFWorld numbers are on ALFWorld's own games" in done.stderr
    assert "alfworld-download" in done.stderr and "ALFWORLD_GAMES=generated" in done.stderr
    assert not (tmp_path / "calls.jsonl").exists()  # refused before any dataset is built or job submitted


def test_generated_alfworld_games_are_asked_for_by_name(tmp_path, stubs):
    name = ALFWORLD_SCRIPTS[0]
    done = launch(SCRIPTS / name, tmp_path, stubs, ALFWORLD_GAMES="generated")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "not comparable with table 1" in done.stderr
    calls = [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    parsed = [epo_cli_parser().parse_args(c["argv"]) for c in calls if c["cmd"] == "openrlhf-epo"]
    assert [p.source for p in parsed] == ["generated"] * 3
    assert all(p.out.endswith("_generated.jsonl") for p in parsed)  # never mixed up with official datasets
    elsewhere = tmp_path / "elsewhere"
    official_alfworld_data(elsewhere)  # ALFWORLD_DATA points at the data, wherever it is
    done = launch(SCRIPTS / name, tmp_path, stubs, ALFWORLD_DATA=str(elsewhere / ".cache" / "alfworld"))
    assert done.returncode == 0, done.stderr[-3000:]
    bogus = launch(SCRIPTS / name, tmp_path, stubs, ALFWORLD_GAMES="mine")
    assert bogus.returncode == 2 and "ALFWORLD_GAMES=mine is not one of official, generated" in bogus.stderr

"""`openrlhf-epo plot`: figures and Succ.* / Succ.-bar (appendix B.1.2) from JSONL and tensorboard training logs."""
import json
import math

import pytest

from openrlhf_epo.tools import cli
from openrlhf_epo.tools.plot import running_average, spread

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _write(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _train(step, **metrics):
    return {"kind": "train", "step": step, "time": 0.0, **metrics}


def _eval(step, **metrics):
    return {"kind": "eval", "step": step, "time": 0.0, **metrics}


def _epo_train(step, batch):
    return _train(step, **{"rollout/success_rate": batch / 4, "epo/batch_entropy": batch,
                           "epo/hbar": None if step == 1 else 1.0, "epo/entropy_early": batch + 0.5,
                           "epo/entropy_late": batch - 0.5, "epo/entropy_turn_0": batch + 0.5,
                           "epo/entropy_first_tokens": batch + 0.2, "epo/entropy_last_tokens": batch - 0.2,
                           "epo/entropy_turn_1": batch - 0.5})


def _plot(capsys, *argv):
    code = cli.main(["plot", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def alfworld_runs(tmp_path):
    """Two EPO seeds with ALFWorld IID/OOD evaluations at steps 100, 125, 140, 150, and a baseline without epo/*."""
    iid = {0: [0.9, 0.5, 0.7, 0.6], 1: [0.4, 0.8, 0.6, 1.0]}
    ood = {0: [0.2, 0.3, 0.3, 0.3], 1: [0.6, 0.4, 0.5, 0.6]}
    paths = []
    for seed in (0, 1):
        rows = [_epo_train(step, 1.0 + 0.1 * step + 0.05 * seed) for step in range(1, 6)]
        for step, a, b in zip((100, 125, 140, 150), iid[seed], ood[seed]):
            if seed == 0 and step == 140:  # the first pass of a resumed run: its re-logged line below must win
                rows.append(_eval(step, eval_alfworld_iid_pass1=0.99, eval_alfworld_ood_pass1=0.99))
            rows.append(_eval(step, eval_alfworld_iid_pass1=a, eval_alfworld_ood_pass1=b, eval_success_rate=None))
        paths.append(_write(tmp_path / f"epo_s{seed}.jsonl", rows))
    base = [_train(step, **{"rollout/reward_mean": 0.5 * step}) for step in range(1, 6)]
    base += [_eval(step, eval_alfworld_iid_pass1=v) for step, v in ((100, 0.25), (125, 0.5), (150, 0.75))]
    paths.append(_write(tmp_path / "ppo_s0.jsonl", base))
    return paths


def test_summary_is_the_papers_succ_star_and_succ_bar_over_seeds(tmp_path, capsys, alfworld_runs):
    epo0, epo1, ppo = alfworld_runs
    out = tmp_path / "figures"
    code, stdout, stderr = _plot(capsys, "--run", f"PPO+EPO={epo0},{epo1}", "--run", f"PPO={ppo}", "--out", out)
    assert code == 0, stderr
    summary = json.loads((out / "summary.json").read_text())["methods"]

    iid = summary["PPO+EPO"]["alfworld_iid"]
    # Succ.*: per seed the maximum over all evaluations (seed 0: 0.9, not the overwritten 0.99; seed 1: 1.0)
    assert iid["succ_star"]["per_seed"] == pytest.approx([0.9, 1.0])
    assert iid["succ_star"]["mean"] == pytest.approx(0.95)
    assert iid["succ_star"]["std"] == pytest.approx(math.sqrt((0.05**2 + 0.05**2) / 1))
    # Succ.-bar: ALFWorld's window is step 125 onward, inclusive: seed 0 (0.5+0.7+0.6)/3, seed 1 (0.8+0.6+1.0)/3
    assert iid["succ_bar"]["per_seed"] == pytest.approx([0.6, 0.8])
    assert iid["succ_bar"]["mean"] == pytest.approx(0.7)
    assert iid["succ_bar"]["std"] == pytest.approx(math.sqrt(0.1**2 + 0.1**2))
    assert iid["succ_bar"]["windows"] == ["125-", "125-"]

    ood = summary["PPO+EPO"]["alfworld_ood"]
    assert ood["succ_star"]["per_seed"] == pytest.approx([0.3, 0.6])  # 0.99 at step 140 was re-logged as 0.3
    assert ood["succ_bar"]["per_seed"] == pytest.approx([0.3, 0.5])
    assert ood["succ_bar"]["mean"] == pytest.approx(0.4)

    ppo_iid = summary["PPO"]["alfworld_iid"]
    assert ppo_iid["succ_star"] == {"mean": 0.75, "std": None, "per_seed": [0.75]}  # one seed: no std
    assert ppo_iid["succ_bar"]["mean"] == pytest.approx((0.5 + 0.75) / 2)
    assert "overall" not in summary["PPO+EPO"]  # eval_success_rate was only ever null

    assert "PPO+EPO        alfworld_iid" in stdout and "0.950 ± 0.071" in stdout and "0.700 ± 0.141" in stdout
    # the baseline has no epo/* metrics: its entropy figures are skipped with a note, not a crash
    assert "entropy_band_PPO.png: PPO logs no epo/batch_entropy" in stdout
    assert "reward.png" in stdout


def test_every_figure_is_a_loadable_png(tmp_path, capsys, alfworld_runs):
    from matplotlib.image import imread

    epo0, epo1, ppo = alfworld_runs
    out = tmp_path / "figures"
    code, _, stderr = _plot(capsys, "--run", f"PPO+EPO={epo0},{epo1}", "--run", f"PPO={ppo}", "--out", out,
                            "--spread", "minmax", "--smooth", "3")
    assert code == 0, stderr
    expected = {"reward.png", "success_alfworld_iid.png", "success_alfworld_ood.png", "entropy_early_late.png",
                "entropy_first_last_tokens.png", "entropy_band_PPO_EPO.png", "entropy_turns_PPO_EPO.png"}
    assert {p.name for p in out.glob("*.png")} == expected
    for name in expected:
        assert (out / name).read_bytes()[:8] == PNG_MAGIC, name
        image = imread(out / name)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100 and image.std() > 0, name


def test_scienceworld_windows_are_given_per_seed(tmp_path, capsys):
    curves = {0: [0.1, 0.2, 0.4, 0.6, 0.3], 1: [0.0, 0.5, 0.5, 0.9, 0.7]}
    paths = [_write(tmp_path / f"s{seed}.jsonl",
                    [_eval(step, eval_scienceworld_iid_pass1=v) for step, v in enumerate(curve, start=1)])
             for seed, curve in curves.items()]
    out = tmp_path / "figures"
    code, _, stderr = _plot(capsys, "--run", f"GRPO={paths[0]},{paths[1]}", "--out", out, "--window", "GRPO=2-4,3")
    assert code == 0, stderr
    entry = json.loads((out / "summary.json").read_text())["methods"]["GRPO"]["scienceworld_iid"]
    assert entry["succ_star"]["per_seed"] == pytest.approx([0.6, 0.9])
    assert entry["succ_star"]["std"] == pytest.approx(math.sqrt(2 * 0.15**2))
    # seed 0: steps 2..4 -> (0.2+0.4+0.6)/3; seed 1: steps 3..end -> (0.5+0.9+0.7)/3
    assert entry["succ_bar"]["per_seed"] == pytest.approx([0.4, 0.7])
    assert entry["succ_bar"]["mean"] == pytest.approx(0.55)
    assert entry["succ_bar"]["windows"] == ["2-4", "3-"]

    # no window: the paper fixes none for ScienceWorld, so Succ.-bar stays null and the note says what to pass
    code, stdout, _ = _plot(capsys, "--run", f"GRPO={paths[0]},{paths[1]}", "--out", out)
    assert code == 0
    entry = json.loads((out / "summary.json").read_text())["methods"]["GRPO"]["scienceworld_iid"]
    assert entry["succ_bar"]["mean"] is None and entry["succ_star"]["mean"] == pytest.approx(0.75)
    assert "pass --window GRPO=START" in stdout


def test_tensorboard_logs_are_read_like_jsonl(tmp_path, capsys):
    from torch.utils.tensorboard import SummaryWriter

    run = tmp_path / "tb" / "run_name"  # TensorboardLogger writes into tensorboard_dir/<run_name>
    writer = SummaryWriter(log_dir=str(run))
    for step, (reward, success) in enumerate([(0.25, 0.25), (0.5, 0.5), (0.75, 1.0)], start=1):
        for key, value in {"rollout/success_rate": reward, "global_step": step}.items():
            writer.add_scalar(f"train/{key}", value, step)
        for key, value in {"eval_alfworld_iid_pass1": success, "global_step": step}.items():
            writer.add_scalar(f"eval/{key}", value, step)
    writer.close()
    resumed = SummaryWriter(log_dir=str(run))  # a resumed run re-logs step 3 in a second event file
    resumed.add_scalar("eval/eval_alfworld_iid_pass1", 0.5, 3)
    resumed.close()

    out = tmp_path / "figures"
    code, _, stderr = _plot(capsys, "--run", f"GRPO={tmp_path / 'tb'}", "--out", out, "--window", "2")
    assert code == 0, stderr
    entry = json.loads((out / "summary.json").read_text())["methods"]["GRPO"]["alfworld_iid"]
    assert entry["succ_star"]["per_seed"] == [0.5]  # the re-logged 0.5 replaced 1.0
    assert entry["succ_bar"]["per_seed"] == [0.5]  # steps 2 and 3: (0.5 + 0.5) / 2
    assert (out / "reward.png").read_bytes()[:8] == PNG_MAGIC
    assert (out / "success_alfworld_iid.png").exists()


def test_curve_mean_shade_and_smoothing():
    assert running_average([1.0, 2.0, 6.0, 3.0], 3) == pytest.approx([1.5, 3.0, 11 / 3, 4.5])
    assert running_average([1.0, 2.0], 0) == [1.0, 2.0]
    mean, low, high = spread([[1.0, 4.0], [3.0, 4.0]], "std")
    assert mean == [2.0, 4.0] and low == pytest.approx([2 - math.sqrt(2), 4.0]) and high[0] == pytest.approx(2 + 2**0.5)
    assert spread([[1.0, 4.0], [3.0, 5.0], [2.0, 0.0]], "minmax") == ([2.0, 3.0], [1.0, 0.0], [3.0, 5.0])


def test_curves_use_only_steps_every_seed_logged(tmp_path, capsys):
    from openrlhf_epo.tools.plot import align, read_run

    a = _write(tmp_path / "a.jsonl", [_train(s, **{"rollout/success_rate": s}) for s in (1, 2, 3, 4)])
    b = _write(tmp_path / "b.jsonl", [_train(s, **{"rollout/success_rate": s * 10}) for s in (2, 3, 5)])
    steps, values = align([read_run(p).series("train", "rollout/success_rate") for p in (a, b)])
    assert steps == [2, 3] and values == [[2.0, 3.0], [20.0, 30.0]]


@pytest.mark.parametrize(
    "make, argv, message",
    [
        (None, ["--run", "PPO={missing}"], "missing.jsonl does not exist"),
        (None, ["--run", "{good}"], "has no '=': expected LABEL=PATH"),
        ("bad_json", ["--run", "PPO={bad}"], "bad.jsonl:2: not valid JSON"),
        ("bad_value", ["--run", "PPO={bad}"], "bad.jsonl:1: metric 'rollout/success_rate' is 'high'"),
        ("bad_kind", ["--run", "PPO={bad}"], "bad.jsonl:1: kind 'test' is not one of train, eval"),
        ("nothing", ["--run", "PPO={bad}"], "nothing to plot"),
        (None, ["--run", "PPO={good}", "--window", "GRPO=10"], "no --run labelled 'GRPO' (labels: PPO)"),
        (None, ["--run", "PPO={good}", "--window", "PPO=1,2"], "gives 2 windows; PPO has 1 seed(s)"),
        (None, ["--run", "PPO={good}", "--window", "9-3"], "END 3 is before START 9"),
        (None, ["--run", "PPO={good}", "--smooth", "-1"], "--smooth -1 must be >= 0"),
        (None, ["--run", "PPO={good}", "--run", "PPO={good}"], "label 'PPO' is given twice"),
        (None, ["--run", "PPO={empty_dir}"], "without tensorboard event files"),
    ],
)
def test_bad_inputs_are_named(tmp_path, capsys, make, argv, message):
    good = _write(tmp_path / "good.jsonl", [_train(1, **{"rollout/success_rate": 0.5})])
    bad = tmp_path / "bad.jsonl"
    contents = {
        "bad_json": json.dumps(_train(1)) + "\n{\"kind\": \"train\", \"step\": 2,\n",
        "bad_value": json.dumps(_train(1, **{"rollout/success_rate": "high"})) + "\n",
        "bad_kind": json.dumps({"kind": "test", "step": 1}) + "\n",
        "nothing": json.dumps(_train(1, loss=0.3)) + "\n" + json.dumps(_eval(1, eval_loss=1.0)) + "\n",
    }
    if make:
        bad.write_text(contents[make])
    (tmp_path / "empty_dir").mkdir()
    paths = {"missing": tmp_path / "missing.jsonl", "good": good, "bad": bad, "empty_dir": tmp_path / "empty_dir"}
    code, _, stderr = _plot(capsys, *[a.format(**paths) for a in argv], "--out", tmp_path / "figures")
    assert code == 1
    assert message in stderr, stderr

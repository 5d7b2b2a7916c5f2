"""`openrlhf-epo sft-data {alfworld,scienceworld,signpost} --n N --tokenizer MODEL_DIR --out FILE.jsonl`: a format warm-up
dataset of expert turns for OpenRLHF's SFT trainer.

Why: a small pretrained chat model (SmolLM2-135M-Instruct) prompted with the paper's prompts writes no
`<action>...</action>` at all, so from a cold start every RL turn is invalid and every reward 0. A short SFT on the
experts' turns teaches the output format (and a little of the games) before EPO starts.

How: each task instance is played to the end by the expert inside the agent loop itself (`run_episode`, with an
engine stand-in that answers turn t with the expert's t-th action), so every prompt is by construction the one the
agent loop renders at that turn: the paper's prompt with the last h (observation, action) pairs and the admissible
actions, through the model's chat template with the generation prompt, fitted to the prompt budget by `fit_prompt`.
The response is `<think>{one templated, true sentence}</think><action>{expert action}</action>`. Experts: ALFWorld's
PDDL planner (the plan stored in every generated game: `AlfWorldEnv.walkthrough`), ScienceWorld's gold paths
(`get_gold_action_sequence` of the stock simulator). Only train-split instances are used; an instance whose expert
does not win within the turn budget is left out and counted.

One JSON line per turn:
  {"prompt": "<chat-rendered prompt, special tokens included>",
   "response": "<think>...</think><action>...</action><eos token>",
   "label": "<TaskSpec JSON>", "turn": t, "datasource": "<env>_sft"}
"prompt" is the exact text of the agent loop's prompt ids (tokenizing it gives those ids back: checked for every
line), so the SFT trainer must not wrap it again. It joins prompt + response and tokenizes them together, trains on
the tokens after the prompt, and forces the last token to be the eos token (appending " " + eos when the text does
not end with it); the response therefore ends with the eos token. A sample is then exactly the agent loop's prompt
ids, the ids of the expert response, and eos; the loss covers the response ids and eos (checked for every line).
Train with:

  python -m openrlhf.cli.train_sft --model.model_name_or_path MODEL_DIR --data.dataset FILE.jsonl \\
      --data.input_key prompt --data.output_key response --data.input_template '{}' \\
      --data.max_len L          # L >= the longest line, printed by this command ("longest: N tokens")

and WITHOUT --data.apply_chat_template (it would render the prompt through the template a second time and let the
template rewrite the response: Qwen3's moves <think> content) and without --data.multiturn. `--data.input_template '{}'`
passes the prompt through unchanged (the default, "User: {}\\nAssistant: ", would wrap it). The dataset is specific to
the tokenizer it was built with: use the same model folder for --tokenizer and --model.model_name_or_path (then
the SFT output folder as the RL run's --actor.model_name_or_path).
"""
import asyncio
import json
import os
import random
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace as NS
from typing import Dict, Iterator, List, Optional, Tuple

from openrlhf_epo.agent.episode import Episode, EpisodeConfig, run_episode
from openrlhf_epo.envs.base import TaskSpec, TextEnv

ENVS = ("alfworld", "scienceworld", "signpost")
# expert: the environment's expert plays (the format and some of the games); random: uniformly random admissible
# actions (the format only, no expertise: a model warmed up on them succeeds about as often as chance)
POLICIES = ("expert", "random")


# ------------------------------------------------------------------------------------------------- the response
def goal_of(task: str) -> str:
    """The task's first sentence without its lead-in: "put a clean mug in coffeemachine" from ALFWorld's "Your task
    is to: put a clean mug in coffeemachine.", "find a(n) living thing" from ScienceWorld's "Task Description:\nYour
    task is to find a(n) living thing. First, focus on the thing. Then, ..."."""
    text = " ".join(task.split())
    text = re.sub(r"^(Task Description:\s*)?Your (current )?task is(:| to:?)\s*", "", text, flags=re.IGNORECASE)
    text = re.sub(r"^to\s+", "", text)
    first = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
    return first.rstrip(".!? ")


RESTATED_WORDS = 20  # a longer last sentence (a ScienceWorld room listing) is not restated: it would crowd the budget


def last_sentence(observation: str) -> str:
    """The observation's last sentence, on one line ("A signpost points north." of a Signpost clearing), or "" when
    it is longer than RESTATED_WORDS words."""
    text = " ".join(observation.split())
    last = re.split(r"(?<=[.!?])\s", text)[-1] if text else ""
    return last if len(last.split()) <= RESTATED_WORDS else ""


def expert_response(task: str, action: str, observation: str = "") -> str:
    """The target turn: one true sentence of reasoning (the expert does follow a plan), then the expert's action."""
    reasoning = f"The task is to {goal_of(task)}. The next step of my plan is: {action}."
    return f"<think>{reasoning}</think><action>{action}</action>"


def random_response(task: str, action: str, observation: str = "") -> str:
    """The random policy's turn: true sentences too (the task, and what it sees: the observation's last sentence;
    it follows no plan), then its action.

    Why restate the observation: reading it is the format the prompt asks for ("reason step-by-step about the
    current situation"), not expertise: the action stays random, so a model warmed up on it succeeds about as often
    as chance, but what it must act on is then in its own words a few tokens before the action, and RL has a short
    step to learn (README, "Learning on the built-in environment": the measured runs).
    """
    seen = last_sentence(observation)
    seen = f" {seen}" if seen else ""
    return f"<think>The task is to {goal_of(task)}.{seen} I will try: {action}.</think><action>{action}</action>"


RESPONSES = {"expert": expert_response, "random": random_response}


class ExpertEngine:
    """Stand-in for the generation engine at `run_episode`'s seam: turn t answers with the expert's t-th action.

    It honours the seam's contract (token ids and text of one output, finish reason "stop" on `</action>`, which is
    where the agent loop's stop string would end a real generation).
    """

    def __init__(self, tokenizer, task: str, plan: List[str], respond=expert_response,
                 seen: Optional[List[str]] = None):
        self.tokenizer, self.task, self.plan, self.turn, self.respond = tokenizer, task, list(plan), 0, respond
        self.seen = list(seen) if seen is not None else [""] * len(self.plan)  # turn t's observation

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        if self.turn >= len(self.plan):
            raise RuntimeError(f"the episode asked for turn {self.turn + 1} of a {len(self.plan)}-step plan; "
                               "the environment did not end it when the plan was done")
        text = self.respond(self.task, self.plan[self.turn], self.seen[self.turn])
        self.turn += 1
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return NS(outputs=[NS(token_ids=ids, text=text, finish_reason="stop", logprobs=None)])


# ------------------------------------------------------------------------------------------------- the records
def turn_records(episode: Episode, tokenizer) -> List[dict]:
    """One SFT line per turn of an expert episode, each checked to train on exactly the agent loop's tokens."""
    eos = tokenizer.eos_token
    where = f"{episode.spec.env} {episode.spec.task} #{episode.spec.variation}"
    records = []
    for turn in episode.turns:
        prompt = tokenizer.decode(turn.prompt_ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        if _ids(tokenizer, prompt) != turn.prompt_ids:
            # fit_prompt cuts from the left only when the prompt is too long even without any action listed
            raise ValueError(f"{where}, turn {turn.index}: the prompt was cut to fit --max-prompt-tokens and its text "
                             "no longer tokenizes to the same ids; raise --max-prompt-tokens")
        response = turn.response_text + eos
        if _ids(tokenizer, prompt + response) != turn.prompt_ids + turn.response_ids + [tokenizer.eos_token_id]:
            raise ValueError(f"{where}, turn {turn.index}: this tokenizer merges tokens across the prompt / response "
                             "boundary, so the SFT trainer would not see the agent loop's tokens")
        records.append({"prompt": prompt, "response": response, "label": episode.spec.to_json(), "turn": turn.index,
                        "datasource": f"{episode.spec.env}_sft"})
    return records


def _ids(tokenizer, text: str) -> List[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


# ------------------------------------------------------------------------------------------------ expert plans
def alfworld_expert_games(n: int, seed: int, tasks: Optional[List[str]], max_turns: int
                          ) -> Iterator[Tuple[TextEnv, TaskSpec, str, List[str]]]:
    """(env, spec, task, plan) of n generated train games; plan = the planner's plan stored in the game."""
    from openrlhf_epo.envs.alfworld_env import AlfWorldEnv, alfworld_task_specs

    specs = alfworld_task_specs("train", n, seed, tasks)
    with AlfWorldEnv(max_turns=max_turns) as env:
        for spec in specs:
            observation = env.reset(spec, False)
            yield env, spec, observation.task, env.walkthrough or []


def scienceworld_expert_games(n: int, seed: int, tasks: Optional[List[str]], max_turns: int
                              ) -> Iterator[Tuple[TextEnv, TaskSpec, str, List[str]]]:
    """(env, spec, task, plan) of n train variations; plan = the stock simulator's gold path (a second JVM)."""
    from scienceworld import ScienceWorldEnv as Stock

    from openrlhf_epo.envs.scienceworld_env import ScienceWorldEnv
    from openrlhf_epo.envs.scienceworld_splits import scienceworld_task_specs

    specs = scienceworld_task_specs("train", n, seed, tasks)
    stock = Stock("", envStepLimit=10_000)
    try:
        with ScienceWorldEnv(max_turns=max_turns) as env:
            for spec in specs:
                stock.load(spec.task, spec.variation, spec.extra.get("simplifications", env.simplifications),
                           generateGoldPath=True)
                observation = env.reset(spec, False)
                yield env, spec, observation.task, list(stock.get_gold_action_sequence())
    finally:
        stock.close()


def signpost_expert_games(n: int, seed: int, tasks: Optional[List[str]], max_turns: int
                          ) -> Iterator[Tuple[TextEnv, TaskSpec, str, List[str]]]:
    """(env, spec, task, plan) of n train trails; plan = the signposts' directions."""
    from openrlhf_epo.envs.signpost_env import SignpostEnv, signpost_task_specs

    with SignpostEnv(max_turns=max_turns) as env:
        for spec in signpost_task_specs("train", n, seed, tasks):
            observation = env.reset(spec, False)
            yield env, spec, observation.task, env.expert_plan()


EXPERTS = {"alfworld": alfworld_expert_games, "scienceworld": scienceworld_expert_games,
           "signpost": signpost_expert_games}


# ----------------------------------------------------------------------------------------------- random policy
def random_plan(env: TextEnv, spec: TaskSpec, turns: int, rng: random.Random) -> Tuple[List[str], List[str]]:
    """Uniformly random admissible actions, one per turn, until the episode ends or `turns` are taken, and the
    observation each was chosen on. Played on env itself; the environments are deterministic given the spec, so the
    agent loop replays the same episode."""
    first = env.reset(spec)
    actions, observation, plan, seen = first.admissible, first.text, [], []
    for _ in range(turns):
        if not actions:
            break
        plan.append(rng.choice(actions))
        seen.append(observation)
        result = env.step(plan[-1], with_admissible=True)
        if result.done:
            break
        actions, observation = result.admissible, result.observation
    return plan, seen


# ---------------------------------------------------------------------------------------------------- the file
@dataclass
class SFTStats:
    games: int = 0
    lines: int = 0
    longest: int = 0  # tokens of the longest prompt + response + eos: the --data.max_len it needs
    skipped: Dict[str, str] = field(default_factory=dict)  # instance -> why its expert episode was left out


def load_tokenizer(folder: str):
    """The tokenizer of a local model folder (never the network), which must have a chat template and an eos."""
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise ValueError(f"--tokenizer {folder!r} is not a folder; pass a local model folder (e.g. the one "
                         "openrlhf_epo.runtime.offline_models.smollm2_dir() returns)")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ValueError(f"--tokenizer {folder!r} holds no loadable tokenizer: {exc}") from None
    if not tokenizer.chat_template:
        raise ValueError(f"the tokenizer in {folder!r} has no chat template; the agent loop needs one")
    if tokenizer.eos_token is None:
        raise ValueError(f"the tokenizer in {folder!r} has no eos token; OpenRLHF's SFT trainer ends every sample "
                         "with it")
    return tokenizer


def check_arguments(env: str, n: int, history_length: int, max_prompt_tokens: int, max_turns: Optional[int],
                    policy: str = "expert") -> None:
    """A ValueError naming the first bad argument (before any tokenizer is loaded or game generated)."""
    if env not in EXPERTS:
        raise ValueError(f"environment {env!r} is not one of {', '.join(ENVS)}")
    if policy not in POLICIES:
        raise ValueError(f"--policy {policy!r} is not one of {', '.join(POLICIES)}")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"--n {n} must be >= 1")
    if not isinstance(history_length, int) or history_length < 0:
        raise ValueError(f"--history-length {history_length} must be >= 0")
    if not isinstance(max_prompt_tokens, int) or max_prompt_tokens < 64:
        raise ValueError(f"--max-prompt-tokens {max_prompt_tokens} must be >= 64 (the paper's budget is 2048)")
    if max_turns is not None and (not isinstance(max_turns, int) or max_turns < 1):
        raise ValueError(f"--max-turns {max_turns} must be >= 1")


def write_sft_dataset(env: str, out: Path, n: int, seed: int, tokenizer, history_length: int = 2,
                      max_prompt_tokens: int = 2048, tasks: Optional[List[str]] = None,
                      max_turns: Optional[int] = None, policy: str = "expert") -> SFTStats:
    """Play n train instances of `env` with its expert (or the random policy) in the agent loop and write one SFT
    line per turn to `out`. Expert episodes that do not win are left out; random ones are kept, won or not."""
    check_arguments(env, n, history_length, max_prompt_tokens, max_turns, policy)
    rng = random.Random(seed)
    config = EpisodeConfig(history_length=history_length, max_prompt_tokens=max_prompt_tokens, max_turns=max_turns)
    sampling = NS(max_tokens=None, stop=None)
    stats = SFTStats()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    try:
        with tmp.open("w") as handle:  # written aside, then renamed: a crash leaves no half dataset behind
            for text_env, spec, task, plan in EXPERTS[env](n, seed, tasks, config.turns_for(env)):
                name = f"{spec.task} #{spec.variation}"
                seen = None
                if policy == "random":
                    plan, seen = random_plan(text_env, spec, config.turns_for(env), rng)
                if not plan:
                    stats.skipped[name] = "no expert plan"
                    continue
                budget = config.turns_for(env)
                if len(plan) > budget:
                    stats.skipped[name] = f"its {len(plan)}-step plan exceeds the {budget}-turn budget (--max-turns)"
                    continue
                engine = ExpertEngine(tokenizer, task, plan, RESPONSES[policy], seen)
                # the loop stops with the plan: a plan that ends without a win must not ask the engine for more
                episode = asyncio.run(run_episode(text_env, spec, engine, tokenizer, sampling,
                                                  replace(config, max_turns=len(plan))))
                if not episode.won and (policy == "expert" or episode.error):
                    stats.skipped[name] = episode.error or (
                        f"its {len(plan)}-step plan did not win here (ended after {len(episode.turns)} turns)")
                    continue
                for record in turn_records(episode, tokenizer):
                    handle.write(json.dumps(record) + "\n")
                stats.longest = max([stats.longest] + [len(t.prompt_ids) + len(t.response_ids) + 1
                                                       for t in episode.turns])
                stats.lines += len(episode.turns)
                stats.games += 1
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return stats


# ------------------------------------------------------------------------------------------------------ the CLI
def add_parser(sub) -> None:
    parser = sub.add_parser("sft-data", help="write an SFT warm-up dataset (JSONL) of expert turns for train_sft")
    parser.add_argument("env", choices=list(ENVS))
    parser.add_argument("--n", type=int, required=True, help="number of train instances to play")
    parser.add_argument("--seed", type=int, default=0, help="instance sampling seed (and ALFWorld generation seed)")
    parser.add_argument("--tokenizer", required=True, metavar="MODEL_DIR",
                        help="the local model folder to be trained (its chat template renders the prompts)")
    parser.add_argument("--out", required=True, metavar="FILE.jsonl")
    parser.add_argument("--history-length", type=int, default=2, help="h: past turns in the prompt (as in RL)")
    parser.add_argument("--max-prompt-tokens", type=int, default=2048, help="prompt budget (as in RL)")
    parser.add_argument("--max-turns", type=int, default=None,
                        help="turn budget; longer expert plans are left out (default: the agent loop's, 50 / 30)")
    parser.add_argument("--tasks", nargs="+", default=None,
                        help="restrict to these ALFWorld task types / ScienceWorld tasks (default: all)")
    parser.add_argument("--policy", choices=POLICIES, default="expert",
                        help="expert: the environment's expert plays; random: uniformly random admissible actions, "
                             "every episode kept (the format without the expertise) (default: expert)")
    parser.set_defaults(func=cmd_sft_data)


def cmd_sft_data(args) -> int:
    check_arguments(args.env, args.n, args.history_length, args.max_prompt_tokens, args.max_turns, args.policy)
    stats = write_sft_dataset(args.env, Path(args.out), args.n, args.seed, load_tokenizer(args.tokenizer),
                              args.history_length, args.max_prompt_tokens, args.tasks, args.max_turns, args.policy)
    print(f"wrote {stats.lines} turns of {stats.games} {args.env} {args.policy} episodes to {args.out} "
          f"(longest: {stats.longest} tokens; train_sft needs --data.max_len >= {stats.longest})")
    for name, why in stats.skipped.items():
        print(f"  left out {name}: {why}")
    return 0

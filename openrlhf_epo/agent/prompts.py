"""The paper's prompts (appendix D, listings 1-4), rendered per turn.

The first turn has no history; later turns carry the last h (observation, action) pairs. The text is the paper's,
word for word, with the placeholders filled; `render_chat` wraps it as one user message for the model's chat template,
`render_continuation` as the next user message after a reply (the token-stream, concatenated mode).
"""
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

THINK_AND_ACT_ADMISSIBLE = (
    "Now it's your turn to take an action.\n"
    "You should first reason step-by-step about the current situation. This reasoning process MUST be enclosed "
    "within <think> </think> tags.\n"
    "Once you've finished your reasoning, you should choose an admissible action for current step and present it "
    "within <action> </action> tags."
)
THINK_AND_ACT_APPROPRIATE = (
    "Now it's your turn to take an action.\n"
    "You should first reason step-by-step about the current situation. This reasoning process MUST be enclosed "
    "within <think> </think> tags.\n"
    "Once you've finished your reasoning, you should choose an appropriate action for the current step and present "
    "it within <action> </action> tags."
)

ALFWORLD_FIRST = (  # listing 1
    "You are an expert agent operating in the ALFRED Embodied Environment.\n"
    "Your current observation is: {current_observation}\n"
    "Your admissible actions of the current situation are: [{admissible_actions}].\n"
    "\n" + THINK_AND_ACT_ADMISSIBLE
)
ALFWORLD_HISTORY = (  # listing 2
    "You are an expert agent operating in the ALFRED Embodied Environment. Your task is to: {task_description}\n"
    "Prior to this step, you have already taken {step_count} step(s). Below are the most recent {history_length} "
    "observations and the corresponding actions you took: {action_history}\n"
    "You are now at step {current_step} and your current observation is: {current_observation}\n"
    "Your admissible actions of the current situation are: [{admissible_actions}].\n"
    "\n" + THINK_AND_ACT_ADMISSIBLE
)

SCIENCEWORLD_ACTION_TEMPLATES = [
    ("open OBJ", "open a container"),
    ("close OBJ", "close a container"),
    ("activate OBJ", "activate a device"),
    ("deactivate OBJ", "deactivate a device"),
    ("connect OBJ to OBJ", "connect electrical components"),
    ("disconnect OBJ", "disconnect electrical components"),
    ("use OBJ [on OBJ]", "use a device/item"),
    ("look around", "describe the current room"),
    ("look at OBJ", "describe an object in detail"),
    ("look in OBJ", "describe a container's contents"),
    ("read OBJ", "read a note or book"),
    ("move OBJ to OBJ", "move an object to a container"),
    ("pick up OBJ", "move an object to the inventory"),
    ("put down OBJ", "drop an inventory item"),
    ("pour OBJ into OBJ", "pour a liquid into a container"),
    ("dunk OBJ into OBJ", "dunk a container into a liquid"),
    ("mix OBJ", "chemically mix a container"),
    ("go to LOC", "move to a new location"),
    ("eat OBJ", "eat a food"),
    ("flush OBJ", "flush a toilet"),
    ("focus on OBJ", "signal intent on a task object"),
    ("wait", "take no action for 10 iterations"),
    ("wait1", "take no action for 1 iteration"),
    ("task", "describe current task"),
    ("inventory", "list your inventory"),
]
_SCIENCEWORLD_ACTIONS = (
    "Here are the actions you may take:\n[\n"
    # doubled braces: the list is JSON inside a str.format template
    + ",\n".join(f'{{{{"action": "{a}", "description": "{d}"}}}}' for a, d in SCIENCEWORLD_ACTION_TEMPLATES)
    + "\n]\n\nCurrent available actions:\n{available_actions}\n\n"
)
_SCIENCEWORLD_INTRO = (
    "You are an expert agent operating in the ScienceWorld environment, which is a text-based virtual environment "
    "centered around accomplishing tasks from the elementary science curriculum.\n"
    "Your current task is: {task_description}\n\n"
)
SCIENCEWORLD_FIRST = (  # listing 3
    _SCIENCEWORLD_INTRO + "Your current observation is: {current_observation}\n" + _SCIENCEWORLD_ACTIONS
    + THINK_AND_ACT_APPROPRIATE
)
SCIENCEWORLD_HISTORY = (  # listing 4
    _SCIENCEWORLD_INTRO
    + "Prior to this step, you have already taken {step_count} step(s). Below are the most recent {history_length} "
    "observations and the corresponding actions you took: {action_history}\n"
    "You are now at step {current_step} and your current observation is: {current_observation}\n"
    + _SCIENCEWORLD_ACTIONS + THINK_AND_ACT_APPROPRIATE
)

# The built-in test environment (envs/signpost_env.py): ALFWorld's listings 1 and 2 with its own first line
_SIGNPOST_INTRO = "You are an expert agent following signposts through a forest. Your task is to: {task_description}\n"
SIGNPOST_FIRST = (
    _SIGNPOST_INTRO + "Your current observation is: {current_observation}\n"
    "Your admissible actions of the current situation are: [{admissible_actions}].\n"
    "\n" + THINK_AND_ACT_ADMISSIBLE
)
SIGNPOST_HISTORY = (
    _SIGNPOST_INTRO
    + "Prior to this step, you have already taken {step_count} step(s). Below are the most recent {history_length} "
    "observations and the corresponding actions you took: {action_history}\n"
    "You are now at step {current_step} and your current observation is: {current_observation}\n"
    "Your admissible actions of the current situation are: [{admissible_actions}].\n"
    "\n" + THINK_AND_ACT_ADMISSIBLE
)

TEMPLATES = {"alfworld": (ALFWORLD_FIRST, ALFWORLD_HISTORY), "scienceworld": (SCIENCEWORLD_FIRST, SCIENCEWORLD_HISTORY),
             "signpost": (SIGNPOST_FIRST, SIGNPOST_HISTORY)}


@dataclass
class TurnContext:
    """Everything one turn's prompt shows: the task, the current observation, the past turns, the actions."""

    env: str
    task: str
    observation: str
    history: List[Tuple[str, str]] = field(default_factory=list)  # (observation, action) of every past turn
    actions: Optional[Sequence[str]] = None  # admissible (ALFWorld) / available (ScienceWorld) actions


def format_history(pairs: Sequence[Tuple[str, str]], first_step: int) -> str:
    lines = []
    for offset, (observation, action) in enumerate(pairs):
        step = first_step + offset
        lines.append(f"\n[Observation {step}: '{observation}', Action {step}: '{action}']")
    return "".join(lines)


def render_prompt(ctx: TurnContext, history_length: int = 2) -> str:
    """The paper's prompt for this turn: listing 1 / 3 on the first turn, listing 2 / 4 with the last h pairs after."""
    if ctx.env not in TEMPLATES:
        raise ValueError(f"no prompt for environment {ctx.env!r}; known: {', '.join(TEMPLATES)}")
    if history_length < 0:
        raise ValueError(f"history_length={history_length} must be >= 0")
    first, with_history = TEMPLATES[ctx.env]
    actions = list(ctx.actions or [])
    fields = {
        # listing 2 says "Your task is to: {task_description}": ALFWorld's own line already starts with those words
        "task_description": ctx.task.removeprefix("Your task is to:").strip(),
        "current_observation": ctx.observation,
        "admissible_actions": ", ".join(f"'{a}'" for a in actions),
        "available_actions": "\n".join(actions),
    }
    if not ctx.history or history_length == 0:
        if ctx.env == "alfworld" and ctx.task and ctx.task not in ctx.observation:
            # listing 1 has no task slot: ALFWorld's first observation carries the "Your task is to: ..." line
            fields["current_observation"] = f"{ctx.observation}\n\n{ctx.task}"
        return first.format(**fields)
    recent = ctx.history[-history_length:]
    steps_taken = len(ctx.history)
    return with_history.format(
        **fields,
        step_count=steps_taken,
        history_length=len(recent),
        action_history=format_history(recent, steps_taken - len(recent) + 1),
        current_step=steps_taken + 1,
    )


def render_chat(tokenizer, prompt: str) -> str:
    """The prompt as one user message through the model's chat template (generation prompt appended)."""
    return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)


_REPLY = "\x00openrlhf-epo-reply\x00"  # stands for an assistant reply while the template is rendered around it


def render_continuation(tokenizer, prompt: str) -> str:
    """What follows an assistant reply in the model's chat template when `prompt` is the next user message: the
    template's end of the reply, the user message, the generation prompt. Read off the template itself (rendered
    around a placeholder reply), so any chat template gives its own markup."""
    chat = [{"role": "user", "content": "."}, {"role": "assistant", "content": _REPLY},
            {"role": "user", "content": prompt}]
    text = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    if text.count(_REPLY) != 1:
        raise ValueError(f"the chat template of {type(tokenizer).__name__} does not render an assistant reply as "
                         "given; the token-stream (concat) mode needs one that does")
    return text[text.index(_REPLY) + len(_REPLY):]

"""One episode of an LLM agent in a text environment, turn by turn.

Two ways to show the model the episode so far (the sample each becomes is in samples.py):
- history window (the paper's per-turn setting, default): each turn rebuilds its prompt from the task, the last h
  (observation, action) pairs and the admissible actions (appendix D);
- token stream (`stream=True`, the concatenated mode, as upstream's MultiTurnAgentExecutor): the first turn's prompt,
  then each response followed by the environment's answer as the next chat message (`prompts.render_continuation`:
  the current observation and its actions in the first turn's form, since the history is already in the context).
  Each turn is generated from the whole stream so far, so the concatenated sample is exactly what the model saw.
Each turn asks the engine for one response (stopping after `</action>` or at the per-turn token cap), parses it and
steps the environment with the action. The episode ends when the environment is done, at the turn limit, or (token
stream) when the next turn's context would pass the prompt budget. All turns share the episode's outcome reward.

The engine is anything with `async generate(prompt_token_ids, sampling_params)` returning a vLLM-shaped output
(`.outputs[0].token_ids / .text / .finish_reason / .logprobs`): a vLLM engine, or a test's scripted engine.
Environment calls are blocking (a JVM, a PDDL engine), so they run in a worker thread: the event loop keeps serving
the other episodes and the engine sees their requests together. Each is bounded by `env_timeout_s` (`env_call`: a
slower environment is killed); a call that fails, hangs or raises ends the episode with `error` set, and such an
episode is never trained on (env_pool.play_episode retires its instance; the executor returns no samples for it).
"""
import asyncio
import copy
from dataclasses import dataclass, field, replace
from typing import Any, List, Optional

from openrlhf_epo.agent.parsing import parse_turn
from openrlhf_epo.agent.prompts import TurnContext, render_chat, render_continuation, render_prompt
from openrlhf_epo.envs.base import DEFAULT_MAX_TURNS, EnvTimeout, TaskSpec, TextEnv



@dataclass
class EpisodeConfig:
    history_length: int = 2  # h: past (observation, action) pairs in the prompt (peers: 2)
    max_turns: Optional[int] = None  # None: the environment's (envs/base.DEFAULT_MAX_TURNS)
    max_prompt_tokens: int = 2048  # the paper's prompt budget; longer prompts keep their end
    max_response_tokens: int = 512  # the paper's per-turn response budget
    success_reward: float = 1.0  # outcome reward of a won episode (the paper: 1; peers scale it to 10)
    invalid_penalty: float = 0.0  # subtracted on a turn whose output is invalid (peers: 0.1)
    require_think: bool = True
    require_admissible: bool = False  # peers do not check the action against the admissible list
    max_action_chars: int = 200
    env_timeout_s: float = 300.0  # bound of every environment reset and step; a slower one is killed, its episode lost

    def turns_for(self, env: str) -> int:
        return self.max_turns or DEFAULT_MAX_TURNS[env]


@dataclass
class Turn:
    index: int
    prompt_ids: List[int]
    response_ids: List[int]
    response_text: str
    logprobs: Optional[List[float]]
    finish_reason: Optional[str]
    action: str
    valid: bool
    invalid_reason: Optional[str]
    observation: str  # what the environment answered
    state: str  # the observation this turn acted on (reset's, or the previous turn's answer): its anchor state
    env_reward: float
    penalty: float  # the invalid-output penalty of this turn (>= 0)
    actions_shown: int = 0  # how many admissible actions the prompt listed (fewer than offered when cut to fit)
    # token stream only: the tokens after this response that the next turn was generated from (the environment's
    # answer as the next chat message); empty after the last turn
    feedback_ids: List[int] = field(default_factory=list)


@dataclass
class Episode:
    spec: TaskSpec
    task: str
    turns: List[Turn] = field(default_factory=list)
    won: bool = False
    done: bool = False  # the environment ended it (win, loss, its own limit); False = our turn limit
    context_full: bool = False  # token stream: the next turn's context would not fit the prompt budget
    error: Optional[str] = None  # the environment failed (crashed, hung, raised): the episode ends, never trained on
    success_reward: float = 1.0

    @property
    def failed(self) -> bool:
        return self.error is not None

    @property
    def outcome_reward(self) -> float:
        """The sparse outcome reward every turn shares (section 3.2: r_T in {0, 1})."""
        return self.success_reward if self.won else 0.0

    @property
    def invalid_count(self) -> int:
        return sum(not t.valid for t in self.turns)


def _sampling_for_turn(sampling_params, max_tokens: int):
    params = copy.deepcopy(sampling_params)
    params.max_tokens = max_tokens
    # Stop after the action: the rest of a response would be wasted tokens and a second action.
    stop = list(getattr(params, "stop", None) or [])
    if "</action>" not in stop:
        stop.append("</action>")
    params.stop = stop
    params.include_stop_str_in_output = True
    return params


async def env_call(env: TextEnv, timeout: float, method: str, *args):
    """env.<method>(*args) in a worker thread, bounded by `timeout` seconds: an environment that takes longer is
    killed (which ends the blocked call) and EnvTimeout raised. The JVM, a PDDL engine: nothing here is awaitable."""
    call = asyncio.ensure_future(asyncio.to_thread(getattr(env, method), *args))
    done, _ = await asyncio.wait([call], timeout=timeout)
    if call in done:
        return call.result()
    await asyncio.to_thread(env.kill)
    call.add_done_callback(lambda f: f.exception())  # the killed call's error is expected: do not log it as lost
    raise EnvTimeout(f"the {getattr(env, 'name', 'environment')} environment did not answer {method} within "
                     f"{timeout:g} s (--agent.env_timeout_s); it was killed")


def _logprobs_of(output) -> Optional[List[float]]:
    if getattr(output, "logprobs", None) is None:
        return None
    return [entry[token].logprob for entry, token in zip(output.logprobs, output.token_ids)]


def _encode(ctx: TurnContext, tokenizer, history_length: int) -> List[int]:
    return tokenizer(render_chat(tokenizer, render_prompt(ctx, history_length)), add_special_tokens=False)["input_ids"]


def _largest_action_prefix(ctx: TurnContext, encode, max_tokens: int) -> int:
    """The largest number of leading actions of ctx whose encoding fits max_tokens (0 if none does)."""
    actions = list(ctx.actions or [])
    lo, hi = 0, len(actions)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(encode(replace(ctx, actions=actions[:mid]))) <= max_tokens:
            lo = mid
        else:
            hi = mid - 1
    return lo


def fit_prompt(ctx: TurnContext, tokenizer, max_tokens: int, history_length: int):
    """The turn's prompt ids within `max_tokens`, and how many of the actions it lists.

    A ScienceWorld room can admit thousands of actions, far past the paper's 2,048-token prompt. Cutting the prompt
    from the left would drop the task, the history and the step counter; instead the action list is shortened (its
    head kept: the environment orders it), and only if the prompt is still too long without any action is it cut
    from the left.
    """
    def encode(c):
        return _encode(c, tokenizer, history_length)

    ids = encode(ctx)
    actions = list(ctx.actions or [])
    if len(ids) <= max_tokens or not actions:
        return ids[-max_tokens:], len(actions)
    shown = _largest_action_prefix(ctx, encode, max_tokens)
    return encode(replace(ctx, actions=actions[:shown]))[-max_tokens:], shown


def fit_continuation(ctx: TurnContext, tokenizer, max_tokens: int, after_eos: bool):
    """(ids, actions shown) of the environment's answer as the next chat message of a token stream, within
    max_tokens (its action list shortened as in fit_prompt), or None when it does not fit even without actions."""
    def encode(c):
        text = render_continuation(tokenizer, render_prompt(c, history_length=0))
        if after_eos and tokenizer.eos_token and text.startswith(tokenizer.eos_token):
            text = text[len(tokenizer.eos_token):]  # the response already closed its message
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    ids = encode(ctx)
    if len(ids) <= max_tokens:
        return ids, len(ctx.actions or [])
    shown = _largest_action_prefix(ctx, encode, max_tokens)
    ids = encode(replace(ctx, actions=list(ctx.actions or [])[:shown]))
    return (ids, shown) if len(ids) <= max_tokens else None


def _describe(exc: BaseException, during: str) -> str:
    return f"{during}: {type(exc).__name__}: {exc}"


async def run_episode(
    env: TextEnv,
    spec: TaskSpec,
    engine: Any,
    tokenizer: Any,
    sampling_params: Any,
    config: EpisodeConfig,
    stream: bool = False,
) -> Episode:
    """Play `spec` to the end in `env` (already constructed, reused across episodes); `stream`: each turn is generated
    from the episode's whole token stream (see the module docstring), else from its history-window prompt."""
    try:
        observation = await env_call(env, config.env_timeout_s, "reset", spec, True)
    except Exception as exc:  # noqa: BLE001 - a crashed, hung or raising environment fails the episode, not the run
        return Episode(spec=spec, task="", success_reward=config.success_reward, error=_describe(exc, "reset"))
    episode = Episode(spec=spec, task=observation.task, success_reward=config.success_reward)
    history = []
    current, actions = observation.text, observation.admissible
    ctx = TurnContext(spec.env, episode.task, current, history, actions)
    prompt_ids, shown = fit_prompt(ctx, tokenizer, config.max_prompt_tokens, config.history_length)
    for index in range(config.turns_for(spec.env)):
        output = (await engine.generate(prompt_ids, _sampling_for_turn(sampling_params, config.max_response_tokens)))
        output = output.outputs[0]
        parsed = parse_turn(output.text, actions, config.require_admissible, config.require_think,
                            config.max_action_chars)
        try:
            result = await env_call(env, config.env_timeout_s, "step", parsed.action, True)
        except Exception as exc:  # noqa: BLE001
            episode.error = _describe(exc, f"step {index}")
            break
        turn = Turn(
            index=index, prompt_ids=list(prompt_ids), response_ids=list(output.token_ids), response_text=output.text,
            logprobs=_logprobs_of(output), finish_reason=getattr(output, "finish_reason", None),
            action=parsed.action, valid=parsed.valid, invalid_reason=parsed.reason, observation=result.observation,
            state=current,
            env_reward=float(result.reward), penalty=0.0 if parsed.valid else config.invalid_penalty,
            actions_shown=shown,
        )
        episode.turns.append(turn)
        history.append((current, parsed.action))
        current, actions = result.observation, result.admissible
        if result.error:  # the adapter saw its environment die (ScienceWorld's JVM)
            episode.error = result.error
            break
        if result.done:
            episode.done, episode.won = True, bool(result.won)
            break
        if index + 1 == config.turns_for(spec.env):
            break
        ctx = TurnContext(spec.env, episode.task, current, history, actions)
        if not stream:
            prompt_ids, shown = fit_prompt(ctx, tokenizer, config.max_prompt_tokens, config.history_length)
            continue
        context = turn.prompt_ids + turn.response_ids
        after_eos = bool(turn.response_ids) and turn.response_ids[-1] == tokenizer.eos_token_id
        fitted = fit_continuation(ctx, tokenizer, config.max_prompt_tokens - len(context), after_eos)
        if fitted is None:
            episode.context_full = True
            break
        turn.feedback_ids, shown = fitted
        prompt_ids = context + turn.feedback_ids
    return episode

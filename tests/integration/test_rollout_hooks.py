"""Per-turn samples on the driver: ids, whole-group chunks, group baselines (upstream's real Experience and its real
samples-generator conversion, `SamplesGenerator._process_response_into_experience`)."""
import statistics
import sys
from dataclasses import asdict
from types import SimpleNamespace as NS

import pytest
import torch

from openrlhf_epo.agent.samples import TurnMeta
from openrlhf_epo.integration import agent_metrics
from openrlhf_epo.integration.rollout_hooks import (
    AGENT_SAMPLES,
    ENV_COUNT_KEYS,
    ENV_ERROR,
    EnvErrorTally,
    IdSource,
    agent_group_kept,
    buffer_short,
    dynamic_filtering_pass_rate,
    env_error_counts,
    expand_agent_responses,
    grouped_rewards,
    take_rollout_chunk,
)


def _turn_sample(won, turn, turns, penalty=0.0):
    ret = (1.0 if won else 0.0) - penalty * turns  # every turn of the trajectory took the penalty
    return {
        "prompt": "p", "label": "{}", "images": None, "mm_train_inputs": None, "scores": float(won),
        "reward": (1.0 if won else 0.0) - penalty, "observation_tokens": [1, 2, 3, 4, 5], "action_ranges": [(3, 5)],
        "rollout_log_probs": None, "truncated": False,
        "extra_logs": asdict(TurnMeta(won=float(won), episode_return=ret, num_turns=turns, invalid_count=0.0,
                                      invalid=0.0, turn_index=turn, anchor_state=turn,
                                      step_reward=ret if turn == turns - 1 else 0.0)),
    }


def _request(outcomes, penalty=0.0):
    """One request: n trajectories (won, turns)."""
    return [{AGENT_SAMPLES: [_turn_sample(won, t, turns, penalty) for t in range(turns)]} for won, turns in outcomes]


@pytest.fixture(scope="module")
def to_experience():
    from openrlhf_epo.runtime import flash_attn_stub

    flash_attn_stub.install()
    from openrlhf.trainer.ppo_utils.samples_generator import SamplesGenerator

    generator = SamplesGenerator.__new__(SamplesGenerator)  # only its response -> Experience conversion is used
    return lambda response: generator._process_response_into_experience(response, max_len=64)


def test_requests_expand_into_turns_with_group_and_trajectory_ids(to_experience):
    ids = IdSource()
    first = expand_agent_responses(_request([(True, 3), (False, 1)]), ids)
    second = expand_agent_responses(_request([(False, 2), (True, 2)]), ids)
    assert [(s["extra_logs"]["group_id"], s["extra_logs"]["traj_id"]) for s in first] == [(0, 0)] * 3 + [(0, 1)]
    assert [(s["extra_logs"]["group_id"], s["extra_logs"]["traj_id"]) for s in second] == [(1, 2)] * 2 + [(1, 3)] * 2
    experience = to_experience(first[1])
    assert experience.info["group_id"].tolist() == [0] and experience.info["turn_index"].tolist() == [1]
    assert experience.info["num_turns"].tolist() == [3]
    plain = [{"observation_tokens": [1]}]
    assert expand_agent_responses(plain, ids) == plain  # other executors' responses pass unchanged


def test_chunks_take_whole_groups(to_experience):
    ids = IdSource()
    samples = [s for req in ([(True, 3), (False, 1)], [(False, 2), (True, 2)], [(True, 1), (True, 1)])
               for s in expand_agent_responses(_request(req), ids)]
    buffer = [to_experience(s) for s in samples]
    chunk, rest = take_rollout_chunk(buffer, chunk_size=4, groups_per_chunk=2)
    assert len(chunk) == 8 and len(rest) == 2  # groups 0 (4 turns) and 1 (4 turns), not the first 4 samples
    assert {int(e.info["group_id"]) for e in rest} == {2}


def test_the_buffer_is_short_by_groups_not_by_samples(to_experience):
    ids = IdSource()
    one_group = [to_experience(s) for s in expand_agent_responses(_request([(True, 3), (False, 3)]), ids)]
    assert len(one_group) == 6 and buffer_short(one_group, chunk_size=4, groups_per_chunk=2)  # 6 samples, 1 group
    two = one_group + [to_experience(s) for s in expand_agent_responses(_request([(True, 1), (True, 1)]), ids)]
    assert not buffer_short(two, chunk_size=4, groups_per_chunk=2)
    assert buffer_short([], chunk_size=4, groups_per_chunk=2)
    plain = [NS(info={})] * 3  # upstream's samples: counted
    assert buffer_short(plain, chunk_size=4, groups_per_chunk=2) and not buffer_short(plain * 2, 4, 2)


def test_over_sampling_hands_out_whole_chunks_of_groups(to_experience):
    """Upstream's real `SamplesGenerator.generate_samples` with --rollout.vllm_generate_batch_size 3 over
    --rollout.batch_size 2 (the asynchronous trainer's over-sampling), 5 prompts of n = 2 episodes of 3 turns.
    Stub at the engine boundary: `_generate_vllm` draws its prompts with upstream's `_collect_prompt_batch` and
    returns each prompt's episodes as per-turn samples instead of asking vLLM."""
    from openrlhf.trainer.ppo_utils import samples_generator as module

    ids, generated = IdSource(), []

    def generate(dataloader_iter, num_prompts, dynamic_filtering, **kwargs):
        prompts, _, _, exhausted = module._collect_prompt_batch(dataloader_iter, num_prompts)
        generated.append(len(prompts))
        samples = [s for _ in prompts for s in expand_agent_responses(_request([(True, 3), (False, 3)]), ids)]
        return [to_experience(s) for s in samples], len(prompts), exhausted

    generator = module.SamplesGenerator.__new__(module.SamplesGenerator)
    generator.args = NS(rollout=NS(batch_size=2, n_samples_per_prompt=2, vllm_generate_batch_size=3),
                        vllm=NS(enable_sleep=False), algo=NS(dynamic_filtering_enable=False))
    generator.prompts_dataloader = [(None, [f"p{i}"], ["{}"], [None]) for i in range(5)]  # batches of one prompt
    generator._generate_vllm = generate
    groups_per_chunk, exhausted = [], False
    while not exhausted:
        chunk, _, _, exhausted = generator.generate_samples()
        groups_per_chunk.append(len({int(e.info["group_id"]) for e in chunk}))
    # 3 generated, 2 taken; 1 left is short of a chunk: 2 more generated (the dataset's end), 2 taken; 1 left
    assert generated == [3, 2] and groups_per_chunk == [2, 2, 1]


def test_grpo_rewards_by_trajectory_not_by_block(to_experience):
    ids = IdSource()
    outcomes = [(True, 3), (False, 1), (True, 2)]
    experiences = [to_experience(s) for s in expand_agent_responses(_request(outcomes), ids)]
    rewards = grouped_rewards(experiences, "group_norm")
    returns = [1.0, 0.0, 1.0]
    m, sd = statistics.mean(returns), statistics.stdev(returns)
    expected = [(r - m) / (sd + 1e-9) for r, (_, turns) in zip(returns, outcomes) for _ in range(turns)]
    assert torch.cat(rewards).tolist() == pytest.approx(expected, rel=1e-6)
    ppo = grouped_rewards(experiences, "gae")  # PPO / GAE: each turn keeps its own outcome reward
    assert torch.cat(ppo).tolist() == [1.0, 1.0, 1.0, 0.0, 1.0, 1.0]
    assert grouped_rewards([NS(info={})], "group_norm") is None


def test_patched_experience_maker_computes_grpo_advantages_per_trajectory(to_experience):
    """Upstream's own compute_advantages_and_returns (the installed, patched release) on per-turn samples."""
    import openrlhf.trainer.ppo_utils.experience_maker as em

    assert "grouped_rewards" in open(em.__file__).read(), "the installed openrlhf must carry patch 0004"
    args = NS(
        reward=NS(overlong_buffer_len=None, stop_properly_penalty_coef=None, clip_range=(-10, 10)),
        rollout=NS(n_samples_per_prompt=3, max_new_tokens=None),
        algo=NS(advantage=NS(estimator="group_norm", gamma=1.0, lambd=1.0, no_std_norm=False)),
        data=NS(max_len=64),
    )
    maker = em.RemoteExperienceMaker.__new__(em.RemoteExperienceMaker)
    maker.strategy, maker.kl_ctl, maker.advantage_estimator = NS(args=args), NS(value=0.0), "group_norm"
    outcomes = [(True, 3), (False, 1), (True, 2)]  # 6 turn samples: not a multiple-of-3 block per trajectory
    experiences = [to_experience(s) for s in expand_agent_responses(_request(outcomes), IdSource())]
    for i, e in enumerate(experiences):
        e.index = [i]
        e.kl = torch.zeros_like(e.action_mask, dtype=torch.float)  # make_experience's KL without a reference model
    out = maker.compute_advantages_and_returns(experiences)
    returns = [1.0, 0.0, 1.0]
    m, sd = statistics.mean(returns), statistics.stdev(returns)
    expected = [(r - m) / (sd + 1e-9) for r, (_, turns) in zip(returns, outcomes) for _ in range(turns)]
    # every action token of a turn carries its trajectory's normalised return (gamma = 1, reward on the last token)
    for e, want in zip(out, expected):
        adv = e.advantages[e.action_mask.bool()]
        assert adv.tolist() == pytest.approx([want] * len(adv), rel=1e-5)


def _gigpo_request(trajectories):
    """One request of scripted trajectories [(states, step rewards)], each turn with its anchor state."""
    from openrlhf_epo.agent.anchor_state import anchor_key

    request = []
    for states, step_rewards in trajectories:
        ret, won = sum(step_rewards), step_rewards[-1] > 0
        samples = []
        for t, (state, r) in enumerate(zip(states, step_rewards)):
            sample = _turn_sample(won, t, len(states))
            sample["extra_logs"].update(episode_return=ret, anchor_state=anchor_key(state), step_reward=r)
            samples.append(sample)
        request.append({AGENT_SAMPLES: samples})
    return request


def test_patched_experience_maker_computes_gigpo_advantages_by_anchor_state(to_experience):
    """--algo.advantage.estimator gigpo through upstream's compute_advantages_and_returns (patch 0012)."""
    import openrlhf.trainer.ppo_utils.experience_maker as em

    args = NS(
        reward=NS(overlong_buffer_len=None, stop_properly_penalty_coef=None, clip_range=(-10, 10)),
        rollout=NS(n_samples_per_prompt=3, max_new_tokens=None),
        algo=NS(advantage=NS(estimator="gigpo", gamma=1.0, lambd=1.0, no_std_norm=False),
                gigpo=NS(gamma=0.5, omega=1.0, norm="mean")),
        data=NS(max_len=64),
    )
    maker = em.RemoteExperienceMaker.__new__(em.RemoteExperienceMaker)
    maker.strategy, maker.kl_ctl, maker.advantage_estimator = NS(args=args), NS(value=0.0), "gigpo"
    # group 0: T1 loops once in state b, T2 shares a and b with it, T3 only a (the unit test's case, by hand there)
    first = [(["a", "b", "b", "c"], [0, 0, 0, 1]), (["a", "b", "d"], [0, 0, 0]), (["a", "e"], [0, 1])]
    second = [(["a"], [0]), (["a"], [1])]  # group 1: "a" again, another state; returns 0, 1, G = 0, 1
    ids = IdSource()
    samples = expand_agent_responses(_gigpo_request(first), ids) + expand_agent_responses(_gigpo_request(second), ids)
    experiences = [to_experience(s) for s in samples]
    for i, e in enumerate(experiences):
        e.index = [i]
        e.kl = torch.zeros_like(e.action_mask, dtype=torch.float)
    out = maker.compute_advantages_and_returns(experiences)
    expected = [1 / 3 - 1 / 12, 1 / 3, 1 / 3 + 0.25, 1 / 3, -2 / 3 - 5 / 24, -2 / 3 - 0.25, -2 / 3, 1 / 3 + 7 / 24,
                1 / 3,
                -0.5 - 0.5, 0.5 + 0.5]  # group 1: A_E = -/+0.5, its step group "a" = {0, 1}: A_S = -/+0.5
    for e, want in zip(out, expected):
        adv = e.advantages[e.action_mask.bool()]
        assert adv.tolist() == pytest.approx([want] * len(adv), abs=1e-6)  # every token of the turn, no whitening
    assert float(out[0].info["gigpo/shared_turn_share"][0]) == pytest.approx(8 / 11)  # a, b of group 0; a of 1


def test_gigpo_without_agent_samples_is_refused():
    with pytest.raises(ValueError, match="gigpo needs per-turn agent samples"):
        grouped_rewards([NS(info={})], "gigpo")


@pytest.mark.parametrize("outcomes, penalty, score_range, kept", [
    ([(False, 3), (False, 5)], 0.0, (0, 1), False),  # all lost: returns 0, 0
    ([(True, 3), (True, 7)], 0.0, (0, 1), False),  # all won: returns 1, 1 (upstream drops it too)
    ([(False, 2), (False, 2)], 0.1, (0, 1), False),  # equal non-zero returns (-0.2, -0.2): zero advantage
    ([(True, 2), (True, 4)], 0.1, (0, 1), True),  # all won, penalties differ (0.8, 0.6): upstream would drop it
    ([(True, 1), (False, 9), (False, 1)], 0.0, (0, 1), True),  # mean score 1/3 (per trajectory, not per turn)
    ([(True, 1), (False, 9), (False, 1)], 0.0, (0.5, 1), False),  # the user's range, on the trajectories' scores
    ([(True, 9), (False, 1), (False, 1)], 0.0, (0.5, 1), False),  # per turn, 9 of 11 samples won: still 1/3
])
def test_dynamic_filtering_counts_one_return_per_trajectory(to_experience, outcomes, penalty, score_range, kept):
    group = [to_experience(s) for s in expand_agent_responses(_request(outcomes, penalty), IdSource())]
    assert agent_group_kept(group, score_range) is kept
    assert agent_group_kept([to_experience(dict(_turn_sample(True, 0, 1), extra_logs={}))], (0, 1)) is None


def test_dynamic_filtering_pass_rate_counts_groups(to_experience):
    ids = IdSource()
    two_groups = [to_experience(s) for req in ([(True, 3), (False, 2)], [(True, 1), (False, 4)])
                  for s in expand_agent_responses(_request(req), ids)]
    assert len(two_groups) == 10 and dynamic_filtering_pass_rate(two_groups, prompts_consumed=4) == 50.0


@pytest.mark.slow  # Ray
def test_the_samples_generator_filters_groups_by_trajectory_returns(to_experience):
    """Upstream's real `SamplesGenerator._generate_vllm` with --algo.dynamic_filtering_enable: its dispatch to Ray,
    its wait loop, the replacement of a filtered prompt by the next one. Stub at the engine boundary: a Ray actor
    that answers each prompt with canned episodes (prompt "p<i>" -> the outcomes of REQUESTS[i])."""
    import ray
    from openrlhf.trainer.ppo_utils.samples_generator import SamplesGenerator

    requests = [
        [(False, 3), (False, 3)],  # p0: returns -0.3, -0.3 -> dropped
        [(True, 2), (True, 4)],  # p1: all won, returns 0.8, 0.6 -> kept
        [(True, 2), (True, 2)],  # p2: returns 0.8, 0.8 -> dropped
        [(True, 1), (False, 5)],  # p3: kept
    ]  # every turn of every trajectory invalid, penalty 0.1

    canned = {f"p{i}": _request(outcomes, penalty=0.1) for i, outcomes in enumerate(requests)}

    @ray.remote(num_cpus=0)
    class CannedEngine:
        def __init__(self, answers):
            self.answers = answers

        def get_num_unfinished_requests(self):
            return 0

        def generate_responses(self, prompt, label, num_samples, **kwargs):
            assert num_samples == len(self.answers[prompt])
            return self.answers[prompt]

    ray.init(num_cpus=1, num_gpus=0, include_dashboard=False, object_store_memory=100 * 2**20)
    try:
        generator = SamplesGenerator.__new__(SamplesGenerator)
        generator.args = NS(algo=NS(dynamic_filtering_range=(0.0, 1.0), advantage=NS(is_correction_level="off")),
                            rollout=NS(n_samples_per_prompt=2))
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import tests/
        generator.vllm_engines = [CannedEngine.remote(canned)]
        generator.tokenizer = None
        loader = iter([(None, [f"p{i}"], ["{}"], [None]) for i in range(len(requests))])
        experiences, consumed, exhausted = generator._generate_vllm(loader, num_prompts=2, dynamic_filtering=True,
                                                                      max_len=64)
    finally:
        ray.shutdown()
    groups = {int(e.info["group_id"]) for e in experiences}
    # p0 and p1 go out; p0 is dropped and replaced by p2, dropped too and replaced by p3: p1 and p3 are kept
    assert consumed == 4
    assert len(groups) == 2 and len(experiences) == (2 + 4) + (1 + 5)  # p1's and p3's turns
    returns = sorted({(int(e.info["traj_id"]), round(float(e.info["episode_return"]), 6)) for e in experiences})
    assert sorted(r for _, r in returns) == [-0.5, 0.6, 0.8, 0.9]  # p1's and p3's trajectories
    assert dynamic_filtering_pass_rate(experiences, consumed) == 50.0


# ---- episodes whose environment failed: left out, counted, and a stop past --agent.max_env_error_ratio ------------


def _failed(env="scienceworld", error="step 3: EnvironmentError_: the JVM died (killed by SIGKILL)"):
    return {AGENT_SAMPLES: [], ENV_ERROR: {"env": env, "error": error}}


def test_failed_episodes_are_left_out_and_the_baseline_is_over_the_healthy_ones(to_experience):
    """Upstream's compute_advantages_and_returns (patched) on a group of four where one environment died."""
    import openrlhf.trainer.ppo_utils.experience_maker as em

    tally = EnvErrorTally()
    request = _request([(True, 2), (False, 1)]) + [_failed()] + _request([(True, 1)])
    samples = expand_agent_responses(request, IdSource(), tally)
    assert len(samples) == 4 and len({s["extra_logs"]["traj_id"] for s in samples}) == 3
    experiences = [to_experience(s) for s in samples]
    assert env_error_counts(experiences) == {**dict.fromkeys(ENV_COUNT_KEYS, 0.0), "env_errors": 1.0,
                                             "env_episodes": 4.0, "env_errors_scienceworld": 1.0}
    assert experiences[0].info["env_errors"].item() == 1 and experiences[1].info["env_errors"].item() == 0
    args = NS(reward=NS(overlong_buffer_len=None, stop_properly_penalty_coef=None, clip_range=(-10, 10)),
              rollout=NS(n_samples_per_prompt=4, max_new_tokens=None),
              algo=NS(advantage=NS(estimator="rloo", gamma=1.0, lambd=1.0, no_std_norm=False)), data=NS(max_len=64))
    maker = em.RemoteExperienceMaker.__new__(em.RemoteExperienceMaker)
    maker.strategy, maker.kl_ctl, maker.advantage_estimator = NS(args=args), NS(value=0.0), "rloo"
    for i, e in enumerate(experiences):
        e.index = [i]
        e.kl = torch.zeros_like(e.action_mask, dtype=torch.float)
    out = maker.compute_advantages_and_returns(experiences)
    returns = [1.0, 0.0, 1.0]  # RLOO over the three healthy trajectories: r - mean of the other two
    expected = [r - (sum(returns) - r) / 2 for r, turns in zip(returns, (2, 1, 1)) for _ in range(turns)]
    for e, want in zip(out, expected):
        adv = e.advantages[e.action_mask.bool()]
        assert adv.tolist() == pytest.approx([want] * len(adv), rel=1e-5)
    stats = agent_metrics.rollout_stats(experiences)
    assert stats["rollout/env_errors"] == 1 and stats["rollout/env_errors_scienceworld"] == 1
    assert stats["rollout/num_episodes"] == 3  # the failed episode is not among the scored ones


def test_a_group_left_with_one_healthy_episode_is_dropped_and_counted_with_the_next(to_experience):
    tally, ids = EnvErrorTally(), IdSource()
    assert expand_agent_responses(_request([(True, 2)]) + [_failed("alfworld")], ids, tally) == []
    single = expand_agent_responses([_failed("alfworld")], ids, tally)  # PPO: a prompt of one episode, failed
    assert single == []
    kept = expand_agent_responses(_request([(True, 1)]), ids, tally)  # PPO: one healthy episode is kept
    assert len(kept) == 1
    counts = env_error_counts([to_experience(s) for s in kept])
    assert (counts["env_errors"], counts["env_errors_alfworld"], counts["env_episodes"], counts["env_error_dropped"]) \
        == (2.0, 2.0, 4.0, 1.0)
    assert "alfworld: step 3" in tally.describe()


def test_a_group_dropped_by_dynamic_filtering_hands_its_counts_on(to_experience, monkeypatch):
    from openrlhf_epo.integration import rollout_hooks

    tally = EnvErrorTally()
    monkeypatch.setattr(rollout_hooks, "_DRIVER_TALLY", tally)
    group = [to_experience(s) for s in expand_agent_responses(_request([(False, 1), (False, 2)]) + [_failed()],
                                                               IdSource(), tally)]
    assert agent_group_kept(group, (0, 1)) is False  # all lost: dropped
    assert tally.pending["env_errors"] == 1 and tally.pending["env_episodes"] == 3


@pytest.fixture
def error_ratio(monkeypatch):
    from openrlhf_epo.agent.config import AgentConfig
    from openrlhf_epo.agent.config import CONFIG_ENV

    def set_ratio(ratio):
        monkeypatch.setenv(CONFIG_ENV, AgentConfig(max_env_error_ratio=ratio).to_json())
    return set_ratio


def test_the_run_stops_when_failures_pass_the_ratio(to_experience, error_ratio):
    tally, ids = EnvErrorTally(), IdSource()
    request = _request([(True, 1), (False, 1)]) + [_failed(error="reset: EnvTimeout: did not answer within 5 s")]
    buffer = [to_experience(s) for s in expand_agent_responses(request, ids, tally)]  # 1 of 3 failed
    error_ratio(0.5)
    chunk, rest = take_rollout_chunk(buffer, chunk_size=3, groups_per_chunk=1, tally=tally)
    assert len(chunk) == 2 and rest == []
    error_ratio(0.25)
    with pytest.raises(RuntimeError) as stop:
        take_rollout_chunk(buffer, chunk_size=3, groups_per_chunk=1, tally=tally)
    message = str(stop.value)
    assert "1 of 3 episodes of this step lost their environment (scienceworld 1)" in message
    assert "--agent.max_env_error_ratio 0.25" in message and "did not answer within 5 s" in message


def test_a_step_whose_every_episode_failed_stops_the_run(error_ratio):
    tally = EnvErrorTally()
    assert expand_agent_responses([_failed(), _failed("alfworld")], IdSource(), tally) == []
    error_ratio(1.0)  # even a run that tolerates every failure cannot train on nothing
    with pytest.raises(RuntimeError, match=r"no episode of this step kept its environment \(scienceworld 1, "
                                           r"alfworld 1 of 2 failed\)"):
        take_rollout_chunk([], chunk_size=2, groups_per_chunk=1, tally=tally)

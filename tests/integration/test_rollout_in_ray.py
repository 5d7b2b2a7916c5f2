"""The agent rollout as the real pipeline runs it: the patched `SamplesGenerator` on the driver dispatches prompts to
a Ray rollout actor (upstream's `RolloutRayActor` code, with openrlhf-epo's executor loaded through
--train.agent_func_path as `--agent.mode per_turn` sets it), which plays REAL ALFWorld and ScienceWorld episodes.

The one stub: vLLM's engine inside the actor (tests/epo_testkit/scripted_rollout.py), a script that gives the three
trajectories of every group three behaviours: the environment's own oracle (planner walkthrough / gold path),
invalid output every turn, a valid but useless action every turn. Every expected value below comes from those
behaviours and the paper's definitions, computed by hand: sample counts, ids, action spans, rewards, GRPO and GAE
advantages, the rollout metrics, the evaluation metrics per split.
"""
import json
import os
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace as NS

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "epo_testkit"))
import scripted_rollout  # noqa: E402
from train_args import parse_train_ppo_args, stub_strategy  # noqa: E402

from openrlhf_epo.envs.base import TaskSpec  # noqa: E402
from openrlhf_epo.tools.data import record  # noqa: E402

pytestmark = pytest.mark.slow  # Ray, JVMs, PDDL games

PENALTY = 0.1
SW_TASK, SW_VARIATION = "find-living-thing", 3


def _java_gateways():
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = open(f"/proc/{pid}/cmdline").read()
            if "py4j.GatewayServer" in cmd and sys.prefix in cmd:  # this venv's JVMs only
                found.append(int(pid))
        except OSError:
            pass
    return found


@pytest.fixture(scope="module")
def world(alfworld_game, tmp_path_factory):
    """Three task instances with their oracles and task texts: an ALFWorld iid game (train + iid eval), an ALFWorld
    ood game (ood eval) and a ScienceWorld variation (train)."""
    from scienceworld import ScienceWorldEnv as Stock

    from openrlhf_epo.envs.alfworld_env import AlfWorldEnv
    from openrlhf_epo.envs.scienceworld_env import ScienceWorldEnv

    iid, iid_plan, cache = alfworld_game("iid", 2, "look_at_obj_in_light")
    ood, ood_plan, _ = alfworld_game("ood", 3, "pick_and_place_simple")
    stock = Stock("", envStepLimit=100)
    try:
        stock.load(SW_TASK, SW_VARIATION, "easy", generateGoldPath=True)
        sw_plan = stock.get_gold_action_sequence()
    finally:
        stock.close()
    sw = TaskSpec("scienceworld", SW_TASK, variation=SW_VARIATION)
    with AlfWorldEnv(cache_dir=cache) as env:
        texts = [env.reset(s).task for s in (iid, ood)]
    with ScienceWorldEnv() as env:
        texts.append(env.reset(sw).task)
    plans = {iid.to_json(): iid_plan, ood.to_json(): ood_plan, sw.to_json(): sw_plan}  # TaskSpec -> its oracle
    scripts = {text.removeprefix("Your task is to:").strip(): (s.env, plans[s.to_json()])
               for s, text in zip((iid, ood, sw), texts)}
    folder = tmp_path_factory.mktemp("agent-data")
    for name, specs in {"train": [iid, sw], "iid": [iid], "ood": [ood]}.items():
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(record(s)) + "\n" for s in specs))
    return NS(iid=iid, ood=ood, sw=sw, plans=plans, scripts=scripts, folder=folder, cache=cache,
              turn_limit=max(map(len, plans.values())) + 2)



@pytest.fixture(scope="module")
def rollout(world):
    """One training rollout (2 prompts x 3 trajectories) and one evaluation pass, through Ray."""
    import ray
    from openrlhf.trainer.ppo_trainer import prepare_datasets
    from openrlhf.trainer.ppo_utils.samples_generator import SamplesGenerator

    from openrlhf_epo.agent.config import CONFIG_ENV
    from openrlhf_epo.integration.agent_flags import agent_runtime_env
    from openrlhf_epo.runtime.offline_models import qwen_tokenizer, qwen_tokenizer_dir

    f = world.folder
    args = parse_train_ppo_args([
        "--actor.model_name_or_path", "some/model", "--agent.mode", "per_turn",
        "--agent.max_turns", str(world.turn_limit), "--agent.invalid_penalty", str(PENALTY),
        "--data.max_len", "2600", "--data.prompt_dataset", str(f / "train.jsonl"), "--data.input_key", "prompt",
        "--data.label_key", "label", "--eval.dataset", f"{f / 'iid.jsonl'},{f / 'ood.jsonl'}",
        "--rollout.batch_size", "2", "--rollout.n_samples_per_prompt", "3", "--eval.n_samples_per_prompt", "3",
        "--algo.advantage.estimator", "group_norm", "--train.batch_size", "6", "--rollout.micro_batch_size", "1",
        "--actor.num_gpus_per_node", "1",
    ])
    tokenizer = qwen_tokenizer()
    strategy = stub_strategy(args)
    prompts_loader, eval_loader, _ = prepare_datasets(strategy, tokenizer)
    java_before = set(_java_gateways())
    ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, object_store_memory=200 * 2**20,
             runtime_env={"env_vars": {**agent_runtime_env(), "OPENRLHF_EPO_ALFWORLD_GAMES": str(world.cache)}})
    try:
        ray.cloudpickle.register_pickle_by_value(scripted_rollout)  # the workers cannot import tests/
        engine = scripted_rollout.scripted_rollout_actor().options(num_cpus=0).remote(
            args.train.agent_func_path, str(qwen_tokenizer_dir()), world.scripts, 0.005)
        generator = SamplesGenerator(strategy=strategy, prompts_dataloader=prompts_loader,
                                     eval_dataloader=eval_loader, tokenizer=tokenizer, vllm_engines=[engine])
        kwargs = dict(do_sample=True, max_len=args.data.max_len, max_new_tokens=args.rollout.max_new_tokens,
                      temperature=1.0, top_p=1.0)
        samples, _, consumed, _ = generator.generate_samples(**kwargs)
        peak = ray.get(engine.peak_concurrency.remote())

        from openrlhf.trainer.ppo_trainer import PPOTrainer

        evaluator = NS(args=args, samples_generator=generator, eval_dataloader=eval_loader, wandb_logger=None,
                       tensorboard_logger=None)
        eval_logs = PPOTrainer.__ray_actor_class__.evaluate(
            evaluator, 1, **dict(kwargs, n_samples_per_prompt=args.eval.n_samples_per_prompt))
    finally:
        ray.shutdown()
        os.environ.pop(CONFIG_ENV, None)
    deadline = time.time() + 15
    while set(_java_gateways()) - java_before and time.time() < deadline:
        time.sleep(0.5)
    return NS(args=args, samples=samples, consumed=consumed, eval_logs=eval_logs, tokenizer=tokenizer, peak=peak,
              java_left=set(_java_gateways()) - java_before)


def _trajectories(samples, tokenizer, world):
    """{traj_id: (spec, behaviour, [experience by turn])}: the behaviour read from the first turn's response (a gold
    path may start with the idle action itself: ScienceWorld's starts with "look around")."""
    by_traj = {}
    for e in samples:
        by_traj.setdefault(int(e.info["traj_id"]), []).append(e)
    out = {}
    for traj, turns in by_traj.items():
        turns.sort(key=lambda e: int(e.info["turn_index"]))
        spec = TaskSpec.from_json(turns[0].labels[0])
        first = tokenizer.decode(turns[0].sequences[0][1:][turns[0].action_mask[0].bool()])
        behaviour = ("plan" if "of the plan</think>" in first else  # the script's reasoning names its behaviour
                     "invalid" if "<action>" not in first else "idle")
        out[traj] = (spec, behaviour, turns)
    return out


def _expected_turns(world, spec, behaviour):
    return len(world.plans[spec.to_json()]) if behaviour == "plan" else world.turn_limit


def test_groups_play_one_instance_with_per_turn_samples(rollout, world):
    assert rollout.consumed == 2
    trajectories = _trajectories(rollout.samples, rollout.tokenizer, world)
    assert len(trajectories) == 6
    groups = {}
    for traj, (spec, behaviour, turns) in trajectories.items():
        groups.setdefault(int(turns[0].info["group_id"]), []).append((spec, behaviour))
        n = _expected_turns(world, spec, behaviour)
        assert [int(e.info["turn_index"]) for e in turns] == list(range(n))
        assert {int(e.info["num_turns"]) for e in turns} == {n}
        assert {int(e.info["group_id"]) for e in turns} == {int(turns[0].info["group_id"])}
    # two groups, each: one task instance (the prompt's), the three behaviours
    assert sorted(sorted(b for _, b in g) for g in groups.values()) == [["idle", "invalid", "plan"]] * 2
    assert sorted(g[0][0].env for g in groups.values()) == ["alfworld", "scienceworld"]
    assert all(len({s.to_json() for s, _ in g}) == 1 for g in groups.values())
    expected = sum(len(world.plans[s.to_json()]) + 2 * world.turn_limit for s in (world.iid, world.sw))
    assert len(rollout.samples) == expected
    assert rollout.peak > 1, "the engine never saw two episodes' requests at once"


def test_action_spans_rewards_and_counts(rollout, world):
    tok = rollout.tokenizer
    for spec, behaviour, turns in _trajectories(rollout.samples, tok, world).values():
        n = len(turns)
        for t, e in enumerate(turns):
            mask = e.action_mask[0].bool()
            response = tok.decode(e.sequences[0][1:][mask])  # action_mask is shifted by one (upstream)
            prompt = tok.decode(e.sequences[0][: int(mask.nonzero()[0]) + 1])
            assert response.startswith("<think>") and not prompt.endswith("</action>")
            assert f"step {t + 1}" in prompt or t == 0  # the turn's own rebuilt prompt
            won, invalid, reward = {
                "plan": (1.0, 0.0, 1.0),
                "invalid": (0.0, 1.0, -PENALTY),
                "idle": (0.0, 0.0, 0.0),
            }[behaviour]
            if behaviour == "plan":
                assert response.endswith(f"<action>{world.plans[spec.to_json()][t]}</action>")
            assert float(e.info["won"]) == won and float(e.info["invalid"]) == invalid
            assert float(e.rewards) == pytest.approx(reward)
            assert float(e.info["invalid_count"]) == invalid * n and float(e.info["num_turns"]) == n
            assert float(e.info["episode_return"]) == pytest.approx(won - PENALTY * invalid * n)


def _maker(args, estimator):
    import openrlhf.trainer.ppo_utils.experience_maker as em

    args.algo.advantage.estimator = estimator
    maker = em.RemoteExperienceMaker.__new__(em.RemoteExperienceMaker)
    maker.strategy, maker.kl_ctl, maker.advantage_estimator = NS(args=args), NS(value=0.0), estimator
    return maker


def _fresh(samples):
    import copy

    out = []
    for i, e in enumerate(samples):
        e = copy.deepcopy(e)
        e.index = [i]
        e.kl = torch.zeros_like(e.action_mask, dtype=torch.float)  # no reference model
        out.append(e)
    return out


def test_grpo_advantage_is_the_trajectory_return_normalised_in_its_group(rollout, world):
    experiences = _maker(rollout.args, "group_norm").compute_advantages_and_returns(_fresh(rollout.samples))
    trajectories = _trajectories(experiences, rollout.tokenizer, world)
    returns = {}
    for traj, (spec, behaviour, turns) in trajectories.items():
        returns.setdefault(int(turns[0].info["group_id"]), {})[traj] = float(turns[0].info["episode_return"])
    for traj, (spec, behaviour, turns) in trajectories.items():
        group = returns[int(turns[0].info["group_id"])]
        values = list(group.values())
        want = (group[traj] - statistics.mean(values)) / (statistics.stdev(values) + 1e-9)
        for e in turns:
            adv = e.advantages[e.action_mask.bool()]
            assert adv.tolist() == pytest.approx([want] * len(adv), rel=1e-5, abs=1e-6)


def test_ppo_gae_runs_per_turn_sample_with_the_outcome_reward(rollout, world):
    gamma, lambd = 1.0, 0.95
    rollout.args.algo.advantage.gamma, rollout.args.algo.advantage.lambd = gamma, lambd
    experiences = _fresh(rollout.samples)
    for i, e in enumerate(experiences):  # a critic's values: any fixed numbers will do
        n = e.action_mask.shape[1]
        e.values = torch.tensor([[0.05 * ((i + j) % 9) - 0.2 for j in range(n)]])
    raw = []  # hand GAE per turn sample: reward on its last action token, zero values outside the action span
    for e in experiences:
        mask = e.action_mask[0].tolist()
        values = [v * m for v, m in zip(e.values[0].tolist(), mask)]
        last = max(j for j, m in enumerate(mask) if m)
        rewards = [float(e.rewards) if j == last else 0.0 for j in range(len(mask))]
        adv, running = [0.0] * len(mask), 0.0
        for j in reversed(range(len(mask))):
            next_value = values[j + 1] if j + 1 < len(mask) else 0.0
            running = rewards[j] + gamma * next_value - values[j] + gamma * lambd * running
            adv[j] = running
        raw.append((adv, mask))
    # batch whitening with eq. 3's weights: each trajectory once, each of its turns equally, each turn's tokens equally
    weighted = []
    for e, (adv, mask) in zip(experiences, raw):
        tokens = [a for a, m in zip(adv, mask) if m]
        turns, trajectories = int(e.info["num_turns"]), len({int(x.info["traj_id"]) for x in experiences})
        weighted += [(a, 1.0 / (trajectories * turns * len(tokens))) for a in tokens]
    mean = sum(a * w for a, w in weighted) / sum(w for _, w in weighted)
    std = (sum(w * (a - mean) ** 2 for a, w in weighted) / sum(w for _, w in weighted)) ** 0.5
    out = _maker(rollout.args, "gae").compute_advantages_and_returns(experiences)
    for e, (adv, mask) in zip(out, raw):
        got = e.advantages[0][e.action_mask[0].bool()].tolist()
        assert got == pytest.approx([(a - mean) / std for a, m in zip(adv, mask) if m], rel=1e-4, abs=1e-5)


def test_flash_reinforce_subtracts_the_batch_mean_of_trajectory_returns(rollout, world):
    out = _maker(rollout.args, "flash_reinforce").compute_advantages_and_returns(_fresh(rollout.samples))
    returns = {int(e.info["traj_id"]): float(e.info["episode_return"]) for e in out}
    assert len(returns) == 6  # 2 groups x 3 trajectories, counted once each whatever their turns
    baseline = statistics.mean(returns.values())
    for e in out:  # no whitening after it, as upstream's FlashREINFORCE
        adv = e.advantages[e.action_mask.bool()]
        assert adv.tolist() == pytest.approx([returns[int(e.info["traj_id"])] - baseline] * len(adv), rel=1e-5,
                                             abs=1e-6)


def test_rollout_metrics_count_episodes_not_turns(rollout, world):
    from openrlhf.trainer.ppo_trainer import BasePPOTrainer

    stats = BasePPOTrainer._compute_rollout_stats(None, rollout.samples)  # the patched upstream method
    limit = world.turn_limit
    turns = [len(world.plans[world.iid.to_json()]), limit, limit, len(world.plans[world.sw.to_json()]), limit, limit]
    assert stats["rollout/num_episodes"] == 6
    assert stats["rollout/success_rate"] == pytest.approx(2 / 6)
    assert stats["rollout/turns_mean"] == pytest.approx(sum(turns) / 6)
    assert stats["rollout/invalid_ratio"] == pytest.approx(2 * limit / sum(turns))
    assert stats["rollout/episode_return"] == pytest.approx((2 * 1.0 - 2 * PENALTY * limit) / 6)
    assert stats[f"rollout/success_{world.iid.task}"] == pytest.approx(1 / 3)
    assert stats[f"rollout/success_{SW_TASK}"] == pytest.approx(1 / 3)
    assert stats["rollout/num_samples"] == len(rollout.samples)  # upstream's own key still counts samples


def test_evaluation_reports_each_split(rollout, world):
    logs, limit = rollout.eval_logs, world.turn_limit
    for split, spec in (("iid", world.iid), ("ood", world.ood)):
        turns = [len(world.plans[spec.to_json()]), limit, limit]
        assert logs[f"eval_alfworld_{split}_pass1"] == pytest.approx(1 / 3)
        assert logs[f"eval_alfworld_{split}_pass3"] == 1.0  # the group's plan follower won
        assert logs[f"eval_alfworld_{split}_success_{spec.task}"] == pytest.approx(1 / 3)
        assert logs[f"eval_alfworld_{split}_turns_mean"] == pytest.approx(sum(turns) / 3)
        assert logs[f"eval_alfworld_{split}_invalid_ratio"] == pytest.approx(limit / sum(turns))
    assert logs["eval_num_episodes"] == 6 and logs["eval_success_rate"] == pytest.approx(2 / 6)


def test_no_environment_process_outlives_ray(rollout):
    assert not rollout.java_left, f"ScienceWorld JVMs left running: {sorted(rollout.java_left)}"

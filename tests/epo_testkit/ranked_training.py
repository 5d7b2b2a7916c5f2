"""One RL step of per-turn samples on several data-parallel ranks with the real DeepSpeed engine (gloo, CPU).

Run once per rank as a script (RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT set), like torchrun would:

    python ranked_training.py SPEC.json OUT.pt
SPEC: {"model", "vocab", "zero_stage", "turns": [turns per trajectory], "micro_batch", "rollout_micro_batch",
       "train_batch", "seed", "epo": {flag: value} | null, "history": [records], "k", "K"}; each rank writes OUT.pt.<rank>

Real parts: the patched `train_ppo_ray` argument parser and checks, `get_strategy` -> `DeepspeedStrategy` (ZeRO-2 or
ZeRO-3 on DeepSpeed's CPU accelerator), `openrlhf.models.Actor`, `ActorPPOTrainer` with its replay buffer and
`ppo_train` (shuffled dataloader, optimizer windows, EPO), upstream's `_process_response_into_experience` for the
samples, `RemoteExperienceMaker.split_rollout_samples` and `PPOTrainer.train_step`'s balancing hook for the driver's
share-out, `RayActorGroup.async_run_method_batch` for the chunk arithmetic. Stubs, at the Ray boundary only: the
actor groups are `LocalGroup`s (their handlers record the chunk a rank would receive instead of sending it over Ray,
`ray.put` keeps the object); both ranks compute the driver's plan from the same seed and each takes its own share.
The experience-making forward (old log-probs) runs for real under ZeRO on each rank's share, and the results are
all-gathered, as the driver would gather them.

Observed: the full fp32 gradient at every optimizer step (`deepspeed.utils.safe_get_full_grad`, between backward and
step), the losses, `ppo_train`'s status, the old log-probs, and what each rank received.
"""
import json
import os
import sys
from dataclasses import asdict
from types import SimpleNamespace as NS

import torch



class LocalGroup:
    """A RayActorGroup's shape without Ray: `ranks` handlers whose execute_batch records (method, chunk)."""

    def __init__(self, ranks: int):
        self.duplicate_actors = 1
        self.received = [[] for _ in range(ranks)]
        self._actor_handlers = [self._Handler(self.received[r]) for r in range(ranks)]

    class _Handler:
        def __init__(self, sink):
            self.execute_batch = NS(remote=lambda method, chunk, start, end: sink.append((method, chunk, start, end)))

    def share(self, method: str, rank: int, **kwargs):
        """What upstream's async_run_method_batch hands `rank` for `method`."""
        from openrlhf.trainer.ray.launcher import RayActorGroup

        for sink in self.received:
            sink.clear()
        RayActorGroup.async_run_method_batch(self, method, **kwargs)
        (name, chunk, start, end), = self.received[rank]
        assert name == method
        return {key: value[start:end] for key, value in chunk.items()}


def episode_responses(turns, seed, vocab, prompt_range=(6, 14), response_range=(1, 7)):
    """One group of per-turn agent responses (the executor's shape): trajectory j has turns[j] turns."""
    from openrlhf_epo.agent.samples import TurnMeta

    g = torch.Generator().manual_seed(seed)
    rand = lambda lo, hi: int(torch.randint(lo, hi + 1, (1,), generator=g))  # noqa: E731
    responses = []
    for j, n_turns in enumerate(turns):
        won = float(j % 2 == 0)
        samples = []
        for t in range(n_turns):
            p, r = rand(*prompt_range), rand(*response_range)
            tokens = torch.randint(3, vocab, (p + r,), generator=g).tolist()
            samples.append({
                "prompt": f"traj {j} turn {t}", "label": "{}", "images": None, "mm_train_inputs": None,
                "reward": won, "scores": won, "observation_tokens": tokens, "action_ranges": [(p, p + r)],
                "rollout_log_probs": None, "truncated": False,
                "extra_logs": asdict(TurnMeta(won=won, episode_return=won, num_turns=n_turns, invalid_count=0.0,
                                              invalid=0.0, turn_index=t, anchor_state=t,
                                              step_reward=won if t == n_turns - 1 else 0.0)),
            })
        responses.append({"openrlhf_epo_samples": samples})
    return responses


def parse_args(spec, world):
    from epo_testkit.train_args import parse_train_ppo_args

    argv = [
        "--actor.model_name_or_path", spec["model"], "--runtime.device", "cpu", "--runtime.cpu_dtype", "fp32",
        "--ds.zero_stage", str(spec["zero_stage"]), "--ds.attn_implementation", "eager",
        "--actor.num_nodes", "1", "--actor.num_gpus_per_node", str(world),
        "--rollout.batch_size", "1", "--rollout.n_samples_per_prompt", str(len(spec["turns"])),
        "--rollout.micro_batch_size", str(spec["rollout_micro_batch"]),
        "--train.batch_size", str(spec["train_batch"]), "--train.micro_batch_size", str(spec["micro_batch"]),
        "--train.max_epochs", "1", "--train.seed", str(spec["seed"]), "--actor.adam.lr", "1e-3",
        "--algo.advantage.estimator", "group_norm", "--data.max_len", "64",
        "--agent.mode", "per_turn", "--agent.max_prompt_tokens", "32", "--agent.max_response_tokens", "16",
        "--data.label_key", "label", "--reward.remote_url", "agent",
    ]
    if spec.get("epo"):
        argv += ["--actor.epo.enable"] + [x for k, v in spec["epo"].items() for x in (f"--actor.epo.{k}", str(v))]
    return parse_train_ppo_args(argv)


def main(spec_path, out_path):
    spec = json.loads(open(spec_path).read())
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    os.environ.setdefault("LOCAL_RANK", str(rank))
    import ray
    import deepspeed
    from deepspeed.utils import safe_get_full_grad

    from openrlhf.models import Actor
    from openrlhf.trainer.ppo_utils.experience_maker import RemoteExperienceMaker
    from openrlhf.trainer.ppo_utils.samples_generator import SamplesGenerator
    from openrlhf.trainer.ray.ppo_actor import ActorPPOTrainer
    from openrlhf.utils import get_strategy
    from openrlhf_epo.integration import actor_hooks
    from openrlhf_epo.integration.rank_balance import balance_per_turn_experiences
    from openrlhf_epo.integration.rollout_hooks import IdSource, expand_agent_responses

    args = parse_args(spec, world)
    strategy = get_strategy(args)
    strategy.setup_distributed()
    actor = Actor(spec["model"], attn_implementation="eager", param_dtype="fp32",
                  ds_config=strategy.get_ds_train_config(), packing_samples=False, temperature=1.0)
    cfg = dict(optim="adam", muon=vars(args.actor.muon), adam=vars(args.actor.adam), lr_scheduler="constant",
               lr_warmup_ratio=0.0, min_lr_ratio=0.0, max_norm=args.actor.max_norm, scheduler_steps=10)
    actor, optim, scheduler = strategy.prepare((actor, cfg))

    # The driver's plan (identical on every rank): samples, forward micro-batches and each rank's share of them.
    ray.put = lambda value: value  # Ray boundary: the object itself stands for its reference
    responses = expand_agent_responses(episode_responses(spec["turns"], spec["seed"], spec["vocab"]), IdSource())
    samples = [SamplesGenerator._process_response_into_experience(None, r, max_len=64) for r in responses]
    groups = NS(actor_model_group=LocalGroup(world), critic_model_group=None, initial_model_group=None,
                reward_model_group=None, args=args, tokenizer=NS(pad_token_id=0))
    micro = RemoteExperienceMaker.split_rollout_samples(groups, samples)
    forward_share = groups.actor_model_group.share(
        "forward", rank, sequences=[s.sequences for s in micro], action_mask=[s.action_mask for s in micro],
        attention_mask=[s.attention_mask for s in micro])
    trainer = ActorPPOTrainer(strategy, actor, None, optim, scheduler, micro_train_batch_size=args.train.micro_batch_size,
                              buffer_cpu_offload=True, tokenizer=None, vllm_engines=None)
    actor.eval()
    with torch.no_grad():  # PolicyModelActor.forward's call, with its EPO hooks (pi_old's entropies for W_k)
        mine = [actor_hooks.epo_old_forward_result(
                    trainer, actor(seq, mask, att, **actor_hooks.epo_old_forward_kwargs(trainer, mask, att)), mask)
                for seq, mask, att in zip(forward_share["sequences"], forward_share["action_mask"],
                                          forward_share["attention_mask"])]
    gathered = [None] * world
    torch.distributed.all_gather_object(gathered, mine)
    # the experience maker's side: the entropies onto the samples, the old log-probs returned
    old = actor_hooks.epo_attach_old_entropy(args, micro, [result for share in gathered for result in share])
    g = torch.Generator().manual_seed(spec["seed"] + 1)
    for exp, log_probs in zip(micro, old):
        exp.action_log_probs = log_probs + 0.05 * torch.randn(log_probs.shape, generator=g) * exp.action_mask
        exp.advantages = torch.randn(exp.action_mask.shape, generator=g) * exp.action_mask
        exp.returns = exp.advantages.clone()
        exp.kl = torch.zeros_like(log_probs)
    driver = NS(actor_model_group=LocalGroup(world), critic_model_group=None, args=args)
    status = {}
    balanced = balance_per_turn_experiences(driver, micro, status)  # PPOTrainer.train_step's hook (patch 0008)
    append_share = driver.actor_model_group.share("append", rank, experience=balanced)

    for experience in append_share["experience"]:
        trainer.replay_buffer.append(experience)
    if spec.get("epo"):
        actor_hooks.epo_begin_step(trainer, epo_step=spec["k"], epo_total_steps=spec["K"])
        if spec.get("history"):
            actor_hooks.epo_restore(trainer, {"openrlhf_epo": {"history": {"records": spec["history"]},
                                                               "k": spec["k"]}})
    grads, losses, real_step = [], [], strategy.optimizer_step
    backward = strategy.backward

    def observed_backward(loss, model, optimizer, **kw):
        losses.append(loss.detach().double().item())
        return backward(loss, model, optimizer, **kw)

    def observed_step(optimizer, model, scheduler, name="model", **kw):
        engine = model.model  # Actor wraps the DeepSpeed engine, which wraps the HF model
        if engine.is_gradient_accumulation_boundary():
            grads.append({n: safe_get_full_grad(p).detach().clone() for n, p in engine.module.named_parameters()})
        return real_step(optimizer, model, scheduler, name=name, **kw)

    strategy.backward, strategy.optimizer_step = observed_backward, observed_step
    train_status = trainer.ppo_train(kl_ctl=0.0)
    rows = []  # per sample, in the samples' order (micro-batches are contiguous runs of it), trimmed to its length
    for exp, forward in zip(micro, old):
        for i in range(len(exp.sequences)):
            n = int(exp.attention_mask[i].sum())
            rows.append({"sequences": exp.sequences[i, :n], "action_mask": exp.action_mask[i, : n - 1],
                         "forward_log_probs": forward[i, : n - 1], "old_log_probs": exp.action_log_probs[i, : n - 1],
                         "advantages": exp.advantages[i, : n - 1],
                         "info": {k: float(v[i]) for k, v in exp.info.items()}})
    out = {
        "rank": rank, "grads": grads, "losses": losses, "status": train_status, "rollout_status": status,
        "received": len(trainer.replay_buffer), "forwards": len(mine), "micro_rows": [len(m.sequences) for m in micro],
        "rows": rows, "accumulated_gradient": strategy.accumulated_gradient,
    }
    torch.save(out, f"{out_path}.{rank}")
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main(sys.argv[1], sys.argv[2])

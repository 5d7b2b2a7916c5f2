"""Run OpenRLHF's real `ActorPPOTrainer` training step on a fixed batch and save the loss and the gradients.

Used as a script, in a subprocess whose PYTHONPATH puts one OpenRLHF tree (pristine or patched) first, so a test can
compare the two trees on the same batch and seed. Real parts: `openrlhf.models.Actor` around a tiny random Qwen2,
`PolicyLoss`, `ActorPPOTrainer.training_step`, `iter_grad_accum_global_norm`, the tree's own `DeepspeedStrategy`
backward / optimizer_step / get_grad_norm over a real DeepSpeed engine (`deepspeed.initialize`, ZeRO stage 0, fp32,
gloo; it scales each micro-batch by 1 / gradient-accumulation steps and averages gradients over ranks), torch.distributed
for the two-rank runs. Not upstream's `DeepspeedStrategy.setup_distributed` / `prepare`: the pristine tree's call
torch.cuda, which this machine lacks (the patched tree's are run by ranked_training.py and the pipeline tests). The
gradients are read at each optimizer-step boundary, between backward and DeepSpeed's step.

    python actor_step.py SPEC.json OUT.pt
SPEC: {"epo": {...EPOConfig fields...} | null, "entropy_coef": float | null, "gas": int, "micro_batch": int,
       "rows": [sample indices of this rank], "history": [records] | null, "K": int, "seed": int,
       "steps": int, "first_step": int, "lr": float, "save_to": path, "load_from": path,
       "advantages": [[float]] | null (replaces the batch's), "hand_term": {...} | null (see hand_term),
       "loss_agg_mode": "token-mean" | "seq-mean-token-mean" | "trajectory", "hand_policy": bool (see hand_policy),
       "record_entropy": bool (each micro-batch's training-forward entropy sum and token count)}

With EPO on, the old log-probs and the entropies of the policy that produced the batch come from the patched
PolicyModelActor.forward's own calls (epo_old_forward_kwargs / _result) and the experience maker's
(epo_attach_old_entropy), as in a run.
"""
import json
import os
import sys
from types import SimpleNamespace as NS

import torch

VOCAB, PROMPT, RESPONSE = 384, 9, 7
# Per-turn samples: (trajectory, turn index, turns of the trajectory, response length)
SAMPLES = [(0, 0, 3, 5), (0, 1, 3, 2), (0, 2, 3, 7), (1, 0, 1, 4), (2, 0, 4, 3), (2, 1, 4, 6), (2, 2, 4, 1), (2, 3, 4, 7)]


def build_batch(seed: int, vocab=VOCAB, prompt=PROMPT, response=RESPONSE):
    """The whole batch (all ranks): left-padded prompts, right-padded responses, as OpenRLHF lays them out."""
    g = torch.Generator().manual_seed(seed)
    n = len(SAMPLES)
    sequences = torch.randint(3, vocab, (n, prompt + response), generator=g)
    attention = torch.ones(n, prompt + response, dtype=torch.long)
    action_mask = torch.zeros(n, response, dtype=torch.bool)
    for row, (_, _, _, length) in enumerate(SAMPLES):
        length = max(1, length * response // RESPONSE)
        pad = int(torch.randint(0, 4, (1,), generator=g))
        attention[row, :pad] = 0
        sequences[row, :pad] = 0
        attention[row, prompt + length :] = 0
        sequences[row, prompt + length :] = 0
        action_mask[row, :length] = True
    advantages = torch.randn(n, response, generator=g) * action_mask
    old_noise = torch.randn(n, response, generator=g) * 0.05
    return sequences, attention, action_mask, advantages, old_noise


def real_strategy(args, engine, gas):
    """The tree's own DeepspeedStrategy around a DeepSpeed engine, its losses and boundary gradients observed."""
    from deepspeed.utils import safe_get_full_grad

    from openrlhf.utils.deepspeed import DeepspeedStrategy

    strategy = DeepspeedStrategy.__new__(DeepspeedStrategy)  # setup_distributed / prepare call torch.cuda
    strategy.args, strategy.accumulated_gradient = args, gas  # ring_attn_group: none registered, None
    strategy.losses, strategy.boundary_grads = [], []
    backward, optimizer_step = strategy.backward, strategy.optimizer_step

    def observed_backward(loss, model, optimizer, **kwargs):
        strategy.losses.append(loss.detach().double().item())
        backward(loss, model, optimizer, **kwargs)

    def observed_step(optimizer, model, scheduler, **kwargs):
        if engine.is_gradient_accumulation_boundary():  # full, rank-averaged gradients, before the step zeroes them
            strategy.boundary_grads.append({n: safe_get_full_grad(p).detach().clone()
                                            for n, p in engine.module.named_parameters()})
        optimizer_step(optimizer, model, scheduler, **kwargs)

    strategy.backward, strategy.optimizer_step = observed_backward, observed_step
    return strategy


def deepspeed_engine(model, spec, world):
    import deepspeed

    config = {
        "train_micro_batch_size_per_gpu": spec["micro_batch"], "gradient_accumulation_steps": spec["gas"],
        "train_batch_size": spec["micro_batch"] * spec["gas"] * world, "zero_optimization": {"stage": 0},
        "gradient_clipping": 0.0, "steps_per_print": 10**9, "wall_clock_breakdown": False,
    }
    optimizer = torch.optim.SGD(model.parameters(), lr=spec.get("lr", 0.0))
    engine, optimizer, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, config=config)
    return engine, optimizer


def hand_term(model, sequences, attention, action_mask, term, prompt, response):
    """-coef * (L_H - beta * L_smooth) of the whole batch written out by hand (eq. 4-6, appendix definition 9), and
    its gradient, on the model's weights before training. Nothing of openrlhf_epo is used.
    term: {"aggregation": "trajectory" | "token_mean", "smoothing": "hinge" | "mask" | "off", "coef", "beta",
           "alpha", "kappa_l", "kappa_r", "hbar": [per sample] | null}"""
    position_ids = (attention.cumsum(-1) - 1).masked_fill(attention == 0, 1)
    logits = model(sequences, attention_mask=attention, position_ids=position_ids).logits.float()
    logits = logits[:, prompt - 1 : prompt - 1 + response]  # position p predicts token p + 1
    entropy = -(logits.softmax(-1) * logits.log_softmax(-1)).sum(-1)
    trajectories = {traj for traj, _, _, _ in SAMPLES}
    tokens = int(action_mask.sum())
    l_h = l_smooth = 0.0
    for row, (traj, _, turns, _) in enumerate(SAMPLES):
        length = int(action_mask[row].sum())
        for i in range(response):
            if not action_mask[row, i]:
                continue
            h = entropy[row, i]
            w = 1.0 / tokens if term["aggregation"] == "token_mean" else 1.0 / (len(trajectories) * turns * length)
            l_h = l_h + w * h
            if term["smoothing"] != "off" and term["hbar"] is not None:
                low, high = term["kappa_l"] * term["hbar"][row], term["kappa_r"] * term["hbar"][row]
                if term["smoothing"] == "hinge":
                    penalty = term["alpha"] * (torch.relu(low - h) + torch.relu(h - high))
                else:  # mask: a constant alpha outside the band, no gradient
                    penalty = term["alpha"] * float(h.item() < low or h.item() > high)
                l_smooth = l_smooth + w * penalty
    value = -term["coef"] * (l_h - term["beta"] * l_smooth)
    model.zero_grad()
    value.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    model.zero_grad()
    return {"value": float(value), "grads": grads}


def hand_policy(model, sequences, attention, action_mask, old_log_probs, advantages, prompt, response, eps=0.2):
    """Eq. 3 written out by hand: PPO's clipped surrogate -min(r A, clip(r, 1 - eps, 1 + eps) A) per token, averaged
    inside each turn, over each trajectory's turns, over the trajectories (SAMPLES' layout); its value and gradient
    on the model's weights before training. Nothing of openrlhf_epo is used."""
    position_ids = (attention.cumsum(-1) - 1).masked_fill(attention == 0, 1)
    logits = model(sequences, attention_mask=attention, position_ids=position_ids).logits.float()
    logits = logits[:, prompt - 1 : prompt - 1 + response]
    log_probs = logits.log_softmax(-1).gather(-1, sequences[:, prompt : prompt + response, None])[..., 0]
    per_trajectory = {}
    for row, (traj, _, _, _) in enumerate(SAMPLES):
        terms = []
        for i in range(response):
            if action_mask[row, i]:
                ratio = (log_probs[row, i] - old_log_probs[row, i]).exp()
                a = advantages[row, i]
                terms.append(-torch.min(ratio * a, ratio.clamp(1 - eps, 1 + eps) * a))
        per_trajectory.setdefault(traj, []).append(sum(terms) / len(terms))
    value = sum(sum(turns) / len(turns) for turns in per_trajectory.values()) / len(per_trajectory)
    model.zero_grad()
    value.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    model.zero_grad()
    return {"value": float(value), "grads": grads}


def make_args(spec):
    args = NS(
        actor=NS(entropy_coef=spec.get("entropy_coef"), aux_loss_coef=0, eps_clip_low_high=(0.2, 0.2),
                 loss_agg_mode=spec.get("loss_agg_mode", "token-mean")),
        algo=NS(kl=NS(use_loss=False, init_coef=0.0, estimator="k1", unbiased_gradient=False)),
        train=NS(dynamic_batch_enable=False, max_epochs=1),
        ds=NS(packing_samples=False, tensor_parallel_size=1),
    )
    if spec.get("epo") is not None:
        from openrlhf_epo.epo.config import EPOConfig

        args.actor.epo = NS(**{**vars(EPOConfig()), **spec["epo"]})
    return args


def build(spec, world=1, vocab=VOCAB, hidden=32, prompt=PROMPT, response=RESPONSE):
    """A real ActorPPOTrainer around a tiny random Qwen2, and the batch (see the module docstring)."""
    from openrlhf_epo.runtime import flash_attn_stub

    flash_attn_stub.install()
    import openrlhf
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from openrlhf.models import Actor, PolicyLoss
    from openrlhf.trainer.ppo_utils.experience import Experience
    from openrlhf.trainer.ray.ppo_actor import ActorPPOTrainer
    from openrlhf.utils.loss_utils import iter_grad_accum_global_norm

    torch.manual_seed(spec["seed"])
    config = Qwen2Config(vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=prompt + response + 8)
    model = Qwen2ForCausalLM(config).float()
    model.config._attn_implementation = "eager"  # deterministic on CPU; no flash-attn here
    actor = Actor(model)
    actor.packing_samples = False

    sequences, attention, action_mask, advantages, old_noise = build_batch(spec["seed"], vocab, prompt, response)
    if spec.get("advantages") is not None:  # a reference run of hand-shaped advantages (EA)
        advantages = torch.tensor(spec["advantages"], dtype=advantages.dtype)
    with torch.no_grad():
        forward_log_probs = actor(sequences, action_mask, attention)
        old_log_probs = forward_log_probs + old_noise * action_mask
        position_ids = (attention.cumsum(-1) - 1).masked_fill(attention == 0, 1)
        logits = model(sequences, attention_mask=attention, position_ids=position_ids).logits

    hand = hand_term(model, sequences, attention, action_mask, spec["hand_term"], prompt, response) \
        if spec.get("hand_term") else None
    policy = hand_policy(model, sequences, attention, action_mask, old_log_probs, advantages, prompt, response) \
        if spec.get("hand_policy") else None
    args = make_args(spec)
    engine, optimizer = deepspeed_engine(model, spec, world)
    actor.model = engine  # as DeepspeedStrategy.prepare leaves it
    trainer = ActorPPOTrainer.__new__(ActorPPOTrainer)  # no Ray, no vLLM sync group
    trainer.strategy = real_strategy(args, engine, spec["gas"])
    trainer.args, trainer.actor, trainer.ema_model, trainer.aux_loss = args, actor, None, False
    trainer.actor_loss_fn = PolicyLoss(0.2, 0.2, token_level_loss=args.actor.loss_agg_mode == "token-mean")
    trainer.actor_optim = optimizer
    trainer.actor_scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    made = {"log_probs": old_log_probs,
            "entropy": old_policy_entropy(trainer, actor, sequences, attention, action_mask, forward_log_probs)}

    def remake():
        """The next RL step's experience-making forward, on the weights trained so far (same batch, same noise)."""
        with torch.no_grad():
            forward = actor(sequences, action_mask, attention)
        made["log_probs"] = forward + old_noise * action_mask
        made["entropy"] = old_policy_entropy(trainer, actor, sequences, attention, action_mask, forward)

    def experience_of(rows):
        rows = list(rows)
        entropy = {} if made["entropy"] is None else {"action_entropy": made["entropy"][rows]}  # patched trees only
        return Experience(
            sequences=sequences[rows], attention_mask=attention[rows], action_mask=action_mask[rows],
            action_log_probs=made["log_probs"][rows], advantages=advantages[rows], **entropy,
            info={"turn_index": torch.tensor([SAMPLES[r][1] for r in rows]),
                  "num_turns": torch.tensor([SAMPLES[r][2] for r in rows])},
        )

    return NS(trainer=trainer, model=model, logits=logits, action_mask=action_mask, experience_of=experience_of,
              remake=remake, hand=hand, policy=policy, iter_grad_accum_global_norm=iter_grad_accum_global_norm, openrlhf=openrlhf)


def old_policy_entropy(trainer, actor, sequences, attention, action_mask, log_probs):
    """With EPO on: the experience-making forward as the patched PolicyModelActor.forward runs it, and the experience
    maker's split of its result; the (B, A) entropies it attaches. None with EPO off (either tree)."""
    if getattr(trainer.args.actor, "epo", None) is None or not trainer.args.actor.epo.enable:
        return None
    from openrlhf.trainer.ppo_utils.experience import Experience
    from openrlhf_epo.integration import actor_hooks

    with torch.no_grad():
        result = actor(sequences, action_mask, attention,
                       **actor_hooks.epo_old_forward_kwargs(trainer, action_mask, attention))
    samples = Experience(action_mask=action_mask)
    [returned] = actor_hooks.epo_attach_old_entropy(trainer.args, [samples],
                                                    [actor_hooks.epo_old_forward_result(trainer, result, action_mask)])
    torch.testing.assert_close(returned, log_probs, rtol=0, atol=1e-6)  # the same forward's log-probs, unchanged
    return samples.action_entropy


def main(spec_path, out_path):
    spec = json.loads(open(spec_path).read())
    world = int(os.environ.get("WORLD_SIZE", "1"))
    import deepspeed

    deepspeed.init_distributed(dist_backend="gloo")  # the runner sets RANK / WORLD_SIZE / MASTER_* (also for one rank)
    kit = build(spec, world)
    trainer, model, logits, action_mask = kit.trainer, kit.model, kit.logits, kit.action_mask
    experience_of, iter_grad_accum_global_norm, openrlhf = kit.experience_of, kit.iter_grad_accum_global_norm, kit.openrlhf
    rows = spec["rows"]
    epo_on = spec.get("epo") is not None
    if epo_on:
        from openrlhf_epo.integration import actor_hooks
    if spec.get("load_from"):  # resume: weights and DeepSpeed client state, as PolicyModelActor restores them
        saved = torch.load(spec["load_from"], weights_only=False)
        model.load_state_dict(saved["model"])
        actor_hooks.epo_restore(trainer, saved["client_states"])
    per_step, statuses, seen_entropy = [], [], []
    if spec.get("record_entropy"):  # observe the training forward's entropies (the hook's input), per micro-batch
        import openrlhf.trainer.ray.ppo_actor as ppo_actor

        inner = ppo_actor.epo_actor_loss

        def recording(trainer, experience, output, loss, loss_batch_info):
            mask = experience.action_mask
            seen_entropy.append(((output.entropy[:, -mask.shape[1]:].double() * mask).sum().item(), int(mask.sum())))
            return inner(trainer, experience, output, loss, loss_batch_info)

        ppo_actor.epo_actor_loss = recording
    for step in range(spec.get("first_step", 0), spec.get("first_step", 0) + spec.get("steps", 1)):
        if step > spec.get("first_step", 0) or spec.get("load_from"):
            kit.remake()  # each RL step makes its experience with the weights it starts from
        micro = [experience_of(rows[i : i + spec["micro_batch"]]) for i in range(0, len(rows), spec["micro_batch"])]
        stream = iter_grad_accum_global_norm(iter(micro), trainer.strategy, spec["gas"], lambda e: e.action_mask)
        if epo_on:
            actor_hooks.epo_begin_step(trainer, epo_step=step, epo_total_steps=spec["K"])
            if spec.get("history") and step == spec.get("first_step", 0) and not spec.get("load_from"):
                records = [dict(r, turns={int(t): m for t, m in r.get("turns", {}).items()})  # JSON keys are str
                           for r in spec["history"]]
                actor_hooks.epo_restore(trainer, {"openrlhf_epo": {"history": {"records": records}, "k": step}})
            stream = actor_hooks.epo_optimizer_windows(trainer, stream)
        losses_before = len(trainer.strategy.losses)
        statuses = [trainer.training_step(exp, 0.0, i, info) for i, (exp, info) in enumerate(stream)]
        end = actor_hooks.epo_end_step(trainer) if epo_on else {}
        per_step.append({"step": step, "losses": trainer.strategy.losses[losses_before:], "end": end,
                         "metrics": [{k: float(v) for k, v in st["metrics"].items() if k.startswith("epo/")}
                                     for st in statuses]})
    if spec.get("save_to"):
        client_states = actor_hooks.epo_checkpoint_state(trainer, {"global_step": step + 1})
        torch.save({"model": model.state_dict(), "client_states": client_states}, spec["save_to"])

    grads = trainer.strategy.boundary_grads[-1]  # the last optimizer step's (DeepSpeed averaged them over ranks)
    if int(os.environ.get("RANK", "0")) == 0:
        torch.save({
            "openrlhf_file": openrlhf.__file__, "losses": trainer.strategy.losses, "grads": grads,
            "logits": logits, "action_mask": action_mask, "steps": per_step,
            "policy_losses": [s["metrics"]["policy_loss"].item() for s in statuses], "hand_term": kit.hand,
            "hand_policy": kit.policy, "training_entropy": seen_entropy,
        }, out_path)
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

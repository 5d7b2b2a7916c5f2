"""Per-turn samples on several data-parallel ranks: same forwards, micro-batches and optimizer windows on every rank,
and the loss and gradient of one rank on the whole batch (integration/rank_balance.py, patch 0008).

The two-rank cases run the real DeepSpeed engine (ZeRO-2 and ZeRO-3, gloo on CPU) through
tests/epo_testkit/ranked_training.py; the reference here is the paper's objective written out by hand on a plain
transformers model holding the same weights.
"""
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace as NS

import pytest
import torch

from openrlhf_epo.integration.rank_balance import pad_for_ranks, real_sample_status, split_for_ranks

HARNESS = Path(__file__).resolve().parents[1] / "epo_testkit" / "ranked_training.py"
VOCAB = 384
EPO = {"coef": 0.05, "smooth_coef": 0.1, "kappa_l": 0.9, "kappa_r": 1.05}
HISTORY = [{"mean": 1.9, "turns": {}}, {"mean": 2.6, "turns": {}}]


# ---------------------------------------------------------------------------------------------------------------------
# The share-out, counted by hand
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n,micro,ranks,expected", [
    (13, 1, 2, [2] + [1] * 11),            # micro-batches of 1 and an odd count: 12 forwards, one of 2 rows
    (13, 2, 2, [2, 2, 2, 2, 2, 1, 1, 1]),  # ceil(13 / 2) = 7 -> 8 micro-batches, 4 per rank
    (13, 4, 8, [2, 2, 2, 2, 2, 1, 1, 1]),  # 8 ranks need 8 forwards even though 4 would hold the rows
    (16, 4, 2, [4, 4, 4, 4]),              # already even: upstream's own split
    (5, 16, 2, [3, 2]),
])
def test_forward_micro_batches_are_a_multiple_of_the_ranks_and_keep_every_sample(n, micro, ranks, expected):
    batches = split_for_ranks(list(range(n)), micro, ranks)
    assert [len(b) for b in batches] == expected
    assert [x for b in batches for x in b] == list(range(n))  # order kept, nothing added or dropped
    assert len(batches) % ranks == 0


def test_fewer_samples_than_ranks_is_refused_with_the_numbers():
    with pytest.raises(ValueError, match="3 per-turn samples cannot give each of 4 data-parallel ranks"):
        split_for_ranks([0, 1, 2], 1, 4)


def _experience(lengths, group=0):
    """Single-sample Experiences (upstream's shape) with `lengths` action tokens each; total_length = 10 + length."""
    from openrlhf.trainer.ppo_utils.experience import Experience

    out = []
    for i, a in enumerate(lengths):
        mask = torch.zeros(1, 12, dtype=torch.bool)
        mask[0, :a] = True
        out.append(Experience(sequences=torch.arange(13)[None], attention_mask=torch.ones(1, 13, dtype=torch.long),
                              action_mask=mask, advantages=torch.ones(1, 12), returns=torch.ones(1, 12),
                              total_length=torch.tensor([10.0 + a]),
                              info={"group_id": torch.tensor([group]), "reward": torch.tensor([float(i)])}))
    return out


def test_ranks_are_filled_to_whole_windows_with_zero_weight_samples():
    items = _experience([5, 1, 7, 3, 2, 6, 4])  # 7 samples, 3 ranks, train batch 6 -> 12 = 4 per rank, 5 padding
    shards, pads = pad_for_ranks(items, ranks=3, train_batch_size=6)
    assert pads == 5
    assert [len(s.sequences) for s in shards] == [4, 4, 4]
    real = [int(s.action_mask[i].sum()) for s in shards for i in range(4) if s.action_mask[i].any()]
    assert sorted(real) == [1, 2, 3, 4, 5, 6, 7]  # every sample once
    # dealt by length in snake order (7, 6, 5 | 4, 3, 2 reversed | 1): long and short samples on every rank
    assert [int(s.action_mask.sum()) for s in shards] == [7 + 2 + 1, 6 + 3, 5 + 4]
    for shard in shards:  # padding: no action token, no advantage, no return
        empty = ~shard.action_mask.any(-1)
        assert not shard.advantages[empty].any() and not shard.returns[empty].any()


def test_batch_size_not_divisible_by_ranks_is_refused():
    with pytest.raises(ValueError, match="--train.batch_size 5 is not a multiple of the 2 data-parallel ranks"):
        pad_for_ranks(_experience([1, 2]), ranks=2, train_batch_size=5)


def test_padding_rows_leave_the_sample_metrics():
    mask = torch.tensor([[1, 1, 0], [0, 0, 0], [1, 0, 0]], dtype=torch.bool)
    status = {"metrics": {"reward": torch.tensor([1.0, 9.0, 3.0]), "policy_loss": torch.tensor(0.5)},
              "weights": {"reward": "sample", "policy_loss": "token"}, "num_samples": 3.0, "num_action_tokens": 3.0}
    out = real_sample_status(status, NS(action_mask=mask))
    assert out["num_samples"] == 2.0
    # upstream reduces a sample metric as mean x num_samples: the sum over the real rows, 1 + 3
    assert out["metrics"]["reward"].mean().item() * out["num_samples"] == 4.0
    assert out["metrics"]["policy_loss"].item() == 0.5
    only_padding = real_sample_status({**status, "metrics": {"reward": torch.tensor([9.0])}, "num_samples": 1.0},
                                      NS(action_mask=torch.zeros(1, 3, dtype=torch.bool)))
    assert only_padding["num_samples"] == 0.0 and only_padding["metrics"]["reward"].mean().item() == 0.0


# ---------------------------------------------------------------------------------------------------------------------
# Two ranks, the real DeepSpeed engine
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         tie_word_embeddings=False)
    folder = tmp_path_factory.mktemp("tiny-qwen2")
    Qwen2ForCausalLM(config).float().save_pretrained(folder)
    return folder


def run_ranks(tmp_path, model, world=2, **spec):
    spec = {"model": str(model), "vocab": VOCAB, "seed": 0, "k": 2, "K": 10, **spec}
    spec_file, out = tmp_path / "spec.json", tmp_path / "out.pt"
    spec_file.write_text(json.dumps(spec))
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(29700 + os.getpid() % 200), "WORLD_SIZE": str(world)}
    procs = [subprocess.Popen([sys.executable, str(HARNESS), str(spec_file), str(out)],
                              env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for r in range(world)]
    try:
        logs = [p.communicate(timeout=420)[0] for p in procs]  # a hang becomes a failure, not a stuck suite
    finally:
        for p in procs:
            p.kill()
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-4000:]
    return [torch.load(f"{out}.{r}", weights_only=False) for r in range(world)]


def _beta(k, K, bs=2.0, be=1.0, ld=3.0):
    """Eq. 7."""
    k_mid = K // 2
    if k <= k_mid:
        return bs + (1 - bs) * (1 - math.exp(-ld * k / k_mid))
    return 1 + (be - 1) * (1 - math.exp(-ld * (k - k_mid) / (K - k_mid)))


def reference(model_dir, rows, k, K):
    """L = L_MT - lambda [L_H - beta_k L_smooth] on the whole batch, by loops over the paper's sums (eq. 3-7 with
    upstream's token-mean PPO loss as L_MT), and its gradient; plus each row's log-probs and entropies."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32, attn_implementation="eager")
    hbar = sum(r["mean"] for r in HISTORY) / len(HISTORY)
    policy_terms, n_tokens, per_traj, log_probs, all_h = [], 0, {}, [], []
    for row in rows:
        seq, mask = row["sequences"], row["action_mask"].bool()
        logits = model(seq[None]).logits[0, :-1].float()  # position p predicts token p + 1
        logp_all = torch.log_softmax(logits, -1)
        logp = logp_all.gather(-1, seq[1:, None])[:, 0]
        h = -(logp_all.exp() * logp_all).sum(-1)
        log_probs.append(logp.detach())
        ratio = torch.exp(logp - row["old_log_probs"])
        adv = row["advantages"]
        loss = -torch.min(ratio * adv, ratio.clamp(0.8, 1.2) * adv)
        policy_terms.append(loss[mask].sum())
        n_tokens += int(mask.sum())
        penalty = EPO["smooth_coef"] * (torch.relu(EPO["kappa_l"] * hbar - h) + torch.relu(h - EPO["kappa_r"] * hbar))
        traj = per_traj.setdefault(row["info"]["traj_id"], {"H": [], "S": []})
        traj["H"].append(h[mask].mean())
        traj["S"].append(penalty[mask].mean())
        all_h.append(h[mask].detach())
    l_mt = sum(policy_terms) / n_tokens
    l_h = sum(sum(t["H"]) / len(t["H"]) for t in per_traj.values()) / len(per_traj)
    l_smooth = sum(sum(t["S"]) / len(t["S"]) for t in per_traj.values()) / len(per_traj)
    total = l_mt - EPO["coef"] * (l_h - _beta(k, K) * l_smooth)
    model.zero_grad()
    total.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    return NS(grads=grads, log_probs=log_probs, batch_entropy=torch.cat(all_h).mean().item(), loss=total.item())


@pytest.mark.slow
@pytest.mark.parametrize("zero_stage", [2, 3])
def test_uneven_trajectories_on_two_ranks_give_the_full_batch_gradient(tmp_path, tiny_model, zero_stage, report):
    # trajectories of 3 and 10 turns: 13 per-turn samples, an odd count; micro-batches of 1 on the forward (12 of
    # them, 6 per rank), training micro-batches of 2, a window of 16 samples: 8 per rank, 3 of them padding
    import time

    start = time.time()
    ranks = run_ranks(tmp_path, tiny_model, zero_stage=zero_stage, turns=[3, 10], micro_batch=2,
                      rollout_micro_batch=1, train_batch=16, epo=EPO, history=HISTORY)
    report(f"two ranks, ZeRO-{zero_stage}, 13 per-turn samples: one RL step in {time.time() - start:.0f} s")
    r0, r1 = ranks
    assert r0["forwards"] == r1["forwards"] == 6
    assert max(r0["micro_rows"]) <= 2 and sum(r0["micro_rows"]) == 13
    assert r0["received"] == r1["received"] == 8
    assert r0["rollout_status"] == {"rollout/pad_samples": 3.0}
    assert len(r0["grads"]) == len(r1["grads"]) == 1  # one optimizer window on each rank
    assert len(r0["losses"]) == len(r1["losses"]) == 4  # gas = 16 / (2 x 2) micro-batches, the same on both ranks

    ref = reference(tiny_model, r0["rows"], k=2, K=10)
    for i, (row, logp) in enumerate(zip(r0["rows"], ref.log_probs)):  # each rank's ZeRO forward: the model's log-probs
        mask = row["action_mask"].bool()
        torch.testing.assert_close(row["forward_log_probs"][mask], logp[mask], rtol=1e-5, atol=1e-5,
                                   msg=lambda m: f"row {i} of {r0['micro_rows']}: {m}")
    for name, grad in ref.grads.items():
        torch.testing.assert_close(r0["grads"][0][name], grad, rtol=2e-4, atol=2e-6, msg=name)
        torch.testing.assert_close(r1["grads"][0][name], grad, rtol=2e-4, atol=2e-6, msg=name)
    assert sum(g.abs().sum() for g in ref.grads.values()) > 0
    # the logged metrics count the 13 real samples only: trajectory 0 (3 turns) won, trajectory 1 (10 turns) lost
    status = r0["status"]
    assert status["won"] == pytest.approx(3 / 13)
    assert status["num_turns"] == pytest.approx((3 * 3 + 10 * 10) / 13)
    assert status["epo/batch_entropy"] == pytest.approx(ref.batch_entropy, rel=1e-5)
    assert status == r1["status"]


@pytest.mark.slow
def test_several_windows_run_in_step_on_both_ranks(tmp_path, tiny_model):
    # 2 + 5 + 4 turns = 11 samples, windows of 4 (gas 1 with micro-batches of 2 on 2 ranks): 12 = 3 windows per rank
    r0, r1 = run_ranks(tmp_path, tiny_model, zero_stage=3, turns=[2, 5, 4], micro_batch=2, rollout_micro_batch=1,
                       train_batch=4, epo=EPO, history=HISTORY)
    assert r0["received"] == r1["received"] == 6
    assert r0["rollout_status"] == {"rollout/pad_samples": 1.0}
    assert len(r0["grads"]) == len(r1["grads"]) == 3
    assert r0["status"]["won"] == pytest.approx((2 + 4) / 11)  # trajectories 0 and 2 won

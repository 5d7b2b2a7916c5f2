"""OpenRLHF's real actor training step, pristine release against the patched one (tests/epo_testkit/actor_step.py).

Each run is a subprocess with one tree first on PYTHONPATH, so both trees are loaded as a user would load them.
"""
import json
import math
import os
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow  # each case runs real OpenRLHF in subprocesses (about 10 s apiece)

HARNESS = Path(__file__).resolve().parents[1] / "epo_testkit" / "actor_step.py"
PROMPT, RESPONSE = 9, 7
SAMPLES = [(0, 0, 3, 5), (0, 1, 3, 2), (0, 2, 3, 7), (1, 0, 1, 4), (2, 0, 4, 3), (2, 1, 4, 6), (2, 2, 4, 1), (2, 3, 4, 7)]
ALL_ROWS = list(range(len(SAMPLES)))
HISTORY = [{"mean": 1.9, "turns": {}}, {"mean": 2.6, "turns": {}}, {"mean": 2.2, "turns": {}}]
EPO = {"enable": True, "coef": 0.05, "smooth_coef": 0.1, "kappa_l": 0.9, "kappa_r": 1.05, "smoothing": "hinge"}


@pytest.fixture(scope="module")
def trees(tmp_path_factory, request):
    """A pristine and a patched OpenRLHF 0.11.2 tree, from the PyPI wheel."""
    wheel = request.getfixturevalue("release_wheel")
    out = {}
    for kind in ("pristine", "patched"):
        root = tmp_path_factory.mktemp(kind)
        with zipfile.ZipFile(wheel) as z:
            z.extractall(root)
        out[kind] = root / "openrlhf-0.11.2.data" / "purelib"
    cli = subprocess.run([sys.executable, "-m", "openrlhf_epo.tools.cli", "patch", "apply", "--target",
                          str(out["patched"])], capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr
    return out


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_step(tree, tmp_path, name, world=1, **spec):
    spec = {"epo": None, "entropy_coef": None, "gas": 1, "micro_batch": 8, "rows": ALL_ROWS, "history": None,
            "K": 10, "seed": 0, **spec}
    out = tmp_path / f"{name}.pt"
    env = {**os.environ, "PYTHONPATH": str(tree), "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "WORLD_SIZE": str(world)}
    procs = []
    for rank in range(world):
        rows = spec["rows"]
        rank_spec = {**spec, "rows": rows[rank::world] if spec.get("interleave") else
                     rows[rank * len(rows) // world:(rank + 1) * len(rows) // world]}
        spec_file = tmp_path / f"{name}-{rank}.json"
        spec_file.write_text(json.dumps(rank_spec))
        procs.append(subprocess.Popen([sys.executable, str(HARNESS), str(spec_file), str(out)],
                                      env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank)},
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-4000:]
    result = torch.load(out, weights_only=False)
    assert result["openrlhf_file"].startswith(str(tree))  # the tree under test was the one imported
    return result


def test_epo_off_is_bitwise_vanilla_ppo(trees, tmp_path):
    for entropy_coef in (None, 0.01):  # with and without upstream's own entropy bonus
        vanilla = run_step(trees["pristine"], tmp_path, f"vanilla-{entropy_coef}", entropy_coef=entropy_coef)
        patched = run_step(trees["patched"], tmp_path, f"patched-{entropy_coef}", entropy_coef=entropy_coef,
                           epo={"enable": False})
        assert patched["losses"] == vanilla["losses"]
        for name, grad in vanilla["grads"].items():
            assert torch.equal(patched["grads"][name], grad), name
        assert any(g.abs().sum() > 0 for g in vanilla["grads"].values())


def _entropies(logits):
    """H of every response token, float64, from the plain HF logits (position p predicts token p + 1)."""
    h = torch.distributions.Categorical(logits=logits.double()).entropy()
    return h[:, PROMPT - 1 : PROMPT - 1 + RESPONSE]


def _eq4(values, mask):
    """Eq. 4 / 6 by loops: tokens -> turn mean; turns -> trajectory mean; trajectories -> batch mean."""
    per_traj = {}
    for row, (traj, turn, _, _) in enumerate(SAMPLES):
        tokens = [values[row, i].item() for i in range(RESPONSE) if mask[row, i]]
        per_traj.setdefault(traj, []).append(sum(tokens) / len(tokens))
    return sum(sum(v) / len(v) for v in per_traj.values()) / len(per_traj)


def _beta(k, K, bs=2.0, be=1.0, ld=3.0):
    k_mid = K // 2
    if k <= k_mid:
        return bs + (1 - bs) * (1 - math.exp(-ld * k / k_mid))
    return 1 + (be - 1) * (1 - math.exp(-ld * (k - k_mid) / (K - k_mid)))


@pytest.mark.parametrize("k", [0, 3, 8])
def test_epo_loss_is_vanilla_minus_lambda_times_entropy_term(trees, tmp_path, k):
    vanilla = run_step(trees["pristine"], tmp_path, "vanilla")
    history = HISTORY[:k] if k else None
    epo = run_step(trees["patched"], tmp_path, f"epo-{k}", epo={**EPO, "edge_tokens": 2}, history=history,
                   first_step=k)
    mask = epo["action_mask"]
    h = _entropies(epo["logits"])
    l_h = _eq4(h, mask)
    if history:
        hbar = sum(r["mean"] for r in history) / len(history)
        penalty = EPO["smooth_coef"] * (torch.relu(EPO["kappa_l"] * hbar - h) + torch.relu(h - EPO["kappa_r"] * hbar))
        l_smooth = _eq4(penalty, mask)
        assert l_smooth > 0  # the band is narrow enough that tokens fall outside it
    else:
        hbar, l_smooth = None, 0.0  # k = 0: empty window
    beta = _beta(k, 10)
    end = epo["steps"][0]["end"]
    assert end["epo/entropy_loss"] == pytest.approx(l_h, rel=1e-5)
    assert end["epo/smooth_loss"] == pytest.approx(l_smooth, rel=1e-5, abs=1e-9)
    expected = vanilla["losses"][0] - EPO["coef"] * (l_h - beta * l_smooth)
    assert epo["losses"][0] == pytest.approx(expected, rel=1e-6, abs=1e-7)
    assert end["epo/beta"] == pytest.approx(beta)
    assert end["epo/k"] == k
    if hbar is not None:
        assert end["epo/hbar"] == pytest.approx(hbar)
    # the step's batch mean appended to W: token-level mean entropy over all trajectories
    assert end["epo/batch_entropy"] == pytest.approx(h[mask].mean().item(), rel=1e-5)
    # figure 7d: the first / last 2 response tokens of every turn (one turn per sample here), over the batch
    first, last = [], []
    for row in range(len(SAMPLES)):
        tokens = [h[row, i].item() for i in range(RESPONSE) if mask[row, i]]
        first += tokens[:2]
        last += tokens[-2:]
    assert end["epo/entropy_first_tokens"] == pytest.approx(sum(first) / len(first), rel=1e-5)
    assert end["epo/entropy_last_tokens"] == pytest.approx(sum(last) / len(last), rel=1e-5)


def _logged_terms(result):
    """L_H and L_smooth of the whole batch by hand (eq. 4 / 6), from the step's logits: what epo_end_step must log."""
    mask, h = result["action_mask"], _entropies(result["logits"])
    hbar = sum(r["mean"] for r in HISTORY) / len(HISTORY)
    penalty = EPO["smooth_coef"] * (torch.relu(EPO["kappa_l"] * hbar - h) + torch.relu(h - EPO["kappa_r"] * hbar))
    band = ((h < EPO["kappa_l"] * hbar) | (h > EPO["kappa_r"] * hbar)) & mask.bool()
    return _eq4(h, mask), _eq4(penalty, mask), band.sum().item() / mask.sum().item()


def test_micro_batches_and_two_ranks_give_the_full_batch_gradient(trees, tmp_path):
    full = run_step(trees["patched"], tmp_path, "full", epo=EPO, history=HISTORY, first_step=3)
    l_h, l_smooth, out_share = _logged_terms(full)
    assert l_smooth > 0 and out_share > 0
    splits = {
        "micro1": dict(micro_batch=1, gas=8),
        "micro2": dict(micro_batch=2, gas=4),
        "micro4": dict(micro_batch=4, gas=2),
    }
    for name, split in splits.items():
        part = run_step(trees["patched"], tmp_path, name, epo=EPO, history=HISTORY, first_step=3, **split)
        for key, grad in full["grads"].items():
            torch.testing.assert_close(part["grads"][key], grad, rtol=1e-5, atol=1e-7, msg=f"{name}: {key}")
        end = part["steps"][0]["end"]  # the logged terms are the batch's, not an average of micro-batch values
        assert end["epo/entropy_loss"] == pytest.approx(l_h, rel=1e-5), name
        assert end["epo/smooth_loss"] == pytest.approx(l_smooth, rel=1e-5), name
        assert end["epo/out_of_band_share"] == pytest.approx(out_share), name
    # two data-parallel ranks (gloo), two micro-batches of two samples each per rank, turns of one trajectory split
    # across ranks: the window's trajectory count is all-reduced
    dp = run_step(trees["patched"], tmp_path, "dp2", world=2, epo=EPO, history=HISTORY, first_step=3,
                  micro_batch=2, gas=2, interleave=True)
    for key, grad in full["grads"].items():
        torch.testing.assert_close(dp["grads"][key], grad, rtol=1e-5, atol=1e-7, msg=f"dp2: {key}")
    assert dp["steps"][0]["end"]["epo/batch_entropy"] == pytest.approx(full["steps"][0]["end"]["epo/batch_entropy"])
    end = dp["steps"][0]["end"]  # two ranks, two micro-batches each: the same batch values
    assert end["epo/entropy_loss"] == pytest.approx(l_h, rel=1e-5)
    assert end["epo/smooth_loss"] == pytest.approx(l_smooth, rel=1e-5)
    assert end["epo/out_of_band_share"] == pytest.approx(out_share)


def test_resumed_run_continues_hbar_beta_and_loss(trees, tmp_path):
    common = dict(epo={**EPO, "history": "per_turn"}, lr=0.5, K=6)
    straight = run_step(trees["patched"], tmp_path, "straight", steps=4, **common)
    ckpt = tmp_path / "ckpt.pt"
    run_step(trees["patched"], tmp_path, "first-half", steps=2, save_to=str(ckpt), **common)
    resumed = run_step(trees["patched"], tmp_path, "resumed", steps=2, first_step=2, load_from=str(ckpt), **common)
    for mine, theirs in zip(resumed["steps"], straight["steps"][2:]):
        assert mine["step"] == theirs["step"]
        for key in ("epo/hbar", "epo/beta", "epo/k", "epo/history_len", "epo/batch_entropy"):
            assert mine["end"][key] == pytest.approx(theirs["end"][key], rel=1e-6), key
        assert mine["losses"] == pytest.approx(theirs["losses"], rel=1e-6)
    assert straight["steps"][3]["end"]["epo/history_len"] == 4
    assert straight["steps"][2]["end"]["epo/hbar"] != straight["steps"][1]["end"]["epo/hbar"]  # W_k moves


# ---- the paper's ablations and baselines, each through the real training step against a hand computation ----------
K_ABLATION, K_STEP = 10, 3  # the step k of K the ablations train at (history HISTORY: three past steps)


def _hbar_per_sample(records, window=0):
    """Hbar for each sample: per-turn history, the mean over the visible records that saw the sample's turn index,
    the global mean (over the visible records) for a turn none of them saw."""
    visible = records[-window:] if window else records
    overall = sum(r["mean"] for r in visible) / len(visible)
    out = []
    for _, turn, _, _ in SAMPLES:
        seen = [r["turns"][str(turn)] for r in visible if str(turn) in r["turns"]]
        out.append(sum(seen) / len(seen) if seen else overall)
    return out


def _check_against_hand(trees, tmp_path, name, epo, hand, **spec):
    """The patched step with `epo` = the pristine step + the hand-written EPO term: loss and every gradient."""
    vanilla = run_step(trees["pristine"], tmp_path, f"{name}-vanilla", hand_term=hand, **spec)
    patched = run_step(trees["patched"], tmp_path, name, epo=epo, **spec)
    term = vanilla["hand_term"]
    assert patched["losses"][0] == pytest.approx(vanilla["losses"][0] + term["value"], rel=1e-6, abs=1e-7)
    for key, grad in vanilla["grads"].items():
        torch.testing.assert_close(patched["grads"][key], grad + term["grads"][key], rtol=1e-4, atol=1e-7,
                                   msg=f"{name}: {key}")
    assert any(g.abs().sum() > 0 for g in term["grads"].values()) or hand["smoothing"] == "mask"
    return patched


HAND = dict(aggregation="trajectory", smoothing="hinge", coef=EPO["coef"], alpha=EPO["smooth_coef"],
            kappa_l=EPO["kappa_l"], kappa_r=EPO["kappa_r"])
GLOBAL_HBAR = [sum(r["mean"] for r in HISTORY) / len(HISTORY)] * len(SAMPLES)


@pytest.mark.parametrize("name, epo, hand", [
    # upstream's entropy bonus form: one token mean over the batch (eq. 4's weights replaced)
    ("token_mean", {**EPO, "aggregation": "token_mean"},
     {**HAND, "aggregation": "token_mean", "beta": _beta(K_STEP, K_ABLATION), "hbar": GLOBAL_HBAR}),
    # appendix definition 9: a constant penalty outside the band, no gradient through it
    ("mask", {**EPO, "smoothing": "mask"},
     {**HAND, "smoothing": "mask", "beta": _beta(K_STEP, K_ABLATION), "hbar": GLOBAL_HBAR}),
    # EPO-Base: no smoothing term
    ("epo_base", {**EPO, "smoothing": "off"}, {**HAND, "smoothing": "off", "beta": 0.0, "hbar": None}),
    # EPO w/o DW: beta constant
    ("constant_beta", {**EPO, "beta_schedule": "constant", "beta_const": 1.0},
     {**HAND, "beta": 1.0, "hbar": GLOBAL_HBAR}),
    # EPO-Decay (appendix B.4): lambda from 0.01 to 0.0001 over K, geometric, smoothing off
    ("decay", {**EPO, "smoothing": "off", "coef_schedule": "decay", "coef": 0.01, "coef_end": 0.0001},
     {**HAND, "smoothing": "off", "beta": 0.0, "hbar": None,
      "coef": 0.01 * (0.0001 / 0.01) ** (K_STEP / (K_ABLATION - 1))}),
])
def test_ablations_are_the_hand_written_loss(trees, tmp_path, name, epo, hand):
    _check_against_hand(trees, tmp_path, name, epo, hand, history=HISTORY, first_step=K_STEP, K=K_ABLATION)


def test_per_turn_history_with_a_window(trees, tmp_path):
    records = [{"mean": 1.9, "turns": {"0": 1.5, "1": 2.5}}, {"mean": 2.6, "turns": {"0": 2.0, "2": 3.1}},
               {"mean": 2.2, "turns": {"1": 1.7, "2": 2.9}}, {"mean": 2.4, "turns": {"0": 2.2, "1": 2.8}}]
    epo = {**EPO, "history": "per_turn", "history_window": 2}
    hbar = _hbar_per_sample(records, window=2)  # turn 3 (trajectory 2's last) was seen by neither: the global mean
    assert hbar[-1] == pytest.approx((2.2 + 2.4) / 2) and hbar[0] == pytest.approx(2.2)
    patched = _check_against_hand(trees, tmp_path, "per_turn", epo, {**HAND, "beta": _beta(4, K_ABLATION), "hbar": hbar},
                                  history=records, first_step=4, K=K_ABLATION)
    assert patched["steps"][0]["end"]["epo/hbar"] == pytest.approx((2.2 + 2.4) / 2)


def test_ea_is_ppo_on_entropy_shaped_advantages(trees, tmp_path):
    """EA (Cheng et al. 2025): A + min(alpha H, |A| / kappa), H detached; as a pristine run on advantages shaped by
    hand. The batch's advantages and entropies are the harness's (seed 0)."""
    alpha, kappa = 0.4, 2.0
    base = run_step(trees["pristine"], tmp_path, "ea-base")
    h = _entropies(base["logits"])
    mask = base["action_mask"]
    sys.path.insert(0, str(HARNESS.parent))
    from actor_step import build_batch

    advantages = build_batch(0)[3]
    shaped = [[(advantages[r, i] + min(alpha * h[r, i].item(), abs(advantages[r, i].item()) / kappa)).item()
               if mask[r, i] else 0.0 for i in range(RESPONSE)] for r in range(len(SAMPLES))]
    reference = run_step(trees["pristine"], tmp_path, "ea-reference", advantages=shaped)
    ea = run_step(trees["patched"], tmp_path, "ea", epo={"enable": True, "coef": 0.0, "smoothing": "off",
                                                        "ea_alpha": alpha, "ea_kappa": kappa})
    assert ea["losses"][0] == pytest.approx(reference["losses"][0], rel=1e-5, abs=1e-7)
    assert ea["losses"][0] != pytest.approx(base["losses"][0], rel=1e-3)  # the shaping changed the loss
    for key, grad in reference["grads"].items():
        torch.testing.assert_close(ea["grads"][key], grad, rtol=1e-4, atol=1e-7, msg=key)


# ---- eq. 3 for the policy loss: --actor.loss_agg_mode trajectory, EPO off and on ------------------------------------


def _assert_same_step(result, value, grads, name):
    assert result["losses"][0] == pytest.approx(value, rel=1e-6, abs=1e-7), name
    for key, grad in grads.items():
        torch.testing.assert_close(result["grads"][key], grad, rtol=1e-4, atol=1e-7, msg=f"{name}: {key}")


def test_upstream_aggregations_stay_bitwise_upstream(trees, tmp_path):
    """The patched loss.py takes token weights; without them seq-mean-token-mean is upstream's, bit for bit."""
    vanilla = run_step(trees["pristine"], tmp_path, "seq-vanilla", loss_agg_mode="seq-mean-token-mean")
    patched = run_step(trees["patched"], tmp_path, "seq-patched", loss_agg_mode="seq-mean-token-mean",
                       epo={"enable": False})
    assert patched["losses"] == vanilla["losses"]
    for name, grad in vanilla["grads"].items():
        assert torch.equal(patched["grads"][name], grad), name


def test_trajectory_policy_loss_is_eq3_under_micro_batches_and_two_ranks(trees, tmp_path):
    full = run_step(trees["patched"], tmp_path, "traj-full", loss_agg_mode="trajectory", epo={"enable": False},
                    hand_policy=True)
    hand = full["hand_policy"]
    _assert_same_step(full, hand["value"], hand["grads"], "one micro-batch")
    token_mean = run_step(trees["pristine"], tmp_path, "traj-token-mean")
    assert full["losses"][0] != pytest.approx(token_mean["losses"][0], rel=1e-3)  # the weighting changed the loss
    for name, split in {"micro1": dict(micro_batch=1, gas=8), "micro2": dict(micro_batch=2, gas=4)}.items():
        part = run_step(trees["patched"], tmp_path, f"traj-{name}", loss_agg_mode="trajectory", epo={"enable": False},
                        **split)
        for key, grad in hand["grads"].items():
            torch.testing.assert_close(part["grads"][key], grad, rtol=1e-4, atol=1e-7, msg=f"{name}: {key}")
    # two ranks, turns of one trajectory on both: the window's trajectory count is all-reduced
    dp = run_step(trees["patched"], tmp_path, "traj-dp2", world=2, loss_agg_mode="trajectory", epo={"enable": False},
                  micro_batch=2, gas=2, interleave=True)
    for key, grad in hand["grads"].items():
        torch.testing.assert_close(dp["grads"][key], grad, rtol=1e-4, atol=1e-7, msg=f"dp2: {key}")


def test_trajectory_policy_loss_with_epo_is_both_hand_terms(trees, tmp_path):
    hand = {**HAND, "beta": _beta(K_STEP, K_ABLATION), "hbar": GLOBAL_HBAR}
    both = run_step(trees["patched"], tmp_path, "traj-epo", loss_agg_mode="trajectory", epo=EPO, hand_policy=True,
                    hand_term=hand, history=HISTORY, first_step=K_STEP, K=K_ABLATION)
    policy, term = both["hand_policy"], both["hand_term"]
    _assert_same_step(both, policy["value"] + term["value"],
                      {k: g + term["grads"][k] for k, g in policy["grads"].items()}, "trajectory + EPO")


# ---- W_k: the entropy of the policy that produced the batch -------------------------------------------------------


def test_history_holds_the_entropy_of_the_policy_that_made_the_batch(trees, tmp_path):
    """Four optimizer steps inside one RL step (micro-batches of two, no accumulation, a large learning rate): W_k's
    new entry, the per-turn means and figure 7d's token subsets are the entropies of the weights the batch was made
    with (the experience-making forward), not those of the training forward, which moves after the first window."""
    result = run_step(trees["patched"], tmp_path, "old-entropy", epo={**EPO, "edge_tokens": 2}, history=HISTORY,
                      first_step=3, micro_batch=2, gas=1, lr=20.0, record_entropy=True)
    mask, h = result["action_mask"], _entropies(result["logits"])  # the logits of the weights before training
    end = result["steps"][0]["end"]
    assert end["epo/batch_entropy"] == pytest.approx(h[mask].mean().item(), rel=1e-5)
    for turn in range(4):
        rows = [r for r, (_, t, _, _) in enumerate(SAMPLES) if t == turn]
        assert end[f"epo/entropy_turn_{turn}"] == pytest.approx(h[rows][mask[rows]].mean().item(), rel=1e-5)
    first = [h[r, i].item() for r in range(len(SAMPLES)) for i in [j for j in range(RESPONSE) if mask[r, j]][:2]]
    assert end["epo/entropy_first_tokens"] == pytest.approx(sum(first) / len(first), rel=1e-5)
    seen = result["training_entropy"]  # (entropy sum, tokens) of each micro-batch's training forward
    assert len(seen) == 4
    first_window = h[:2][mask[:2]].sum().item()
    assert seen[0][0] == pytest.approx(first_window, rel=1e-5)  # window 1 trains on the weights it was made with
    training_mean = sum(s for s, _ in seen) / sum(n for _, n in seen)
    print(f"W_k entry {end['epo/batch_entropy']:.6f} (pi_old) vs first-epoch training-forward mean {training_mean:.6f}")
    assert end["epo/train_forward_entropy"] == pytest.approx(training_mean, rel=1e-5)  # logged beside W_k's entry
    # the training forward's policy moved: taking W_k from it would have logged another number
    assert abs(training_mean - end["epo/batch_entropy"]) > 1e-3

"""EPO's entropies with --ds.packing_samples (the GPU launchers pack): the hook's entropy function on a packed row,
laid out and unpacked by upstream's own `unpad_and_slice_tensor` / `gather_and_pad_tensor` (openrlhf.models.
ring_attn_utils, flash-attn's Python padding helpers), as `Actor.forward` runs it, must give the training step the
entropies of the unpacked computation at every action position. The packed forward itself needs flash-attention's
CUDA kernels, so the logits here are a random (B, L, V) tensor packed the way that forward packs its inputs."""
from types import SimpleNamespace as NS

import pytest
import torch

from openrlhf_epo.runtime import flash_attn_stub

flash_attn_stub.install()

from openrlhf.models.ring_attn_utils import gather_and_pad_tensor, unpad_and_slice_tensor  # noqa: E402

from openrlhf_epo.integration.actor_hooks import epo_forward_kwargs  # noqa: E402


def _trainer(packing: bool):
    args = NS(actor=NS(epo=NS(enable=True, entropy_chunk_size=0)))
    return NS(args=args, actor=NS(packing_samples=packing), strategy=NS(ring_attn_group=None))


def _batch(seed=0, rows=4, width=19, actions=7, vocab=50):
    """Left-padded prompts and right-padded responses of different lengths, as OpenRLHF lays out samples."""
    g = torch.Generator().manual_seed(seed)
    attention = torch.zeros(rows, width, dtype=torch.long)
    action_mask = torch.zeros(rows, actions, dtype=torch.bool)
    for r in range(rows):
        pad = int(torch.randint(0, 5, (1,), generator=g))
        response = int(torch.randint(1, actions + 1, (1,), generator=g))
        attention[r, pad : width - actions + response] = 1
        action_mask[r, :response] = True
    logits = torch.randn(rows, width, vocab, generator=g, requires_grad=True)
    return logits, attention, action_mask


def _reference(logits, action_mask):
    """The unpacked entropies, by the definition: -sum p log p of every position, then the training step's slice."""
    p = logits.double().softmax(-1)
    h = -(p * p.log()).sum(-1)
    return h[:, :-1][:, -action_mask.shape[1]:]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_packed_rows_give_the_unpacked_entropies_at_action_positions(seed):
    logits, attention, action_mask = _batch(seed)
    rows, width = attention.shape
    tokens = torch.zeros(rows, width, dtype=torch.long)
    _, _, _, pad_len, indices = unpad_and_slice_tensor(tokens, attention, None)
    packed = logits.reshape(rows * width, -1)[indices].unsqueeze(0)  # what the packed forward's logits look like
    entropy_fn = epo_forward_kwargs(_trainer(True), action_mask, attention)["entropy_fn"]
    entropy = gather_and_pad_tensor(entropy_fn(packed), None, pad_len, indices, rows, width)  # Actor.forward's steps
    seen = entropy[:, :-1][:, -action_mask.shape[1]:]
    want = _reference(logits, action_mask)
    torch.testing.assert_close(seen[action_mask].double(), want[action_mask], rtol=1e-5, atol=1e-6)
    # only action positions are computed; the rest is zero and never read
    computed = (entropy_fn(packed) != 0).sum().item()
    assert computed == action_mask.sum().item() < packed.shape[1]
    # differentiable, with the gradient of the unpacked entropies
    seen[action_mask].sum().backward()
    grad_packed = logits.grad.clone()
    logits.grad = None
    want_float = _reference(logits, action_mask).float()
    want_float[action_mask].sum().backward()
    torch.testing.assert_close(grad_packed, logits.grad, rtol=1e-4, atol=1e-6)


def test_unpacked_rows_keep_the_tail_entropy():
    logits, attention, action_mask = _batch(3)
    entropy_fn = epo_forward_kwargs(_trainer(False), action_mask, attention)["entropy_fn"]
    seen = entropy_fn(logits)[:, :-1][:, -action_mask.shape[1]:]
    torch.testing.assert_close(seen[action_mask].double(), _reference(logits, action_mask)[action_mask], rtol=1e-5,
                               atol=1e-6)

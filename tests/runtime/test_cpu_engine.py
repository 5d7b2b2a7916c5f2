"""The CPU rollout engine (runtime/cpu_engine.py): vLLM's engine surface on transformers, checked against the model
itself (greedy decoding and log-probs recomputed by a plain forward pass) and against a trainer-side gloo broadcast."""
import asyncio
import socket
import threading

import pytest
import torch
from vllm import SamplingParams

from openrlhf_epo.runtime.cpu_engine import CpuLLMEngine
from openrlhf_epo.runtime.offline_models import tiny_qwen2_dir

PROMPTS = ["hello there", "the quick brown fox", "a", "one two three four five six"]


@pytest.fixture(scope="module")
def engine():
    return CpuLLMEngine(str(tiny_qwen2_dir()), seed=0, max_model_len=256)


def _ids(engine, text):
    return engine.tokenizer(text, add_special_tokens=False)["input_ids"]


async def _generate(engine, ids, params):
    out = None
    async for out in engine.generate({"prompt_token_ids": ids}, params, request_id="r"):
        pass
    return out.outputs[0]


def _greedy_by_hand(model, ids, steps):
    """Greedy continuation by repeated full forward passes: no cache, no padding."""
    seq = list(ids)
    with torch.no_grad():
        for _ in range(steps):
            logits = model(torch.tensor([seq])).logits[0, -1]
            seq.append(int(logits.argmax()))
    return seq[len(ids):]


def test_concurrent_requests_are_batched_and_match_single_greedy_decoding(engine):
    params = SamplingParams(temperature=0.0, max_tokens=6)
    before = len(engine.batch_sizes)

    async def all_at_once():
        return await asyncio.gather(*(_generate(engine, _ids(engine, p), params) for p in PROMPTS))

    outputs = asyncio.run(all_at_once())
    assert engine.batch_sizes[before:] == [len(PROMPTS)]  # one left-padded batch
    for prompt, out in zip(PROMPTS, outputs):
        assert out.token_ids == _greedy_by_hand(engine.model, _ids(engine, prompt), 6)
        assert out.finish_reason == "length" and len(out.token_ids) == 6
    assert engine.unfinished == 0


def test_stop_strings_cut_the_output_where_vllm_would(engine):
    ids = _ids(engine, PROMPTS[1])
    free = asyncio.run(_generate(engine, ids, SamplingParams(temperature=0.0, max_tokens=12))).token_ids
    # a stop string that completes at the 5th generated token
    stop = engine.tokenizer.decode(free[3:5])
    first_hit = next(n for n in range(1, 13) if stop in engine.tokenizer.decode(free[:n]))
    params = SamplingParams(temperature=0.0, max_tokens=12, stop=[stop], include_stop_str_in_output=True)
    out = asyncio.run(_generate(engine, ids, params))
    assert out.token_ids == free[:first_hit] and out.finish_reason == "stop"
    assert out.text.endswith(stop)


def test_logprobs_are_the_model_raw_log_softmax(engine):
    ids = _ids(engine, PROMPTS[0])
    out = asyncio.run(_generate(engine, ids, SamplingParams(temperature=1.0, max_tokens=5, logprobs=1)))
    with torch.no_grad():
        logits = engine.model(torch.tensor([ids + out.token_ids])).logits[0]
    by_hand = torch.log_softmax(logits[len(ids) - 1:-1].double(), -1)
    for i, (token, entry) in enumerate(zip(out.token_ids, out.logprobs)):
        assert list(entry) == [token]
        assert entry[token].logprob == pytest.approx(float(by_hand[i, token]), abs=1e-4)


def test_weights_arrive_over_gloo_from_a_trainer(engine):
    from openrlhf_epo.runtime.gloo_group import GlooBroadcastGroup

    with socket.socket() as s:
        s.bind(("", 0))
        port = s.getsockname()[1]
    name = "model.layers.0.mlp.down_proj.weight"
    sent = torch.randn_like(engine._params[name]).to(torch.bfloat16)  # DeepSpeed trains in bf16

    def trainer():
        group = GlooBroadcastGroup("127.0.0.1", port, 0, 2)
        group.broadcast(sent, src=0)

    async def engine_side():
        await engine.collective_rpc("init_process_group", args=("127.0.0.1", port, 1, 2, "openrlhf", "gloo", False))
        await engine.collective_rpc("update_weight", args=(name, torch.bfloat16, tuple(sent.shape)))

    thread = threading.Thread(target=trainer)
    thread.start()
    asyncio.run(engine_side())
    thread.join()
    assert torch.equal(engine._params[name], sent.float())
    with pytest.raises(ValueError, match="syncs weights over gloo, got backend='nccl'"):
        asyncio.run(engine.collective_rpc("init_process_group", args=("127.0.0.1", port, 1, 2, "g", "nccl", False)))
    with pytest.raises(ValueError, match="no 'update_weight_cuda_ipc' .*without CUDA IPC"):
        asyncio.run(engine.collective_rpc("update_weight_cuda_ipc", args=()))

    async def with_image():
        async for _ in engine.generate({"prompt_token_ids": [1, 2], "multi_modal_data": {"image": object()}},
                                       SamplingParams(max_tokens=1)):
            pass

    with pytest.raises(ValueError, match="text prompts only"):
        asyncio.run(with_image())


def test_sleeping_parts_refuse_work_until_woken(engine):
    ids = _ids(engine, PROMPTS[2])
    params = SamplingParams(temperature=0.0, max_tokens=2)

    async def cycle():
        await engine.sleep(level=1)
        assert await engine.is_sleeping()
        with pytest.raises(RuntimeError, match="asleep .*wake_up first"):
            await _generate(engine, ids, params)
        await engine.wake_up(tags=["weights"])
        with pytest.raises(RuntimeError, match="kv_cache"):
            await _generate(engine, ids, params)
        await engine.wake_up(tags=["kv_cache"])
        return await _generate(engine, ids, params)

    assert len(asyncio.run(cycle()).token_ids) == 2
    assert engine.output_processor.get_num_unfinished_requests() == 0

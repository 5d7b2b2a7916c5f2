"""The CPU rollout engine: what OpenRLHF's rollout actor asks of `vllm.AsyncLLMEngine`, on transformers' generation.

Upstream's `RolloutRayActor` (trainer/ray/vllm_engine.py) wraps a vLLM engine and calls only a small surface of it:
`generate(prompt, sampling_params, request_id)` (an async generator of request outputs), `collective_rpc` for the
weight sync (`init_process_group`, `update_weight`), `sleep` / `wake_up` / `is_sleeping`, `reset_prefix_cache`,
`pause_generation` / `resume_generation`, and `output_processor.get_num_unfinished_requests()`. Patch 0005 puts this
class in vLLM's place when the CPU runtime is on (runtime/device.py); the rollout actor, the agent executor, the
samples generator and the trainer's weight broadcast stay upstream's code.

- Batching: concurrent requests wait a few milliseconds, then the pending ones with the same sampling settings run
  as one left-padded `model.generate` batch in a worker thread (the event loop keeps accepting requests and the
  environments keep stepping). Each row stops at EOS, at one of its stop strings (kept in the output, as vLLM does
  with include_stop_str_in_output) or at its own max_tokens, and reports vLLM's finish reasons ("stop" / "length").
- Log-probs: when asked for, the log-softmax of the model's raw logits at each sampled token (vLLM's default
  "raw_logprobs"), in vLLM's shape: one {token_id: Logprob} dict per token.
- Weights: the trainer's rank 0 broadcasts every parameter over a gloo group (runtime/gloo_group.py); the engine
  copies it into its model by name (a bf16 trainer feeding an fp32 engine is cast on copy).
- Sleep: the engine tracks which parts sleep ("weights", "kv_cache") and refuses to generate or take weights while
  the part it needs sleeps, so a missing wake_up fails loudly here as it would on a GPU.
"""
import asyncio
import threading
from types import SimpleNamespace as NS
from typing import Dict, List, Optional, Sequence

import torch

from openrlhf_epo.runtime.gloo_group import GlooBroadcastGroup

BATCH_WINDOW_S = 0.005  # how long the first request of a batch waits for its neighbours


class _Request:
    def __init__(self, token_ids: List[int], params, future: asyncio.Future):
        self.token_ids, self.params, self.future = token_ids, params, future

    def batch_key(self):
        p = self.params
        top_k = getattr(p, "top_k", -1)
        return (float(getattr(p, "temperature", 1.0)), float(getattr(p, "top_p", 1.0)),
                None if top_k in (None, -1, 0) else int(top_k), int(getattr(p, "min_tokens", 0) or 0))


class _StopRows:
    """A per-row stopping criterion: EOS, a stop string in the row's new text, or the row's own token budget."""

    def __init__(self, tokenizer, prompt_len: int, stops: Sequence[Sequence[str]], budgets: Sequence[int],
                 eos_ids: Sequence[int]):
        self.tokenizer, self.prompt_len, self.stops, self.budgets = tokenizer, prompt_len, stops, budgets
        self.eos_ids = set(eos_ids)
        self.tail = max((len(s) for row in stops for s in row), default=0) + 16  # characters; decode a few tokens

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool)
        new = input_ids[:, self.prompt_len:]
        for row in range(input_ids.shape[0]):
            generated = new[row]
            if generated.numel() >= self.budgets[row] or (generated.numel() and int(generated[-1]) in self.eos_ids):
                done[row] = True
            elif self.stops[row]:
                # decoding the last few tokens is enough to see a stop string complete (and cheap)
                text = self.tokenizer.decode(generated[-max(8, self.tail // 2):])
                done[row] = any(s in text for s in self.stops[row])
        return done


class CpuLLMEngine:
    def __init__(self, model: str, seed: int = 0, max_model_len: Optional[int] = None, max_batch: int = 32,
                 **unused_vllm_args):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_path = model
        self.tokenizer = AutoTokenizer.from_pretrained(model, trust_remote_code=True)
        # fp32: bf16 matmuls are slow on CPUs without bf16 units; the trainer's bf16 weights are cast on update
        self.model = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32, attn_implementation="sdpa")
        self.model.eval()
        self.max_model_len = max_model_len or getattr(self.model.config, "max_position_embeddings", 4096)
        self.max_batch = max_batch
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.tokenizer.eos_token_id
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = [eos] if isinstance(eos, int) else list(eos or [self.tokenizer.eos_token_id])
        torch.manual_seed(seed)  # vLLM seeds each engine with seed + its index
        self._params = dict(self.model.named_parameters())
        self._pending: List[_Request] = []
        self._wake: Optional[asyncio.Event] = None
        self._server: Optional[asyncio.Task] = None
        self._resumed: Optional[asyncio.Event] = None
        self._weights_lock = threading.Lock()  # generation and weight copies never overlap
        self._asleep = set()
        self._group: Optional[GlooBroadcastGroup] = None
        self.unfinished = 0
        self.batch_sizes: List[int] = []  # of every generate batch run (for tests and logs)
        self.output_processor = NS(get_num_unfinished_requests=lambda: self.unfinished)

    # -- generation --------------------------------------------------------------------------------------------------
    async def generate(self, prompt, sampling_params, request_id=None, **unused):
        if self._asleep:
            raise RuntimeError(f"the CPU rollout engine is asleep ({', '.join(sorted(self._asleep))}): wake_up first")
        if prompt.get("multi_modal_data"):
            raise ValueError("the CPU rollout engine generates from text prompts only: multi_modal_data (VLM "
                             "training) needs vLLM on a GPU (--runtime.device cuda)")
        self._start()
        future = asyncio.get_running_loop().create_future()
        self._pending.append(_Request(list(prompt["prompt_token_ids"]), sampling_params, future))
        self.unfinished += 1
        self._wake.set()
        try:
            output = await future
        finally:
            self.unfinished -= 1
        yield output

    def _start(self):
        if self._server is None or self._server.done():
            self._wake, self._resumed = asyncio.Event(), asyncio.Event()
            self._resumed.set()
            self._server = asyncio.get_running_loop().create_task(self._serve())

    async def _serve(self):
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(BATCH_WINDOW_S)
            while self._pending:
                await self._resumed.wait()
                key = self._pending[0].batch_key()
                batch = [r for r in self._pending if r.batch_key() == key][: self.max_batch]
                self._pending = [r for r in self._pending if r not in batch]
                try:
                    outputs = await asyncio.to_thread(self._generate_batch, batch)
                except BaseException as exc:  # noqa: BLE001 - handed to every waiting request
                    for r in batch:
                        if not r.future.done():
                            r.future.set_exception(exc)
                    continue
                for r, out in zip(batch, outputs):
                    if not r.future.done():
                        r.future.set_result(out)

    def _budget(self, request: _Request) -> int:
        room = self.max_model_len - len(request.token_ids)
        if room < 1:
            raise ValueError(f"a prompt of {len(request.token_ids)} tokens leaves no room in max_model_len="
                             f"{self.max_model_len}")
        wanted = request.params.max_tokens
        return room if wanted is None else min(int(wanted), room)

    @torch.no_grad()
    def _generate_batch(self, batch: List[_Request]):
        budgets = [self._budget(r) for r in batch]
        width = max(len(r.token_ids) for r in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, r in enumerate(batch):  # left padding: every row's next token sits at the same position
            ids[row, width - len(r.token_ids):] = torch.tensor(r.token_ids)
            mask[row, width - len(r.token_ids):] = 1
        temperature, top_p, top_k, min_tokens = batch[0].batch_key()
        stops = [list(getattr(r.params, "stop", None) or []) for r in batch]
        from transformers import GenerationConfig, StoppingCriteriaList

        # A config of its own: the model's generation_config may carry defaults (top_k=50, repetition penalties)
        # that vLLM would not apply. top_k=0 and top_p=1 disable those filters, as vLLM's -1 and 1 do.
        config = GenerationConfig(
            do_sample=temperature > 0, temperature=temperature if temperature > 0 else None,
            top_p=top_p if temperature > 0 else None, top_k=(top_k or 0) if temperature > 0 else None,
            max_new_tokens=max(budgets), min_new_tokens=min_tokens or None, pad_token_id=self.pad_id,
            eos_token_id=self.eos_ids, return_dict_in_generate=True, output_logits=True,
        )
        stopping = StoppingCriteriaList([_StopRows(self.tokenizer, width, stops, budgets, self.eos_ids)])
        with self._weights_lock:
            out = self.model.generate(input_ids=ids, attention_mask=mask, generation_config=config,
                                      stopping_criteria=stopping)
        self.batch_sizes.append(len(batch))
        new = out.sequences[:, width:]
        logits = torch.stack(out.logits, dim=1) if out.logits else None  # (batch, steps, vocab), raw
        return [self._row_output(r, new[row], logits[row] if logits is not None else None, budgets[row], stops[row])
                for row, r in enumerate(batch)]

    def _row_output(self, request: _Request, generated: torch.Tensor, logits, budget: int, stops: List[str]):
        tokens = generated.tolist()[:budget]
        finish = "length"
        for n in range(1, len(tokens) + 1):  # the shortest prefix that ends at EOS or completes a stop string
            if tokens[n - 1] in self.eos_ids:
                tokens, finish = tokens[:n], "stop"
                break
            if stops and any(s in self.tokenizer.decode(tokens[max(0, n - 12):n]) for s in stops):
                text = self.tokenizer.decode(tokens[:n])
                if any(s in text for s in stops):
                    tokens, finish = tokens[:n], "stop"
                    break
        params = request.params
        text = self.tokenizer.decode(tokens, skip_special_tokens=bool(getattr(params, "skip_special_tokens", True)))
        logprobs = None
        if getattr(params, "logprobs", None) is not None and logits is not None:
            chosen = torch.log_softmax(logits[: len(tokens)].float(), dim=-1)
            logprobs = [{t: NS(logprob=float(chosen[i, t]), rank=None, decoded_token=None)}
                        for i, t in enumerate(tokens)]
        return NS(request_id=None, prompt_token_ids=request.token_ids, finished=True,
                  outputs=[NS(index=0, token_ids=tokens, text=text, finish_reason=finish, logprobs=logprobs)])

    # -- what the rollout actor calls besides generate ---------------------------------------------------------------
    async def collective_rpc(self, method: str, args=(), kwargs=None):
        handlers = {"init_process_group": self._init_process_group, "update_weight": self._update_weight}
        if method not in handlers:
            raise ValueError(
                f"the CPU rollout engine has no {method!r} (accepted: {', '.join(handlers)}): it syncs weights by broadcast over gloo "
                "(--vllm.sync_backend gloo), without CUDA IPC"
            )
        return [await asyncio.to_thread(handlers[method], *args, **(kwargs or {}))]

    def _init_process_group(self, master_address, master_port, rank_offset, world_size, group_name, backend="gloo",
                            use_ray=False):
        if use_ray or backend != "gloo":
            raise ValueError(f"the CPU rollout engine syncs weights over gloo, got backend={backend!r} "
                             f"use_ray={use_ray}: pass --vllm.sync_backend gloo without --vllm.sync_with_ray")
        self._group = GlooBroadcastGroup(master_address, int(master_port), int(rank_offset), int(world_size))

    def _update_weight(self, name: str, dtype, shape, empty_cache: bool = False):
        if self._group is None:
            raise RuntimeError("update_weight before init_process_group")
        if "weights" in self._asleep:
            raise RuntimeError("update_weight while the engine's weights sleep: wake_up(tags=['weights']) first")
        incoming = torch.empty(tuple(shape), dtype=dtype)
        self._group.broadcast(incoming, src=0)
        target = self._params.get(name)
        if target is None:
            raise KeyError(f"the trainer sent {name!r}, which the engine's model {self.model_path} does not have")
        if tuple(target.shape) != tuple(incoming.shape):
            raise ValueError(f"{name}: the trainer sent shape {tuple(incoming.shape)}, the engine holds "
                             f"{tuple(target.shape)}")
        with self._weights_lock, torch.no_grad():
            target.copy_(incoming.to(target.dtype))

    async def sleep(self, level: int = 1):
        self._asleep = {"weights", "kv_cache"}

    async def wake_up(self, tags: Optional[List[str]] = None):
        self._asleep -= set(tags or ["weights", "kv_cache"])

    async def is_sleeping(self) -> bool:
        return bool(self._asleep)

    async def reset_prefix_cache(self):
        return True  # no prefix cache to reset

    async def pause_generation(self, mode: str = "keep", **unused):
        self._start()
        self._resumed.clear()

    async def resume_generation(self):
        self._start()
        self._resumed.set()

    def parameters_by_name(self) -> Dict[str, torch.Tensor]:
        return {n: p.detach().clone() for n, p in self._params.items()}

"""Issue-13 step ``prompt-tuning-gpt2`` of ``make_fixtures.py``: GPT-2 prompt tuning as PEFT 0.21.2.

AdapterHub ``adapters`` 1.3.0 has no GPT-2 prompt tuning (``GPT2ModelAdaptersMixin.support_prompt_tuning
= False``), so the reference is PEFT's ``PromptTuningConfig(task_type="CAUSAL_LM")``
(``PeftModelForCausalLM``): the prompt ``[num_virtual_tokens, n_embd]`` is concatenated IN FRONT of the
token embeddings (``wte(input_ids)``), the attention mask gets ``num_virtual_tokens`` ones in front,
and GPT-2 then adds its position embeddings to the whole sequence (PEFT drops ``position_ids``;
positions are ``0..p+s``, the prompt takes ``0..p``). The logits cover the prompt too:
``[batch, p + seq, vocab]``. With labels, PEFT prepends ``-100`` for the prompt, so the last prompt
position predicts the first token. In ``generate`` the prompt goes in once (the prefill step); later
steps feed one token and reuse the cache (whose length counts the prompt).

Written to ``fixtures/tiny-gpt2/prompt/prompt.json`` (tiny GPT-2, eager, eval mode):

- ``prompt_embedding`` ``[4, 16]``: PEFT's ``RANDOM`` init (``nn.Embedding``, N(0, 1)) after
  ``torch.manual_seed(500)``;
- ``logits`` ``[2, 4 + 6, 97]`` on the right-padded inputs of ``tiny-gpt2/golden.json``;
- ``left_input_ids`` / ``left_attention_mask`` ``[2, 6]`` (row 1 left-padded with 96) and ``left_logits``;
- ``greedy_prompt`` / ``greedy_output``: ``model.generate`` (KV cache, greedy, 8 new tokens), equal to
  ``generate(use_cache=False)``.
"""

from __future__ import annotations

import json
import shutil

import torch

import peft
from peft import PromptTuningConfig, get_peft_model

import make_fixtures as mf

PROMPT_LENGTH = 4
SEED = 500


def tensor(entry: dict) -> torch.Tensor:
    return torch.tensor(entry["data"], dtype=torch.float32).view(entry["shape"])


def golden() -> dict:
    return json.loads((mf.FIX / "tiny-gpt2" / "golden.json").read_text())


def inputs() -> dict:
    g = golden()
    return {k: tensor(g[k]).long() for k in ("input_ids", "attention_mask")}


def left_padded(x: dict, pad: int = 96) -> dict:
    """The same rows, padding moved to the left."""
    ids, mask = [], []
    for row, m in zip(x["input_ids"].tolist(), x["attention_mask"].tolist()):
        real = [t for t, k in zip(row, m) if k == 1]
        n = len(row) - len(real)
        ids.append([pad] * n + real)
        mask.append([0] * n + [1] * len(real))
    return {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask)}


def base():
    from transformers import GPT2LMHeadModel

    return GPT2LMHeadModel.from_pretrained(mf.FIX / "tiny-gpt2", attn_implementation="eager").eval()


def prompt_model():
    """The tiny GPT-2 under PEFT prompt tuning with PEFT's random init (seeded)."""
    torch.manual_seed(SEED)
    config = PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=PROMPT_LENGTH)
    model = get_peft_model(base(), config)
    return model


def prompt_embedding(model) -> torch.Tensor:
    emb = [p for k, p in model.named_parameters() if k.endswith("prompt_encoder.default.embedding.weight")]
    assert len(emb) == 1, [k for k, _ in model.named_parameters() if "prompt" in k]
    return emb[0]


@torch.no_grad()
def make_prompt_tuning_gpt2(manifest: dict) -> None:
    if peft.__version__ != "0.21.2":
        print(f"WARNING: peft {peft.__version__} != pinned 0.21.2")
    root = mf.FIX / "tiny-gpt2" / "prompt"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    x = inputs()
    left = left_padded(x)
    plain = base()(**x).logits
    model = prompt_model().eval()
    y = model(**x).logits
    b, s = x["input_ids"].shape
    assert y.shape == (b, PROMPT_LENGTH + s, plain.shape[-1]), y.shape
    change = (y[:, PROMPT_LENGTH:] - plain).abs().max().item()
    assert change > 1e-3, f"the prompt changes nothing ({change})"
    yl = model(**left).logits
    g = golden()
    prompt = tensor(g["greedy_prompt"]).long()
    kw = dict(attention_mask=torch.ones_like(prompt), max_new_tokens=8, do_sample=False, pad_token_id=96)
    gen = model.generate(input_ids=prompt, **kw)
    gen_nocache = model.generate(input_ids=prompt, use_cache=False, **kw)
    assert torch.equal(gen, gen_nocache), f"cached {gen} vs uncached {gen_nocache}"
    # and a plain argmax loop over full forwards
    seq = prompt.clone()
    for _ in range(8):
        nxt = model(input_ids=seq).logits[0, -1].argmax().view(1, 1)
        seq = torch.cat([seq, nxt], dim=1)
    assert torch.equal(seq, gen), f"argmax loop {seq} vs generate {gen}"
    mf.write_json(root / "prompt.json", {
        "prompt_embedding": mf.tensor_entry(prompt_embedding(model)),
        "logits": mf.tensor_entry(y),
        "left_input_ids": mf.tensor_entry(left["input_ids"]),
        "left_attention_mask": mf.tensor_entry(left["attention_mask"]),
        "left_logits": mf.tensor_entry(yl),
        "greedy_prompt": mf.tensor_entry(prompt),
        "greedy_output": mf.tensor_entry(gen),
        "config": {"num_virtual_tokens": PROMPT_LENGTH},
        "notes": (
            f"peft {peft.__version__} PromptTuningConfig(task_type=CAUSAL_LM, num_virtual_tokens={PROMPT_LENGTH}) "
            f"on the tiny-gpt2 base (eager), PEFT's RANDOM init after torch.manual_seed({SEED}); eval mode. logits "
            "[batch, prompt + seq, vocab] on golden.json's right-padded inputs, left_logits on the same rows "
            "left-padded; positions 0..prompt+seq for every row; greedy_output = generate (cache) == "
            "generate(use_cache=False) == an argmax loop, 8 new tokens."
        ),
    })
    manifest["prompt_tuning_gpt2"] = {"max_abs_change_vs_base": change}
    print("prompt-tuning-gpt2: wrote fixtures/tiny-gpt2/prompt")

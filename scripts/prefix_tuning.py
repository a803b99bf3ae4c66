"""Issue-13 step ``prefix-tuning`` of ``make_fixtures.py``: AdapterHub ``adapters`` 1.3.0 prefix and prompt tuning.

The tiny BERT (``BertModel``) and tiny GPT-2 (``GPT2LMHeadModel``), eager attention, get a
``PrefixTuningConfig`` adapter (re-parameterised, ``flat: false``) with AdapterHub's own random
init (embedding ``N(0, 1)``, both MLP layers PyTorch's default, biases non-zero), activated, in eval
mode. Written to ``fixtures/<model>/prefix/<case>.json``:

- ``wte`` ``[prefix_length, d]``, ``down_w`` ``[bottleneck, d]``, ``down_b``, ``up_w``
  ``[n_layers*2*d, bottleneck]``, ``up_b`` (PyTorch ``[out, in]`` layout): the adapter's weights;
- the output (BERT ``last_hidden_state``, GPT-2 ``logits``) on the inputs of ``<model>/golden.json``
  (padding in the batch);
- ``flat`` ``[prefix_length, n_layers*2*d]`` and ``ejected_<output>`` after
  ``model.eject_prefix_tuning`` (must equal the output within 1e-5);
- GPT-2 only: ``greedy_output``, ``model.generate`` (KV cache) of ``greedy_prompt`` with the prefix.

Prompt tuning (``PromptTuningConfig``, BERT only: AdapterHub 1.3.0 has no GPT-2 prompt tuning),
``fixtures/tiny-bert/prompt/<case>.json``: ``prompt_embedding`` ``[prompt_length, d]`` (AdapterHub's
``random_uniform`` init), ``last_hidden_state`` ``[batch, prompt_length + seq, d]`` and
``pooler_output`` (the pooler reads position 0, a prompt token with ``combine: prefix``, the
``[CLS]`` token with ``prefix_after_bos``).
"""

from __future__ import annotations

import json
import shutil

import torch

import adapters
from adapters import PrefixTuningConfig, PromptTuningConfig

import make_fixtures as mf

CASES = {
    # model dir: {case: PrefixTuningConfig kwargs}
    "tiny-bert": {
        "prefix": dict(prefix_length=5, bottleneck_size=16),
        "leave_out": dict(prefix_length=3, bottleneck_size=8, leave_out=[0]),
    },
    "tiny-gpt2": {
        "prefix": dict(prefix_length=4, bottleneck_size=16),
    },
}

PROMPT_CASES = {
    "prompt": dict(prompt_length=4),
    "after_bos": dict(prompt_length=3, combine="prefix_after_bos"),
}


def tensor(entry: dict) -> torch.Tensor:
    return torch.tensor(entry["data"], dtype=torch.float32).view(entry["shape"])


def inputs(model_dir: str) -> dict:
    g = json.loads((mf.FIX / model_dir / "golden.json").read_text())
    keys = ("input_ids", "token_type_ids", "attention_mask") if model_dir == "tiny-bert" else ("input_ids", "attention_mask")
    return {k: tensor(g[k]).long() for k in keys}


def base(model_dir: str):
    from transformers import BertModel, GPT2LMHeadModel

    cls = BertModel if model_dir == "tiny-bert" else GPT2LMHeadModel
    return cls.from_pretrained(mf.FIX / model_dir, attn_implementation="eager").eval()


@torch.no_grad()
def out(model, model_dir: str, x: dict) -> torch.Tensor:
    o = model(**x)
    return o.last_hidden_state if model_dir == "tiny-bert" else o.logits


def prefix_params(model, name: str) -> dict:
    found = {}
    for key, p in model.named_parameters():
        if f"prefix_tunings.{name}." not in key:
            continue
        for suffix, ours in (
            ("wte.weight", "wte"),
            ("control_trans.0.weight", "down_w"),
            ("control_trans.0.bias", "down_b"),
            ("control_trans.2.weight", "up_w"),
            ("control_trans.2.bias", "up_b"),
        ):
            if key.endswith(suffix):
                found[ours] = p.detach().clone()
        if key.endswith(".control_trans") and p.dim() == 1:
            found["flat"] = p.detach().clone()
    return found


@torch.no_grad()
def make_prefix_tuning(manifest: dict) -> None:
    if adapters.__version__ != "1.3.0":
        print(f"WARNING: adapters {adapters.__version__} != pinned 1.3.0")
    info = {}
    for model_dir, cases in CASES.items():
        root = mf.FIX / model_dir / "prefix"
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        x = inputs(model_dir)
        key = "last_hidden_state" if model_dir == "tiny-bert" else "logits"
        for i, (case, kwargs) in enumerate(cases.items()):
            model = base(model_dir)
            plain = out(model, model_dir, x)
            adapters.init(model)
            torch.manual_seed(300 + i)
            model.add_adapter("p", config=PrefixTuningConfig(**kwargs))
            model.set_active_adapters("p")
            model.eval()
            y = out(model, model_dir, x)
            change = (y - plain).abs().max().item()
            assert change > 1e-3, f"{model_dir}/{case}: the prefix changes nothing"
            weights = prefix_params(model, "p")
            assert set(weights) == {"wte", "down_w", "down_b", "up_w", "up_b"}, sorted(weights)
            entry = {k: mf.tensor_entry(v) for k, v in weights.items()}
            entry[key] = mf.tensor_entry(y)
            if model_dir == "tiny-gpt2":
                g = json.loads((mf.FIX / model_dir / "golden.json").read_text())
                prompt = tensor(g["greedy_prompt"]).long()
                gen = model.generate(
                    prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=8, do_sample=False, pad_token_id=96
                )
                # the same with a no-cache argmax loop
                seq = prompt.clone()
                for _ in range(8):
                    nxt = model(input_ids=seq).logits[0, -1].argmax().view(1, 1)
                    seq = torch.cat([seq, nxt], dim=1)
                assert torch.equal(seq, gen), f"{model_dir}/{case}: cached vs uncached generation {seq} {gen}"
                entry["greedy_prompt"] = mf.tensor_entry(prompt)
                entry["greedy_output"] = mf.tensor_entry(gen)
            model.eject_prefix_tuning("p")
            model.eval()
            ejected = out(model, model_dir, x)
            mf.close(ejected, y, f"{model_dir}/{case} ejected")
            flat = prefix_params(model, "p")["flat"]
            entry["flat"] = mf.tensor_entry(flat.view(kwargs["prefix_length"], -1))
            entry["ejected_" + key] = mf.tensor_entry(ejected)
            entry["config"] = kwargs
            entry["notes"] = (
                f"adapters {adapters.__version__} PrefixTuningConfig({kwargs}) on the {model_dir} base (eager), "
                f"AdapterHub's random init after torch.manual_seed({300 + i}); {key} in eval mode on the inputs of "
                "golden.json; weights in PyTorch layout; flat / ejected_* after eject_prefix_tuning."
            )
            mf.write_json(root / f"{case}.json", entry)
            info[f"{model_dir}/{case}"] = {"max_abs_change_vs_base": change}
    root = mf.FIX / "tiny-bert" / "prompt"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    x = inputs("tiny-bert")
    for i, (case, kwargs) in enumerate(PROMPT_CASES.items()):
        model = base("tiny-bert")
        plain = model(**x)
        adapters.init(model)
        torch.manual_seed(400 + i)
        model.add_adapter("p", config=PromptTuningConfig(**kwargs))
        model.set_active_adapters("p")
        model.eval()
        o = model(**x)
        p = kwargs["prompt_length"]
        assert o.last_hidden_state.shape[1] == x["input_ids"].shape[1] + p
        change = (o.pooler_output - plain.pooler_output).abs().max().item()
        assert change > 1e-3, f"prompt/{case}: the prompt changes nothing"
        emb = [v for k, v in model.named_parameters() if "prompt_tunings.p." in k and k.endswith("prompt_embedding.weight")]
        assert len(emb) == 1
        mf.write_json(root / f"{case}.json", {
            "prompt_embedding": mf.tensor_entry(emb[0].detach()),
            "last_hidden_state": mf.tensor_entry(o.last_hidden_state),
            "pooler_output": mf.tensor_entry(o.pooler_output),
            "config": kwargs,
            "notes": f"adapters {adapters.__version__} PromptTuningConfig({kwargs}) on the tiny-bert base (eager), "
                     f"AdapterHub's random_uniform init after torch.manual_seed({400 + i}); eval mode, inputs of golden.json.",
        })
        info[f"tiny-bert/prompt/{case}"] = {"max_abs_change_vs_base": change}
    manifest["prefix_tuning"] = info
    print("prefix-tuning: wrote fixtures/tiny-bert/prefix and fixtures/tiny-gpt2/prefix")

"""Issue-13 step ``prefix-grads`` of ``make_fixtures.py``: one backward pass of prefix and prompt tuning.

Every case runs the tiny base with EVERY dropout 0 (hidden/attention/embedding and the adapter's),
in training mode (``model.train()``; for prefix tuning that is the re-parameterisation MLP), on the
padded inputs of ``<model>/golden.json``, computes one loss and calls ``loss.backward()`` once. Each
file holds the adapter's weights (``wte``/``down_w``/``down_b``/``up_w``/``up_b`` for prefix tuning,
``prompt_embedding`` for prompt tuning, PyTorch ``[out, in]`` layout), ``loss`` and ``grad:<weight>``
(the gradient of every trainable tensor, same layout):

- ``tiny-bert/grads/prefix.json``: AdapterHub 1.3.0 ``PrefixTuningConfig(prefix_length=5,
  bottleneck_size=16)``; loss ``sum(last_hidden_state ** 2)``;
- ``tiny-bert/grads/prompt.json``: AdapterHub ``PromptTuningConfig(prompt_length=4)``; loss
  ``sum(last_hidden_state ** 2)`` over prompt + tokens;
- ``tiny-gpt2/grads/prefix.json``: AdapterHub ``PrefixTuningConfig(prefix_length=4,
  bottleneck_size=16)``; loss = transformers' causal-LM cross-entropy (``labels = input_ids``,
  ``-100`` at padding: the mean over real next tokens);
- ``tiny-gpt2/grads/prompt.json``: PEFT 0.21.2 ``PromptTuningConfig(task_type=CAUSAL_LM,
  num_virtual_tokens=4)`` (AdapterHub has no GPT-2 prompt tuning); the same loss, PEFT prepending
  ``-100`` labels for the prompt (so the last prompt position predicts the first token).
"""

from __future__ import annotations

import json
import shutil

import torch

import adapters
import peft
from adapters import PrefixTuningConfig, PromptTuningConfig

import make_fixtures as mf
import prefix_tuning as pt


def tensor(entry: dict) -> torch.Tensor:
    return torch.tensor(entry["data"], dtype=torch.float32).view(entry["shape"])


def base(model_dir: str):
    """The tiny base with every dropout 0, in training mode."""
    from transformers import AutoConfig, BertModel, GPT2LMHeadModel

    config = AutoConfig.from_pretrained(mf.FIX / model_dir)
    if model_dir == "tiny-bert":
        config.hidden_dropout_prob = 0.0
        config.attention_probs_dropout_prob = 0.0
        cls = BertModel
    else:
        config.attn_pdrop = config.resid_pdrop = config.embd_pdrop = 0.0
        cls = GPT2LMHeadModel
    model = cls.from_pretrained(mf.FIX / model_dir, config=config, attn_implementation="eager")
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def labels(x: dict) -> torch.Tensor:
    return x["input_ids"].masked_fill(x["attention_mask"] == 0, -100)


def loss_of(model, model_dir: str, x: dict) -> torch.Tensor:
    if model_dir == "tiny-bert":
        return (model(**x).last_hidden_state ** 2).sum()
    return model(**x, labels=labels(x)).loss


def entry_of(weights: dict, loss: torch.Tensor, notes: str) -> dict:
    entry = {k: mf.tensor_entry(p.detach()) for k, p in weights.items()}
    entry["loss"] = loss.item()
    for k, p in weights.items():
        assert p.grad is not None and p.grad.abs().max().item() > 0, f"{k}: no gradient"
        entry["grad:" + k] = mf.tensor_entry(p.grad)
    entry["notes"] = notes
    return entry


def hub_params(model, name: str, kind: str) -> dict:
    """The adapter's parameters (live tensors, to read their .grad), keyed as in the fixture."""
    found = {}
    for key, p in model.named_parameters():
        if kind == "prefix" and f"prefix_tunings.{name}." in key:
            for suffix, ours in (
                ("wte.weight", "wte"),
                ("control_trans.0.weight", "down_w"),
                ("control_trans.0.bias", "down_b"),
                ("control_trans.2.weight", "up_w"),
                ("control_trans.2.bias", "up_b"),
            ):
                if key.endswith(suffix):
                    found[ours] = p
        if kind == "prompt" and f"prompt_tunings.{name}." in key and key.endswith("prompt_embedding.weight"):
            found["prompt_embedding"] = p
    return found


def make_prefix_grads(manifest: dict) -> None:
    info = {}
    for model_dir in ("tiny-bert", "tiny-gpt2"):
        root = mf.FIX / model_dir / "grads"
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        x = pt.inputs(model_dir)
        what = "sum(last_hidden_state**2)" if model_dir == "tiny-bert" else "causal-LM CE (labels -100 at padding)"
        # prefix tuning (AdapterHub), re-parameterised, training mode
        kwargs = dict(prefix_length=5 if model_dir == "tiny-bert" else 4, bottleneck_size=16, dropout=0.0)
        model = base(model_dir)
        adapters.init(model)
        torch.manual_seed(600)
        model.add_adapter("p", config=PrefixTuningConfig(**kwargs))
        model.train_adapter("p")
        model.train()
        weights = hub_params(model, "p", "prefix")
        assert set(weights) == {"wte", "down_w", "down_b", "up_w", "up_b"}, sorted(weights)
        assert all(p.requires_grad for p in weights.values())
        loss = loss_of(model, model_dir, x)
        loss.backward()
        entry = entry_of(weights, loss, (
            f"adapters {adapters.__version__} PrefixTuningConfig({kwargs}) on the {model_dir} base (every dropout 0, "
            f"eager), AdapterHub's init after torch.manual_seed(600), train_adapter + train(); one backward of "
            f"{what} on golden.json's inputs; grad:<k> = d loss / d <k>, PyTorch layout."
        ))
        entry["config"] = kwargs
        mf.write_json(root / "prefix.json", entry)
        info[f"{model_dir}/prefix"] = {"loss": entry["loss"]}
        # prompt tuning: AdapterHub on BERT, PEFT on GPT-2
        model = base(model_dir)
        if model_dir == "tiny-bert":
            adapters.init(model)
            torch.manual_seed(601)
            model.add_adapter("p", config=PromptTuningConfig(prompt_length=4))
            model.train_adapter("p")
            model.train()
            weights = hub_params(model, "p", "prompt")
            ref = f"adapters {adapters.__version__} PromptTuningConfig(prompt_length=4)"
        else:
            torch.manual_seed(601)
            model = peft.get_peft_model(model, peft.PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4))
            model.train()
            weights = {
                "prompt_embedding": next(
                    p for k, p in model.named_parameters() if k.endswith("prompt_encoder.default.embedding.weight")
                )
            }
            ref = f"peft {peft.__version__} PromptTuningConfig(task_type=CAUSAL_LM, num_virtual_tokens=4)"
        assert len(weights) == 1
        loss = loss_of(model, model_dir, x)
        loss.backward()
        entry = entry_of(weights, loss, (
            f"{ref} on the {model_dir} base (every dropout 0, eager), its random init after torch.manual_seed(601), "
            f"training mode; one backward of {what} on golden.json's inputs (outputs cover prompt + tokens)."
        ))
        entry["config"] = {"prompt_length": 4}
        mf.write_json(root / "prompt.json", entry)
        info[f"{model_dir}/prompt"] = {"loss": entry["loss"]}
    manifest["prefix_grads"] = info
    print("prefix-grads: wrote fixtures/tiny-bert/grads and fixtures/tiny-gpt2/grads")

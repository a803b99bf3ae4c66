"""Step ``hub-methods`` of ``make_fixtures.py`` (issue 13, interop): LoRA, IA³ and prefix-tuning
directories written by AdapterHub's own ``save_adapter`` (adapters 1.3.0) for the tiny BERT
(``BertAdapterModel`` with a classification head per adapter) and the tiny GPT-2
(``GPT2LMHeadModel`` + ``adapters.init``), with NON-ZERO weights (``lora_B`` included) and the
saving model's outputs. Every directory is reloaded with AdapterHub's ``load_adapter`` into a fresh
model and must give identical outputs.

Written to ``fixtures/<model>/hub-methods/<name>-hub/`` and ``golden.json``. Run through
``make_fixtures.py --only hub-methods`` (this module is not a script).
"""

from __future__ import annotations

import copy
import shutil

import torch

import adapters
from adapters import IA3Config, LoRAConfig, PrefixTuningConfig

import hub_dirs as hd
import make_fixtures as mf

# name -> (config, head kwargs or None, use_safetensors). AdapterHub cannot write prefix tuning as
# safetensors (its pool shares tensors with every layer), so prefix dirs are `.bin`.
BERT_DIRS = {
    "lora": (LoRAConfig(r=2, alpha=4, attn_matrices=["q", "k", "v"], intermediate_lora=True, output_lora=True,
                        dropout=0.1, leave_out=[1]),
             {"num_labels": 2, "layers": 2, "activation_function": "tanh", "id2label": {0: "neg", 1: "pos"}}, True),
    "ia3": (IA3Config(alpha=2, output_lora=True),
            {"num_labels": 3, "layers": 1, "activation_function": None, "use_pooler": True,
             "id2label": {0: "x", 1: "y", 2: "z"}}, False),
    "prefix": (PrefixTuningConfig(prefix_length=3, bottleneck_size=8, leave_out=[0]),
               {"num_labels": 2, "layers": 2, "activation_function": "tanh"}, False),
}
GPT2_DIRS = {
    # q and v of the fused c_attn (LoRAMergedLinear: one rank-r LoRA per enabled block)
    "lora": (LoRAConfig(r=2, alpha=4, attn_matrices=["q", "v"]), False),
    # the feed-forward projections (c_fc, mlp.c_proj)
    "lora_mlp": (LoRAConfig(r=3, alpha=6, selfattn_lora=False, intermediate_lora=True, output_lora=True), True),
    "ia3": (IA3Config(), False),  # attn_matrices k, v: two of the three blocks of the fused c_attn
    "prefix": (PrefixTuningConfig(prefix_length=3, bottleneck_size=8), False),
    "flat": (PrefixTuningConfig(prefix_length=2, flat=True), False),
}


@torch.no_grad()
def randomize(model, name: str, seed: int) -> int:
    """Every parameter of adapter `name` := 0.1 * randn (IA³ vectors: 1 + 0.3 * randn), so
    lora_B is far from zero and the IA³ vectors far from one."""
    g = torch.Generator().manual_seed(seed)
    n = 0
    tags = (f".loras.{name}.", f"prefix_tunings.{name}.")
    seen = set()
    for pname, p in sorted(model.named_parameters(remove_duplicate=False), key=lambda kv: kv[0]):
        if not any(t in pname for t in tags) or id(p) in seen:
            continue
        seen.add(id(p))
        ia3 = model.adapters_config.get(name).get("composition_mode") == "scale"
        noise = torch.randn(p.shape, generator=g)
        p.copy_(1.0 + 0.3 * noise if ia3 else 0.1 * noise)
        n += p.numel()
    assert n > 0, name
    return n


@torch.no_grad()
def make_bert(out) -> dict:
    from transformers import BertModel

    base = BertModel.from_pretrained(mf.FIX / "tiny-bert", attn_implementation="eager")
    inp = mf.bert_inputs()
    model = hd.bert_adapter_model(base.state_dict())
    for i, (name, (config, head, _)) in enumerate(BERT_DIRS.items()):
        model.add_adapter(name, config=config)
        randomize(model, name, seed=1300 + i)
        model.add_classification_head(name, **head)
        hd.randomize_head(model, name, seed=1350 + i)
    model.eval()
    rec, files = {}, {}
    for name, (_, head, safe) in BERT_DIRS.items():
        model.set_active_adapters(name)
        model.active_head = name
        rec[f"{name}.logits"] = mf.tensor_entry(model(**inp).logits)
        rec[f"{name}.last_hidden_state"] = mf.tensor_entry(model.bert(**inp).last_hidden_state)
        files[f"{name}-hub"] = hd.copy_saved(
            lambda t: model.save_adapter(t, name, with_head=True, use_safetensors=safe), out / f"{name}-hub")
    files["keys"] = {f"{k}/{f}": hd.file_keys(out / k / f) for k, names in files.items() for f in names
                     if f.endswith((".bin", ".safetensors"))}
    fresh = hd.bert_adapter_model(base.state_dict()).eval()
    for name, (_, head, safe) in BERT_DIRS.items():
        assert fresh.load_adapter(str(out / f"{name}-hub"), use_safetensors=safe) == name
        fresh.set_active_adapters(name)
        fresh.active_head = name
        mf.close(fresh(**inp).logits.flatten(), torch.tensor(rec[f"{name}.logits"]["data"]),
                 f"hub-methods BERT {name}", 0.0)
    for k in ("input_ids", "attention_mask", "token_type_ids"):
        rec[k] = mf.tensor_entry(inp[k])
    rec["files"] = files
    rec["notes"] = (
        "tiny-bert base in adapters.BertAdapterModel (torch.manual_seed(21)); adapters lora "
        "(LoRAConfig r=2 alpha=4 attn q,k,v + intermediate + output, dropout 0.1, leave_out [1]), ia3 (IA3Config "
        "alpha=2 output_lora=True), prefix (PrefixTuningConfig prefix_length 3 bottleneck 8 leave_out [0]), each "
        "with a classification head of its name (lora: 2 labels neg/pos, layers 2 tanh; ia3: 3 labels x/y/z, "
        "layers 1 on the pooler; prefix: 2 labels, layers 2 tanh). Adapter params := 0.1*randn (IA³: 1+0.3*randn), "
        "seed 1300+i; head params := 0.3*randn, seed 1350+i. eval. <name>-hub = save_adapter(dir, name, "
        "with_head=True, use_safetensors=<lora only>). <name>.logits / .last_hidden_state with only that adapter "
        "active (and its head). Each dir reloads with load_adapter to identical logits."
    )
    return rec


@torch.no_grad()
def make_gpt2(out) -> dict:
    from transformers import GPT2LMHeadModel

    base = GPT2LMHeadModel.from_pretrained(mf.FIX / "tiny-gpt2", attn_implementation="eager").eval()
    base.config._name_or_path = ""
    ids = torch.tensor(mf.GPT2_INPUT_IDS, dtype=torch.long)
    mask = torch.tensor(mf.GPT2_MASK, dtype=torch.long)
    model = copy.deepcopy(base)
    adapters.init(model)
    for i, (name, (config, _)) in enumerate(GPT2_DIRS.items()):
        model.add_adapter(name, config=config)
        randomize(model, name, seed=1400 + i)
    model.eval()
    rec, files = {}, {}
    for name, (_, safe) in GPT2_DIRS.items():
        model.set_active_adapters(name)
        rec[f"{name}.logits"] = mf.tensor_entry(model(input_ids=ids, attention_mask=mask).logits)
        files[f"{name}-hub"] = hd.copy_saved(
            lambda t: model.save_adapter(t, name, with_head=False, use_safetensors=safe), out / f"{name}-hub")
    files["keys"] = {f"{k}/{f}": hd.file_keys(out / k / f) for k, names in files.items() for f in names
                     if f.endswith((".bin", ".safetensors"))}
    fresh = copy.deepcopy(base)
    adapters.init(fresh)
    for name, (_, safe) in GPT2_DIRS.items():
        fresh.load_adapter(str(out / f"{name}-hub"), use_safetensors=safe)
        fresh.set_active_adapters(name)
        got = fresh.eval()(input_ids=ids, attention_mask=mask).logits
        mf.close(got.flatten(), torch.tensor(rec[f"{name}.logits"]["data"]), f"hub-methods GPT-2 {name}", 0.0)
    rec["input_ids"] = mf.tensor_entry(ids)
    rec["attention_mask"] = mf.tensor_entry(mask)
    rec["files"] = files
    rec["notes"] = (
        "tiny-gpt2 (GPT2LMHeadModel, adapters.init); adapters lora (LoRAConfig r=2 alpha=4 attn q,v on the fused "
        "c_attn), lora_mlp (LoRAConfig r=3 alpha=6, selfattn_lora=False, intermediate (c_fc) + output (mlp.c_proj)), ia3 (IA3Config: k,v of c_attn + c_fc), prefix "
        "(PrefixTuningConfig prefix_length 3 bottleneck 8), flat (PrefixTuningConfig prefix_length 2 flat=True). "
        "Params := 0.1*randn (IA³: 1+0.3*randn), seed 1400+i; eval. <name>-hub = save_adapter(dir, name, "
        "with_head=False, use_safetensors=<lora_mlp only>); <name>.logits [2,6,97] with only that adapter active."
    )
    return rec


def make_hub_methods(manifest: dict) -> None:
    for model, fn in (("tiny-bert", make_bert), ("tiny-gpt2", make_gpt2)):
        out = mf.FIX / model / "hub-methods"
        shutil.rmtree(out, ignore_errors=True)
        rec = fn(out)
        mf.write_json(out / "golden.json", rec)
        manifest.setdefault(model, {})["hub_methods"] = sorted(k for k in rec["files"] if k != "keys")

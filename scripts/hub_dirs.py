"""Step ``hub-dirs`` of ``make_fixtures.py``: directories written by AdapterHub's own savers
(``save_adapter`` with and without ``with_head``, ``.bin`` and ``use_safetensors``,
``save_adapter_fusion``) for the tiny BERT and tiny GPT-2, with the golden outputs of the saving
model. Every directory is reloaded with AdapterHub's own ``load_adapter`` / ``load_head`` /
``load_adapter_fusion`` into a fresh model and must give bit-identical outputs.

Run through ``make_fixtures.py --only hub-dirs`` (this module is not a script).
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from pathlib import Path

import torch

import adapters
from adapters import AdapterConfig, BertAdapterModel
from adapters.composition import Fuse

import hub_compose as hc
import make_fixtures as mf

# adapter name -> (preset, rf, overrides, head or None, use_safetensors). GPT-2 has no flex head:
# save_adapter's default with_head=True writes GPT2LMHeadModel's static LM head (lm_head.weight, the
# tied wte) with head_config.json {"config": null}; b is saved that way, a with with_head=False.
BERT_DIRS = {
    "a": ("seq_bn", 4, {}, {"num_labels": 2, "layers": 2, "activation_function": "tanh",
                            "id2label": {0: "neg", 1: "pos"}}, False),
    "c": ("par_bn", 2, {}, {"num_labels": 3, "layers": 1, "activation_function": None, "use_pooler": True,
                            "id2label": {0: "x", 1: "y", 2: "z"}}, True),
    "b": ("double_seq_bn", 8, {}, None, False),
    "d": ("seq_bn", {"0": 4, "default": 16}, {"non_linearity": "gelu"}, None, False),
}
GPT2_DIRS = {
    "b": ("double_seq_bn", 8, {}, "static", False),
    "a": ("seq_bn", 4, {}, None, True),
}


def copy_saved(save, out: Path) -> list:
    """Run `save(tmpdir)`, copy every file it wrote to `out`, return the sorted file names."""
    with tempfile.TemporaryDirectory() as tmp:
        save(tmp)
        out.mkdir(parents=True, exist_ok=True)
        names = sorted(os.listdir(tmp))
        for f in names:
            shutil.copyfile(Path(tmp) / f, out / f)
    return names


def bert_adapter_model(base_sd: dict):
    torch.manual_seed(21)
    model = BertAdapterModel(mf.bert_config())
    res = model.bert.load_state_dict(base_sd, strict=False)
    assert res.missing_keys == ["prompt_tuning.base_model_embeddings.weight"], res.missing_keys
    assert not res.unexpected_keys, res.unexpected_keys
    return model


@torch.no_grad()
def randomize_head(model, name: str, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for pname, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        if pname.startswith(f"heads.{name}."):
            p.copy_(0.3 * torch.randn(p.shape, generator=g))


def file_keys(path: Path) -> list:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return sorted(load_file(str(path)).keys())
    return sorted(torch.load(path, map_location="cpu", weights_only=True).keys())


@torch.no_grad()
def make_bert(out: Path) -> dict:
    from transformers import BertModel

    base = BertModel.from_pretrained(mf.FIX / "tiny-bert", attn_implementation="eager")
    inp = mf.bert_inputs()
    model = bert_adapter_model(base.state_dict())
    for i, (name, (preset, rf, over, head, _)) in enumerate(BERT_DIRS.items()):
        model.add_adapter(name, config=AdapterConfig.load(preset, reduction_factor=rf, **over))
        mf.randomize_adapter(model, name, seed=800 + i)
        if head is not None:
            model.add_classification_head(name, **head)
            randomize_head(model, name, seed=850 + i)
    model.add_adapter_fusion(Fuse("a", "d"), "dynamic")
    hc.randomize_fusion(model, "a,d", seed=880)
    model.eval()

    rec, files = {}, {}
    for name, (_, _, _, head, safe) in BERT_DIRS.items():
        model.set_active_adapters(name)
        if head is not None:
            model.active_head = name
            y = model(**inp).logits
            rec[f"{name}.logits"] = mf.tensor_entry(y)
        rec[f"{name}.last_hidden_state"] = mf.tensor_entry(model.bert(**inp).last_hidden_state)
        d = out / f"{name}-hub"
        files[f"{name}-hub"] = copy_saved(
            lambda t: model.save_adapter(t, name, with_head=head is not None, use_safetensors=safe), d)
    model.set_active_adapters(Fuse("a", "d"))
    model.active_head = "a"
    fuse_logits = model(**inp).logits
    rec["fuse_a_d.logits"] = mf.tensor_entry(fuse_logits)
    rec["fuse_a_d.last_hidden_state"] = mf.tensor_entry(model.bert(**inp).last_hidden_state)
    files["fusion-a-d"] = copy_saved(lambda t: model.save_adapter_fusion(t, "a,d"), out / "fusion-a-d")
    keys = {f"{k}/{f}": file_keys(out / k / f) for k, names in files.items() for f in names
            if f.endswith((".bin", ".safetensors"))}
    files["keys"] = keys

    # AdapterHub's own loaders reproduce every output bit for bit
    fresh = bert_adapter_model(base.state_dict()).eval()
    for name, (_, _, _, head, safe) in BERT_DIRS.items():
        loaded = fresh.load_adapter(str(out / f"{name}-hub"), use_safetensors=safe)
        assert loaded == name, loaded
        fresh.set_active_adapters(name)
        if head is not None:
            fresh.active_head = name
            mf.close(fresh(**inp).logits, torch.tensor(rec[f"{name}.logits"]["data"]).view(-1, head["num_labels"]),
                     f"hub-dirs BERT {name} load_adapter(with head)", 0.0)
        else:
            got = fresh.bert(**inp).last_hidden_state
            mf.close(got.flatten(), torch.tensor(rec[f"{name}.last_hidden_state"]["data"]),
                     f"hub-dirs BERT {name} load_adapter", 0.0)
    fresh.load_adapter_fusion(str(out / "fusion-a-d"), set_active=True)
    fresh.active_head = "a"
    mf.close(fresh(**inp).logits, fuse_logits, "hub-dirs BERT load_adapter_fusion", 0.0)

    for k in ("input_ids", "attention_mask", "token_type_ids"):
        rec[k] = mf.tensor_entry(inp[k])
    rec["files"] = files
    rec["notes"] = (
        "tiny-bert base (fixtures/tiny-bert/model.safetensors) in adapters.BertAdapterModel, "
        "torch.manual_seed(21); adapters a (seq_bn rf 4), c (par_bn rf 2), b (double_seq_bn rf 8), d (seq_bn, "
        "reduction_factor {'0': 4, 'default': 16}, gelu) added in that order, ALL params := 0.1*randn (seed "
        "800+i); classification heads a (2 labels neg/pos, layers 2, tanh, [CLS]) and c (3 labels x/y/z, "
        "layers 1, no activation, use_pooler=True: the base's pooler output), head params := 0.3*randn (seed "
        "850+i); fusion 'a,d' (dynamic) as in compose/ (seed 880). eval. <name>-hub/ = model.save_adapter(dir, "
        "name, with_head=<has head>, use_safetensors=<c only>); fusion-a-d/ = save_adapter_fusion(dir, 'a,d'). "
        "<name>.logits = model(**inputs).logits with set_active_adapters(name), active_head = name; "
        "<name>.last_hidden_state = model.bert(**inputs).last_hidden_state (every adapter); fuse_a_d.logits "
        "(head a) and fuse_a_d.last_hidden_state with Fuse('a','d') active. files = what each saver wrote and the tensor names in each weights file. "
        "Each directory reloads with AdapterHub's load_adapter/load_adapter_fusion to identical outputs."
    )
    return rec


@torch.no_grad()
def make_gpt2(out: Path) -> dict:
    from transformers import GPT2LMHeadModel

    base = GPT2LMHeadModel.from_pretrained(mf.FIX / "tiny-gpt2", attn_implementation="eager").eval()
    ids = torch.tensor(mf.GPT2_INPUT_IDS, dtype=torch.long)
    mask = torch.tensor(mf.GPT2_MASK, dtype=torch.long)
    base.config._name_or_path = ""  # else save_adapter records this machine's fixture path
    model = copy.deepcopy(base)
    adapters.init(model)
    for i, (name, (preset, rf, over, _, _)) in enumerate(GPT2_DIRS.items()):
        model.add_adapter(name, config=AdapterConfig.load(preset, reduction_factor=rf, **over))
        mf.randomize_adapter(model, name, seed=900 + i)
    model.eval()
    rec, files = {}, {}
    for name, (_, _, _, head, safe) in GPT2_DIRS.items():
        model.set_active_adapters(name)
        rec[f"{name}.logits"] = mf.tensor_entry(model(input_ids=ids, attention_mask=mask).logits)
        files[f"{name}-hub"] = copy_saved(
            lambda t: model.save_adapter(t, name, with_head=head is not None, use_safetensors=safe),
            out / f"{name}-hub")
        for f in files[f"{name}-hub"]:
            if f.endswith((".bin", ".safetensors")):
                files.setdefault("keys", {})[f"{name}-hub/{f}"] = file_keys(out / f"{name}-hub" / f)
    fresh = copy.deepcopy(base)
    adapters.init(fresh)
    for name, (_, _, _, _, safe) in GPT2_DIRS.items():
        fresh.load_adapter(str(out / f"{name}-hub"), use_safetensors=safe)
        fresh.set_active_adapters(name)
        got = fresh.eval()(input_ids=ids, attention_mask=mask).logits
        mf.close(got.flatten(), torch.tensor(rec[f"{name}.logits"]["data"]), f"hub-dirs GPT-2 {name}", 0.0)
    rec["input_ids"] = mf.tensor_entry(ids)
    rec["attention_mask"] = mf.tensor_entry(mask)
    rec["files"] = files
    rec["notes"] = (
        "tiny-gpt2 (GPT2LMHeadModel, adapters.init) with adapters b (double_seq_bn rf 8) and a (seq_bn rf 4), "
        "ALL params := 0.1*randn (seed 900+i); eval. b-hub/ = save_adapter(dir, 'b') (pytorch_adapter.bin; "
        "with_head defaults to True: GPT2LMHeadModel's static head = lm_head.weight, i.e. the tied wte, with "
        "head_config.json config null), a-hub/ = save_adapter(dir, 'a', with_head=False, use_safetensors=True). <name>.logits = logits [2,6,97] for the "
        "inputs here with only that adapter active (default position ids)."
    )
    return rec


def make_hub_dirs(manifest: dict) -> None:
    for model, fn in (("tiny-bert", make_bert), ("tiny-gpt2", make_gpt2)):
        out = mf.FIX / model / "hub"
        shutil.rmtree(out, ignore_errors=True)
        rec = fn(out)
        mf.write_json(out / "golden.json", rec)
        manifest.setdefault(model, {})["hub_dirs"] = sorted(k for k in rec["files"] if k != "keys")

"""Step ``hub-roundtrip`` of ``make_fixtures.py``: Python's AdapterHub loads the directories that
burn-peft WROTE (``fixtures/<model>/hub-from-rust/``, written by the Rust test
``adapterhub_roundtrip`` in ``crates/peft-models/tests/``) with ``load_adapter(...,
use_safetensors=True)`` (+ the head, + ``load_adapter_fusion``) and checks that adapters 1.3.0
reproduces the logits our test recorded (``rust_outputs.json``) within 1e-5. The result is written
to ``hub-from-rust/python_check.json``; the directories themselves are never rewritten here.

Order: run the Rust test first (it writes the directories and ``rust_outputs.json``), then this
step, then commit both. The Rust test afterwards guards that what we write stays byte-equal to
the committed directories.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch

import adapters
from adapters.composition import Fuse

import hub_dirs as hd
import make_fixtures as mf

TOL = 1e-5


def tensor(entry: dict) -> torch.Tensor:
    return torch.tensor(entry["data"], dtype=torch.float32).view(entry["shape"])


@torch.no_grad()
def check_bert(root: Path) -> dict:
    from transformers import BertModel

    rec = json.loads((root / "rust_outputs.json").read_text())
    base = BertModel.from_pretrained(mf.FIX / "tiny-bert", attn_implementation="eager")
    inp = {k: tensor(rec[k]).long() for k in ("input_ids", "attention_mask", "token_type_ids")}
    out = {}
    for case in rec["cases"]:
        model = hd.bert_adapter_model(base.state_dict()).eval()
        names = []
        for d in case["adapter_dirs"]:
            names.append(model.load_adapter(str(root / d), use_safetensors=True))
        if case.get("fusion_dir"):
            model.load_adapter_fusion(str(root / case["fusion_dir"]), use_safetensors=True)
            model.set_active_adapters(Fuse(*names))
        else:
            assert len(names) == 1, case
            model.set_active_adapters(names[0])
        model.active_head = case["head"]
        got = model(**inp).logits
        want = tensor(rec[case["key"]])
        diff = (got - want).abs().max().item()
        assert diff <= TOL, f"{case['key']}: AdapterHub vs burn-peft max |diff| {diff:.3e} > {TOL}"
        out[case["key"]] = diff
    return out


@torch.no_grad()
def check_gpt2(root: Path) -> dict:
    from transformers import GPT2LMHeadModel

    rec = json.loads((root / "rust_outputs.json").read_text())
    base = GPT2LMHeadModel.from_pretrained(mf.FIX / "tiny-gpt2", attn_implementation="eager").eval()
    ids = tensor(rec["input_ids"]).long()
    mask = tensor(rec["attention_mask"]).long()
    out = {}
    for case in rec["cases"]:
        model = copy.deepcopy(base)
        adapters.init(model)
        name = model.load_adapter(str(root / case["adapter_dirs"][0]), use_safetensors=True)
        model.set_active_adapters(name)
        got = model.eval()(input_ids=ids, attention_mask=mask).logits
        diff = (got - tensor(rec[case["key"]])).abs().max().item()
        assert diff <= TOL, f"{case['key']}: AdapterHub vs burn-peft max |diff| {diff:.3e} > {TOL}"
        out[case["key"]] = diff
    return out


def make_hub_roundtrip(manifest: dict, subdir: str = "hub-from-rust", test: str = "adapterhub_roundtrip") -> None:
    for model, fn in (("tiny-bert", check_bert), ("tiny-gpt2", check_gpt2)):
        root = mf.FIX / model / subdir
        if not (root / "rust_outputs.json").is_file():
            raise SystemExit(f"{root}/rust_outputs.json missing: run the Rust test {test} first")
        diffs = fn(root)
        mf.write_json(root / "python_check.json", {
            "max_abs_diff": diffs,
            "notes": "adapters 1.3.0 load_adapter(use_safetensors=True) (+ head, + load_adapter_fusion) of the "
                     "directories burn-peft wrote, logits vs rust_outputs.json (tolerance 1e-5).",
        })
        key = "hub_roundtrip" if subdir == "hub-from-rust" else subdir.replace("-", "_")
        manifest.setdefault(model, {})[key + "_max_abs_diff"] = diffs
        print(f"{model}: AdapterHub reproduces burn-peft's logits: {diffs}")


def make_hub_methods_roundtrip(manifest: dict) -> None:
    """Step ``hub-methods-roundtrip``: the same check for the LoRA / IA³ / prefix-tuning
    directories the Rust test ``hub_methods_roundtrip`` (``adapterhub_methods.rs``) wrote to
    ``fixtures/<model>/hub-methods-from-rust/``."""
    make_hub_roundtrip(manifest, "hub-methods-from-rust", "hub_methods_roundtrip")

"""Issue-13 steps of ``make_fixtures.py``: Hugging Face PEFT 0.21.2 LoRA and IA³ directories.

``peft-lora``: the tiny BERT (``BertModel``) and tiny GPT-2 (``GPT2LMHeadModel``) wrapped by
``peft.get_peft_model`` with LoRA, every ``lora_B`` set to ``0.1*randn`` (PEFT's init leaves it
zero, which would hide a wrong key or transpose), or with IA³, every ``ia3_l`` set to
``1 + 0.3*randn`` (PEFT's init is ones), saved by ``PeftModel.save_pretrained`` into
``fixtures/<model>/peft/<case>/`` (``adapter_config.json`` + ``adapter_model.safetensors``) with
the reference outputs in ``fixtures/<model>/peft/<case>.json`` (BERT ``last_hidden_state``, GPT-2
``logits``, in eval mode, on the inputs of ``<model>/golden.json``). Each case also records the
output after ``merge_and_unload()`` (must equal the unmerged one within 1e-5).

``peft-roundtrip``: PEFT loads the directories burn-peft WROTE (``fixtures/<model>/peft-from-rust/``,
written by the Rust test ``peft_roundtrip`` in ``crates/peft-models/tests/peft.rs``) with
``PeftModel.from_pretrained`` and checks that it reproduces the outputs our test recorded
(``rust_outputs.json``) within 1e-5; the result goes to ``peft-from-rust/python_check.json``.
Run the Rust test first, then this step, then commit both.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import torch

import peft
from peft import IA3Config, LoraConfig, PeftModel, get_peft_model

import make_fixtures as mf

TOL = 1e-5
PEFT_VERSION = "0.21.2"

BERT_CASES = {
    # name: (config class, kwargs)
    "lora": (LoraConfig, dict(r=4, lora_alpha=8, target_modules=["query", "value", "output.dense", "intermediate.dense"])),
    "rslora": (LoraConfig, dict(r=4, lora_alpha=6, use_rslora=True, target_modules=["key", "value"])),
    # PEFT's BERT default placement: "output.dense" also matches attention.output.dense, and both
    # are feed-forward (scaled on their input).
    "ia3": (IA3Config, dict(target_modules=["key", "value", "output.dense"], feedforward_modules=["output.dense"])),
}
GPT2_CASES = {
    "lora": (LoraConfig, dict(task_type="CAUSAL_LM", r=4, lora_alpha=16, fan_in_fan_out=True,
                              target_modules=["c_attn", "c_proj", "c_fc"])),
    "ia3": (IA3Config, dict(task_type="CAUSAL_LM", fan_in_fan_out=True, target_modules=["c_attn", "mlp.c_proj"],
                            feedforward_modules=["mlp.c_proj"])),
}


def tensor(entry: dict) -> torch.Tensor:
    return torch.tensor(entry["data"], dtype=torch.float32).view(entry["shape"])


def check_version() -> None:
    if peft.__version__ != PEFT_VERSION:
        print(f"WARNING: peft {peft.__version__} != pinned {PEFT_VERSION}; outputs may differ")


def randomize_b(model, seed: int) -> None:
    """Non-zero LoRA B (PEFT's init is zero) and IA³ vectors away from ones."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif "ia3_l" in name:
                p.copy_(1.0 + 0.3 * torch.randn(p.shape, generator=g))


def sort_module_lists(path: Path) -> None:
    """PEFT writes ``target_modules`` from a Python set (order varies with the hash seed): sort
    the lists so that reruns write the same bytes (PEFT reads them back as sets)."""
    cfg = json.loads(path.read_text())
    for key in ("target_modules", "feedforward_modules"):
        if isinstance(cfg.get(key), list):
            cfg[key] = sorted(cfg[key])
    path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def bert_base():
    from transformers import BertModel

    return BertModel.from_pretrained(mf.FIX / "tiny-bert", attn_implementation="eager").eval()


def gpt2_base():
    from transformers import GPT2LMHeadModel

    return GPT2LMHeadModel.from_pretrained(mf.FIX / "tiny-gpt2", attn_implementation="eager").eval()


def bert_inputs() -> dict:
    g = json.loads((mf.FIX / "tiny-bert" / "golden.json").read_text())
    return {k: tensor(g[k]).long() for k in ("input_ids", "token_type_ids", "attention_mask")}


def gpt2_inputs() -> dict:
    g = json.loads((mf.FIX / "tiny-gpt2" / "golden.json").read_text())
    return {k: tensor(g[k]).long() for k in ("input_ids", "attention_mask")}


@torch.no_grad()
def bert_out(model, inputs) -> torch.Tensor:
    return model(**inputs).last_hidden_state


@torch.no_grad()
def gpt2_out(model, inputs) -> torch.Tensor:
    return model(**inputs).logits


def adapter_grads(model, inputs, out_fn) -> dict:
    """Gradients of mean(out^2) w.r.t. every adapter tensor, keyed ``grad:<file key>``."""
    model.eval()
    model.zero_grad()
    with torch.enable_grad():
        out = out_fn.__wrapped__(model, inputs) if hasattr(out_fn, "__wrapped__") else out_fn(model, inputs)
        (out ** 2).mean().backward()
    grads = {}
    for name, p in model.named_parameters():
        if p.grad is not None and ("lora_" in name or "ia3_l" in name):
            grads["grad:" + name.replace(".default", "")] = mf.tensor_entry(p.grad)
    assert grads, "no adapter gradients"
    model.zero_grad()
    return grads


def make_cases(model_dir: str, base_fn, inputs, out_fn, cases: dict, key: str, manifest: dict) -> None:
    root = mf.FIX / model_dir / "peft"
    shutil.rmtree(root, ignore_errors=True)
    base = base_fn()
    plain = out_fn(base, inputs)
    info = {}
    for i, (case, (config_class, kwargs)) in enumerate(cases.items()):
        torch.manual_seed(100 + i)
        model = get_peft_model(copy.deepcopy(base), config_class(**kwargs))
        # A relative name, not this checkout's absolute path, in the saved config.
        model.peft_config["default"].base_model_name_or_path = f"fixtures/{model_dir}"
        randomize_b(model, 200 + i)
        model.eval()
        out = out_fn(model, inputs)
        assert (out - plain).abs().max().item() > 1e-3, f"{case}: LoRA changes nothing"
        model.save_pretrained(root / case)
        (root / case / "README.md").unlink(missing_ok=True)  # PEFT's model card template
        sort_module_lists(root / case / "adapter_config.json")
        # PEFT's own reload reproduces the output.
        again = PeftModel.from_pretrained(copy.deepcopy(base), root / case).eval()
        mf.close(out_fn(again, inputs), out, f"{model_dir}/{case} reload")
        grads = adapter_grads(model, inputs, out_fn)
        merged = copy.deepcopy(model).merge_and_unload().eval()
        merged_out = out_fn(merged, inputs)
        mf.close(merged_out, out, f"{model_dir}/{case} merged")
        mf.write_json(root / f"{case}.json", {
            key: mf.tensor_entry(out),
            "merged_" + key: mf.tensor_entry(merged_out),
            **grads,
            "peft_config": {k: v for k, v in kwargs.items()},
            "notes": f"peft {peft.__version__} get_peft_model({config_class.__name__}) on the {model_dir} base, "
                     f"every lora_B 0.1*randn / ia3_l 1+0.3*randn; {key} in eval mode on the inputs of golden.json; "
                     f"merged_{key} after merge_and_unload(); grad:<file key> = d mean({key}^2) / d tensor "
                     "(eval mode: no dropout), one backward pass, in the file's layout.",
        })
        info[case] = {"max_abs_change_vs_base": (out - plain).abs().max().item()}
    manifest.setdefault(model_dir, {})["peft"] = info


def bert_seq_cls_base():
    """``BertForSequenceClassification`` (3 labels) on the tiny-bert weights; its fresh classifier
    is drawn from torch.manual_seed(7)."""
    from transformers import BertForSequenceClassification

    torch.manual_seed(7)
    return BertForSequenceClassification.from_pretrained(
        mf.FIX / "tiny-bert", num_labels=3, attn_implementation="eager").eval()


@torch.no_grad()
def cls_out(model, inputs) -> torch.Tensor:
    # [batch, labels] as [1, batch, labels]: the Rust readers take rank-3 tensors.
    return model(**inputs).logits.unsqueeze(0)


def make_seq_cls(manifest: dict) -> None:
    """Case ``seq-cls``: PEFT's SEQ_CLS task on BertForSequenceClassification: LoRA on query and
    value (``bert.`` key prefix) plus ``modules_to_save`` = the classifier (PEFT adds
    ``classifier`` and ``score``), every lora_B non-zero and the saved classifier perturbed."""
    root = mf.FIX / "tiny-bert" / "peft"
    base = bert_seq_cls_base()
    inputs = bert_inputs()
    kwargs = dict(task_type="SEQ_CLS", r=4, lora_alpha=8, target_modules=["query", "value"])
    torch.manual_seed(300)
    model = get_peft_model(copy.deepcopy(base), LoraConfig(**kwargs))
    model.peft_config["default"].base_model_name_or_path = "fixtures/tiny-bert"
    randomize_b(model, 301)
    g = torch.Generator().manual_seed(302)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "modules_to_save" in name:
                p.add_(0.2 * torch.randn(p.shape, generator=g))
    model.eval()
    out = cls_out(model, inputs)
    model.save_pretrained(root / "seq-cls")
    (root / "seq-cls" / "README.md").unlink(missing_ok=True)
    sort_module_lists(root / "seq-cls" / "adapter_config.json")
    again = PeftModel.from_pretrained(copy.deepcopy(base), root / "seq-cls").eval()
    mf.close(cls_out(again, inputs), out, "seq-cls reload")
    mf.write_json(root / "seq-cls.json", {
        "logits": mf.tensor_entry(out),
        "peft_config": kwargs,
        "notes": f"peft {peft.__version__} SEQ_CLS LoRA on BertForSequenceClassification(num_labels=3) of the "
                 "tiny-bert weights (classifier from torch.manual_seed(7), then +0.2*randn in the saved copy); "
                 "logits [1, batch, 3] in eval mode on the inputs of golden.json.",
    })
    manifest.setdefault("tiny-bert", {}).setdefault("peft", {})["seq-cls"] = {
        "max_abs_logit": out.abs().max().item()}


def make_peft_lora(manifest: dict) -> None:
    check_version()
    make_cases("tiny-bert", bert_base, bert_inputs(), bert_out, BERT_CASES, "last_hidden_state", manifest)
    make_seq_cls(manifest)
    make_cases("tiny-gpt2", gpt2_base, gpt2_inputs(), gpt2_out, GPT2_CASES, "logits", manifest)
    print("peft-lora: wrote fixtures/tiny-bert/peft and fixtures/tiny-gpt2/peft")


def make_peft_roundtrip(manifest: dict) -> None:
    check_version()
    for model_dir, base_fn, inputs, out_fn, key in (
        ("tiny-bert", bert_base, bert_inputs(), bert_out, "last_hidden_state"),
        ("tiny-gpt2", gpt2_base, gpt2_inputs(), gpt2_out, "logits"),
    ):
        root = mf.FIX / model_dir / "peft-from-rust"
        rec_path = root / "rust_outputs.json"
        if not rec_path.is_file():
            raise SystemExit(f"{rec_path} missing: run the Rust test peft_roundtrip first")
        rec = json.loads(rec_path.read_text())
        diffs = {}
        for case in rec["cases"]:
            model = PeftModel.from_pretrained(base_fn(), root / case).eval()
            got = out_fn(model, inputs)
            want = tensor(rec[case])
            diff = (got - want).abs().max().item()
            assert diff <= TOL, f"{model_dir}/{case}: PEFT vs burn-peft max |diff| {diff:.3e} > {TOL}"
            diffs[case] = diff
        seq_cls = root / "rust-seq-cls.json"
        if model_dir == "tiny-bert" and seq_cls.is_file():
            # Our SEQ_CLS directory (LoRA under bert. + modules_to_save classifier).
            model = PeftModel.from_pretrained(bert_seq_cls_base(), root / "rust-seq-cls").eval()
            got = cls_out(model, inputs)
            want = tensor(json.loads(seq_cls.read_text())["logits"])
            diff = (got - want).abs().max().item()
            assert diff <= TOL, f"rust-seq-cls: PEFT vs burn-peft max |diff| {diff:.3e} > {TOL}"
            diffs["rust-seq-cls"] = diff
        mf.write_json(root / "python_check.json", {
            "max_abs_diff": diffs,
            "notes": f"peft {peft.__version__} PeftModel.from_pretrained of the directories burn-peft wrote, "
                     f"{key} vs rust_outputs.json (tolerance 1e-5).",
        })
        manifest.setdefault(model_dir, {})["peft_roundtrip_max_abs_diff"] = diffs
        print(f"{model_dir}: PEFT reproduces burn-peft's outputs: {diffs}")

#!/usr/bin/env python3
"""Generate the small golden fixtures under ``fixtures/`` used by burn-peft's Rust tests.

Pinned versions (see ``scripts/requirements-fixtures.txt``):

    torch==2.15.0            (generated with the 2.15.0+cu132 wheel, run on CPU only)
    transformers==4.57.6
    adapters==1.3.0          (AdapterHub)
    peft==0.21.2
    safetensors==0.8.0
    tokenizers==0.22.2

How to run (from the repository root):

    python -m venv .venv && .venv/bin/pip install -r scripts/requirements-fixtures.txt
    .venv/bin/python scripts/make_fixtures.py
    .venv/bin/python scripts/make_fixtures.py --only tiny-roberta bert-f16-bin   # some steps only

The outputs are committed. CI never needs Python: the Rust tests only read the files
written here. Re-running the script with the pinned versions on the same kind of CPU gives byte-identical files
(all seeds fixed, CPU, float32, single thread, eval mode); ``fixtures/MANIFEST.json``
lists the sha256 of every file so a rerun can be checked with ``sha256sum``.
Float outputs can differ in the last ulp on another CPU (observed for the tiny-bert goldens:
max |diff| 6e-7 on an AMD EPYC); ``--only STEP ...`` regenerates the named steps and leaves every
other fixture file (and its MANIFEST.json entry) as it is.

Optional: if ``$MINILM_DIR`` or ``shared/models/all-MiniLM-L6-v2`` (in or next to the repo) exists, the script
also checks the AdapterHub parameter counts of seq_bn / double_seq_bn (rf 16) on the real
MiniLM checkpoint (113,040 and 226,080). Without it the same check runs on a randomly
initialised model built from MiniLM's config (the count only depends on the shapes).

JSON tensor format (one reader on the Rust side): a JSON object mapping
name -> {"shape": [..], "data": [flat row-major numbers]}; integer tensors hold ints,
float tensors hold floats written with full (float64 repr) precision of the float32
values. Some files carry extra non-tensor top-level keys (e.g. "adapter_config",
"adapter_param_count", "notes"); a reader should skip values that are not
{"shape","data"} objects.

What is produced (see fixtures/README.md for the details):

  fixtures/tiny-bert/                random-init BertModel (hidden 32, 2 layers, vocab 99)
      config.json, model.safetensors (no prefix), model-f16.safetensors (no prefix),
      pytorch_model.bin ("bert." prefix + embeddings.position_ids buffer), golden.json
      adapters/<name>.safetensors, adapters/<name>.json, adapters/<name>-hub/ (AdapterHub
      save_adapter output) for seq_bn, double_seq_bn, par_bn, scaled_par_bn (rf 4)
      trajectory/ (20 AdamW steps of seq_bn + AdapterHub head training, dropout off: per-step
      losses, step-0 gradients, initial and final weights)
      pytorch_model-f16.bin (step bert-f16-bin: the same weights in float16, "bert." prefix)
  fixtures/tiny-gpt2/                random-init GPT2LMHeadModel (n_embd 16, 2 layers, vocab 97)
      config.json, generation_config.json, model.safetensors ("transformer." prefix),
      pytorch_model.bin (prefix stripped, + attn.bias / attn.masked_bias buffers), golden.json
      adapters/<name>.{safetensors,json} and <name>-hub/ for seq_bn, double_seq_bn (rf 4)
  fixtures/tiny-roberta/             random-init RobertaModel (hidden 32, 2 layers, vocab 300)
      config.json, model.safetensors ("roberta." prefix), tokenizer.json (byte-level BPE trained
      here with the tokenizers library, RoBERTa post-processor, pad id 1, no truncation),
      golden.json

Issue 10 (AdapterHub composition and files; code in scripts/hub_*.py):
  tiny-{bert,gpt2}/compose/         steps compose-bert, compose-gpt2: four named adapters (a seq_bn, b
      double_seq_bn, c par_bn, d seq_bn with per-layer reduction_factor + gelu) and two fusions on one
      model; goldens of every composition block and AdapterDrop (skip_layers), each site's closed form
      asserted (scripts/ADAPTERHUB_MATHS.md 7-9)
  tiny-{bert,gpt2}/hub/             step hub-dirs: directories written by save_adapter (.bin / safetensors,
      with classification heads), save_adapter_fusion, GPT-2's static head; reloaded by AdapterHub
  tiny-{bert,gpt2}/hub-from-rust/   step hub-roundtrip: directories WRITTEN BY burn-peft (Rust test
      adapterhub_roundtrip, run it first with PEFT_WRITE_FIXTURES=1), loaded by adapters 1.3.0, whose
      logits must equal burn-peft's within 1e-5 (python_check.json)

Besides recording outputs, the script re-derives every adapter site output with the
closed-form formulas documented in scripts/ADAPTERHUB_MATHS.md (via forward hooks) and
asserts they match AdapterHub to 1e-5, so the document and the fixtures agree.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

import adapters
import tokenizers
import transformers
from adapters import AdapterConfig
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import BertConfig, BertModel, GPT2Config, GPT2LMHeadModel, RobertaConfig, RobertaModel
from transformers.models.roberta.modeling_roberta import create_position_ids_from_input_ids

warnings.filterwarnings("ignore")
transformers.logging.set_verbosity_error()
logging.getLogger("adapters").setLevel(logging.ERROR)

EXPECTED = {"torch": "2.15.0", "transformers": "4.57.6", "adapters": "1.3.0", "tokenizers": "0.22.2"}

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "fixtures"
MINILM_CANDIDATES = [
    Path(os.environ["MINILM_DIR"]) if os.environ.get("MINILM_DIR") else None,
    ROOT / "shared" / "models" / "all-MiniLM-L6-v2",
    ROOT.parent / "shared" / "models" / "all-MiniLM-L6-v2",
]

BERT_ADAPTERS = ["seq_bn", "double_seq_bn", "par_bn", "scaled_par_bn"]
GPT2_ADAPTERS = ["seq_bn", "double_seq_bn"]
REDUCTION_FACTOR = 4
ATOL = 1e-5


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


def check_versions() -> None:
    got = {
        "torch": torch.__version__.split("+")[0],
        "transformers": transformers.__version__,
        "adapters": adapters.__version__,
        "tokenizers": tokenizers.__version__,
    }
    for k, v in EXPECTED.items():
        if got[k] != v:
            print(f"WARNING: {k} {got[k]} != pinned {v}; outputs may differ", file=sys.stderr)


def tensor_entry(t: torch.Tensor) -> dict:
    t = t.detach().cpu().contiguous()
    if t.dtype.is_floating_point:
        data = t.to(torch.float32).flatten().tolist()
    else:
        data = [int(x) for x in t.flatten().tolist()]
    return {"shape": list(t.shape), "data": data}


def write_json(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # One top-level key per line, tensors compact: small, diffable, deterministic.
    lines = ["{"]
    items = list(obj.items())
    for i, (k, v) in enumerate(items):
        sep = "," if i + 1 < len(items) else ""
        lines.append(f"{json.dumps(k)}: {json.dumps(v, separators=(',', ':'), sort_keys=True)}{sep}")
    lines.append("}")
    path.write_text("\n".join(lines) + "\n")


def close(a: torch.Tensor, b: torch.Tensor, what: str, atol: float = ATOL) -> None:
    d = (a - b).abs().max().item()
    assert d <= atol, f"{what}: max |diff| = {d:.3e} > {atol}"


@torch.no_grad()
def perturb_norms_and_biases(model: torch.nn.Module, seed: int) -> None:
    """Random init leaves LayerNorm at (1, 0) and every bias at 0, which would hide
    loader bugs (swapped gamma/beta, dropped biases). Give them non-trivial values."""
    g = torch.Generator().manual_seed(seed)
    for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        leaf = name.rsplit(".", 1)[-1]
        is_ln = any(s in name for s in ("LayerNorm", "ln_"))
        if is_ln and leaf == "weight":
            p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
        elif leaf == "bias":
            p.copy_(0.05 * torch.randn(p.shape, generator=g))


@torch.no_grad()
def randomize_adapter(model: torch.nn.Module, name: str, seed: int) -> int:
    """Overwrite ALL parameters of adapter `name` with randn * 0.1 (biases and the
    up-projection included, so the adapter is far from identity). Returns #params."""
    g = torch.Generator().manual_seed(seed)
    n = 0
    tag = f"adapters.{name}."
    for pname, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        if tag in pname:
            p.copy_(0.1 * torch.randn(p.shape, generator=g))
            n += p.numel()
    assert n > 0, f"no parameters found for adapter {name}"
    return n


def adapter_state(model: torch.nn.Module, name: str) -> dict:
    tag = f"adapters.{name}."
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items() if tag in k}


def save_hub_dir(model, name: str, out: Path) -> None:
    """AdapterHub native layout (model.save_adapter, safetensors): adapter_config.json +
    adapter.safetensors (+ head files for models with a head, which we drop)."""
    with tempfile.TemporaryDirectory() as tmp:
        model.save_adapter(tmp, name, with_head=False, use_safetensors=True)
        out.mkdir(parents=True, exist_ok=True)
        for f in sorted(os.listdir(tmp)):
            shutil.copyfile(Path(tmp) / f, out / f)


def config_dict(model, name: str) -> dict:
    cfg = model.adapters_config.get(name)
    return cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)


# --------------------------------------------------------------------------------------
# closed-form adapter site maths (mirrors scripts/ADAPTERHUB_MATHS.md)
# --------------------------------------------------------------------------------------


def bottleneck(ad, z: torch.Tensor) -> torch.Tensor:
    """g(z) = up(act(down(LN_before?(z)))) * scaling   (dropout is identity in eval)."""
    h = z
    if ad.add_layer_norm_before:
        h = ad.adapter_norm_before(h)
    lin_down = [m for m in ad.adapter_down if isinstance(m, torch.nn.Linear)][0]
    h = ad.non_linearity(lin_down(h))
    return ad.adapter_up(h) * ad.scaling


def site_formula(ad, sub: torch.Tensor, x: torch.Tensor, ln) -> torch.Tensor:
    """Output of one adapter site. sub = sub-layer output (after its dense/c_proj and
    dropout), x = sub-block residual input, ln = the site's original LayerNorm (BERT,
    post-LN) or None (GPT-2, pre-LN). Only the flag combinations of the presets used
    here are implemented (asserted)."""
    assert not ad.use_gating and not ad.add_layer_norm_after and not hasattr(ad, "DropPath")
    LN = ln if ln is not None else (lambda t: t)
    if ad.__class__.__name__ == "ParallelAdapter":
        # y = LN(sub + x + s * g(x))
        return LN(sub + x + bottleneck(ad, x))
    assert ad.residual_before_ln is True and ad.original_ln_after is True
    if ad.original_ln_before:
        # seq_bn (Pfeiffer): y = LN( g(LN(sub + x)) + sub + x )
        return LN(bottleneck(ad, LN(sub + x)) + sub + x)
    # double_seq_bn (Houlsby): y = LN( g(sub) + sub + x )
    return LN(bottleneck(ad, sub) + sub + x)


def install_bert_site_checks(model, name: str, log: list):
    handles = []
    for li, layer in enumerate(model.encoder.layer):
        for site, mod in (("mh_adapter", layer.attention.output), ("output_adapter", layer.output)):
            if name not in mod.adapters:
                continue
            ad = mod.adapters[name]

            def hook(m, args, out, ad=ad, tag=f"layer{li}.{site}"):
                hidden, inp = args
                sub = m.dropout(m.dense(hidden))
                close(out, site_formula(ad, sub, inp, m.LayerNorm), f"BERT {name} {tag}")
                log.append(tag)

            handles.append(mod.register_forward_hook(hook))
    return handles


def install_gpt2_site_checks(model, name: str, log: list):
    handles = []
    for li, block in enumerate(model.transformer.h):
        for site, mod in (("mh_adapter", block.attention_adapters), ("output_adapter", block.output_adapters)):
            if name not in mod.adapters:
                continue
            ad = mod.adapters[name]

            def hook(m, args, out, ad=ad, tag=f"h{li}.{site}"):
                sub, x, ln = args
                assert ln is None
                close(out, site_formula(ad, sub, x, None), f"GPT-2 {name} {tag}")
                log.append(tag)

            handles.append(mod.register_forward_hook(hook))
    return handles


# --------------------------------------------------------------------------------------
# tiny BERT
# --------------------------------------------------------------------------------------

BERT_INPUT_IDS = [
    [2, 15, 37, 61, 8, 90, 3],  # unpadded, two segments
    [2, 44, 12, 3, 0, 0, 0],  # padded (3 pads)
    [2, 7, 81, 3, 55, 3, 0],  # padded (1 pad), two segments
]
BERT_TOKEN_TYPES = [
    [0, 0, 0, 0, 1, 1, 1],
    [0, 0, 0, 0, 0, 0, 0],
    [0, 0, 0, 0, 1, 1, 0],
]
BERT_MASK = [
    [1, 1, 1, 1, 1, 1, 1],
    [1, 1, 1, 1, 0, 0, 0],
    [1, 1, 1, 1, 1, 1, 0],
]


def bert_config(attn: str = "eager") -> BertConfig:
    return BertConfig(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=64,
        type_vocab_size=2,
        hidden_act="gelu",
        layer_norm_eps=1e-12,
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        attn_implementation=attn,
    )


def bert_inputs() -> dict:
    return {
        "input_ids": torch.tensor(BERT_INPUT_IDS, dtype=torch.long),
        "attention_mask": torch.tensor(BERT_MASK, dtype=torch.long),
        "token_type_ids": torch.tensor(BERT_TOKEN_TYPES, dtype=torch.long),
    }


@torch.no_grad()
def make_bert(manifest: dict) -> None:
    out = FIX / "tiny-bert"
    torch.manual_seed(0)
    model = BertModel(bert_config(), add_pooling_layer=True)
    perturb_norms_and_biases(model, seed=1)
    model.eval()

    model.save_pretrained(out, safe_serialization=True)

    sd = model.state_dict()
    # PyTorch checkpoint with the "bert." prefix (as BertFor* heads save it) plus the
    # non-persistent position_ids buffer, which old checkpoints carry and loaders must ignore.
    assert "embeddings.position_ids" not in sd  # non-persistent in transformers 4.57.6
    bin_sd = {f"bert.{k}": v.clone() for k, v in sd.items()}
    bin_sd["bert.embeddings.position_ids"] = model.embeddings.position_ids.clone()
    torch.save(bin_sd, out / "pytorch_model.bin")

    f16 = {k: v.to(torch.float16).contiguous() for k, v in sd.items()}
    save_file(f16, str(out / "model-f16.safetensors"), metadata={"format": "pt"})

    inp = bert_inputs()
    o = model(**inp)

    # sanity: sdpa attention gives the same numbers as the eager reference we record
    sdpa = BertModel(bert_config("sdpa"), add_pooling_layer=True).eval()
    sdpa.load_state_dict(sd)
    close(sdpa(**inp).last_hidden_state, o.last_hidden_state, "BERT sdpa vs eager")

    # safetensors round-trip loads the same model
    m2 = BertModel.from_pretrained(out, attn_implementation="eager").eval()
    close(m2(**inp).last_hidden_state, o.last_hidden_state, "BERT from_pretrained", 0.0)

    # the f16 checkpoint loaded back, cast to f32, run in f32
    mf16 = BertModel(bert_config(), add_pooling_layer=True).eval()
    mf16.load_state_dict({k: v.to(torch.float32) for k, v in load_file(str(out / "model-f16.safetensors")).items()})
    of16 = mf16(**inp)

    golden = {
        "input_ids": tensor_entry(inp["input_ids"]),
        "token_type_ids": tensor_entry(inp["token_type_ids"]),
        "attention_mask": tensor_entry(inp["attention_mask"]),
        "last_hidden_state": tensor_entry(o.last_hidden_state),
        "pooler_output": tensor_entry(o.pooler_output),
        "f16_last_hidden_state": tensor_entry(of16.last_hidden_state),
        "f16_pooler_output": tensor_entry(of16.pooler_output),
        "notes": (
            "BertModel(config, add_pooling_layer=True), torch.manual_seed(0) init, then every LayerNorm "
            "weight := 1+0.1*randn and every bias := 0.05*randn (generator seed 1, params in sorted-name "
            "order); eval mode, fp32, CPU, eager attention. Outputs of model(input_ids, attention_mask, "
            "token_type_ids); padded positions included (they attend to the unmasked keys). "
            "f16_* = same model with weights round-tripped through model-f16.safetensors, computed in f32."
        ),
    }
    write_json(out / "golden.json", golden)
    manifest["tiny-bert"] = {"params": sum(p.numel() for p in model.parameters())}

    # ---------------- AdapterHub bottleneck adapters ----------------
    counts = {}
    for idx, name in enumerate(BERT_ADAPTERS):
        m = copy.deepcopy(model)
        adapters.init(m)
        m.add_adapter(name, config=AdapterConfig.load(name, reduction_factor=REDUCTION_FACTOR))
        m.set_active_adapters(name)
        nparams = randomize_adapter(m, name, seed=100 + idx)
        m.eval()
        summary = {r["name"]: r["#param"] for r in m.adapter_summary(as_dict=True)}
        assert summary[name] == nparams, (summary, nparams)

        log: list = []
        hs = install_bert_site_checks(m, name, log)
        oa = m(**inp)
        for h in hs:
            h.remove()
        assert log, f"no adapter site ran for {name}"
        delta = (oa.last_hidden_state - o.last_hidden_state).abs().max().item()
        assert delta > 1e-2, f"adapter {name} has no visible effect ({delta})"

        st = adapter_state(m, name)
        assert sum(v.numel() for v in st.values()) == nparams
        (out / "adapters").mkdir(parents=True, exist_ok=True)
        save_file(st, str(out / "adapters" / f"{name}.safetensors"), metadata={"format": "pt"})
        save_hub_dir(m, name, out / "adapters" / f"{name}-hub")
        hub = load_file(str(out / "adapters" / f"{name}-hub" / "adapter.safetensors"))
        assert sorted(hub) == sorted(st) and all(torch.equal(hub[k], st[k]) for k in st)

        # reload through AdapterHub's own loader into a fresh model: same outputs
        m3 = copy.deepcopy(model)
        adapters.init(m3)
        loaded = m3.load_adapter(str(out / "adapters" / f"{name}-hub"), set_active=True, use_safetensors=True)
        m3.set_active_adapters(loaded)
        close(m3.eval()(**inp).last_hidden_state, oa.last_hidden_state, f"BERT {name} load_adapter", 0.0)

        write_json(
            out / "adapters" / f"{name}.json",
            {
                "adapter_config": config_dict(m, name),
                "adapter_param_count": nparams,
                "checked_sites": log,
                "last_hidden_state": tensor_entry(oa.last_hidden_state),
                "pooler_output": tensor_entry(oa.pooler_output),
                "notes": (
                    f"tiny-bert + AdapterHub '{name}' (reduction_factor {REDUCTION_FACTOR} -> bottleneck "
                    f"{32 // REDUCTION_FACTOR}); adapters.init(BertModel); add_adapter; set_active_adapters; "
                    f"ALL adapter params := 0.1*randn (generator seed {100 + idx}, sorted-name order); eval. "
                    "Inputs = golden.json inputs."
                ),
            },
        )
        counts[name] = nparams
    manifest["tiny-bert"]["adapter_param_counts"] = counts


@torch.no_grad()
def make_bert_f16_bin(manifest: dict) -> None:
    """tiny-bert's weights in float16 as a torch pickle with the "bert." prefix (loaders must
    cast to f32 like they do for model-f16.safetensors). Read from model.safetensors so this
    step can run alone; golden.json's f16_* outputs are the reference for both f16 files."""
    out = FIX / "tiny-bert"
    sd = load_file(str(out / "model.safetensors"))
    f16 = {f"bert.{k}": v.to(torch.float16).contiguous() for k, v in sorted(sd.items())}
    st16 = load_file(str(out / "model-f16.safetensors"))
    assert all(torch.equal(f16[f"bert.{k}"], st16[k]) for k in st16) and len(st16) == len(f16)
    torch.save(f16, out / "pytorch_model-f16.bin")


# --------------------------------------------------------------------------------------
# training trajectory: seq_bn + AdapterHub classification head, 20 AdamW steps
# --------------------------------------------------------------------------------------

TRAJ_STEPS = 20
TRAJ_BATCH = 4
TRAJ_LR = 1e-2
TRAJ_HEAD = "cls"


def traj_batches() -> list:
    """TRAJ_STEPS batches of TRAJ_BATCH rows: 4 distinct batches repeated (so that the loss can
    fall), each with [CLS]-like id 2 first, random ids in [3, 99), trailing padding (id 0, mask 0)
    so that rows have different lengths, and random labels."""
    g = torch.Generator().manual_seed(7)
    out = []
    for _ in range(4):
        seq = int(torch.randint(6, 11, (1,), generator=g))
        ids = torch.randint(3, 99, (TRAJ_BATCH, seq), generator=g)
        ids[:, 0] = 2
        lens = torch.randint(3, seq + 1, (TRAJ_BATCH,), generator=g)
        lens[0] = seq  # the longest row sets the padded length
        mask = (torch.arange(seq)[None, :] < lens[:, None]).long()
        ids = ids * mask
        labels = torch.randint(0, 2, (TRAJ_BATCH,), generator=g)
        out.append({"input_ids": ids, "attention_mask": mask,
                    "token_type_ids": torch.zeros_like(ids), "labels": labels})
    return [out[k % len(out)] for k in range(TRAJ_STEPS)]


def make_trajectory(manifest: dict) -> None:
    """Per-step losses and final weights of 20 AdamW steps of seq_bn + AdapterHub head training
    on tiny-bert, dropout off, so that the Rust training path can be checked step by step."""
    from adapters import BertAdapterModel

    out = FIX / "tiny-bert" / "trajectory"
    base = BertModel.from_pretrained(FIX / "tiny-bert", attn_implementation="eager")
    cfg = bert_config()
    cfg.hidden_dropout_prob = 0.0
    cfg.attention_probs_dropout_prob = 0.0
    torch.manual_seed(11)
    model = BertAdapterModel(cfg)
    res = model.bert.load_state_dict(base.state_dict(), strict=False)
    # adapters.init adds a (here unused) prompt-tuning embedding table to the base model
    assert res.missing_keys == ["prompt_tuning.base_model_embeddings.weight"], res.missing_keys
    assert not res.unexpected_keys, res.unexpected_keys
    model.add_adapter(TRAJ_HEAD, config=AdapterConfig.load("seq_bn", reduction_factor=REDUCTION_FACTOR))
    model.add_classification_head(TRAJ_HEAD, num_labels=2)  # dropout, dense, tanh, dropout, linear
    randomize_adapter(model, TRAJ_HEAD, seed=300)
    model.train_adapter(TRAJ_HEAD)  # base frozen; adapter and head train
    model.active_head = TRAJ_HEAD
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    model.train()

    trainable = sorted((n, p) for n, p in model.named_parameters() if p.requires_grad)
    names = [n for n, _ in trainable]
    assert all(f"adapters.{TRAJ_HEAD}." in n or n.startswith(f"heads.{TRAJ_HEAD}.") for n in names), names
    initial = {n: tensor_entry(p) for n, p in trainable}
    (out / "initial-hub").mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        model.save_adapter(str(out / "initial-hub"), TRAJ_HEAD, with_head=True, use_safetensors=True)

    opt = torch.optim.AdamW([p for _, p in trainable], lr=TRAJ_LR, weight_decay=0.0)
    batches = traj_batches()
    losses = []
    first_grads = {}
    for step, b in enumerate(batches):
        opt.zero_grad(set_to_none=True)
        logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"],
                       token_type_ids=b["token_type_ids"]).logits
        loss = torch.nn.functional.cross_entropy(logits, b["labels"])
        loss.backward()
        if step == 0:
            first_grads = {n: tensor_entry(p.grad) for n, p in trainable}
        opt.step()
        losses.append(loss.item())
    moved = max((p.detach() - torch.tensor(initial[n]["data"]).view(p.shape)).abs().max().item() for n, p in trainable)
    assert moved > 0.05 and min(losses) < losses[0] - 0.05, (moved, losses)

    golden = {
        "steps": TRAJ_STEPS,
        "lr": TRAJ_LR,
        "losses": tensor_entry(torch.tensor(losses, dtype=torch.float64)),
        "notes": (
            "tiny-bert base in adapters.BertAdapterModel (hidden and attention dropout 0), torch.manual_seed(11); "
            f"add_adapter('{TRAJ_HEAD}', seq_bn rf {REDUCTION_FACTOR}); add_classification_head (2 labels, layers 2, "
            "tanh, [CLS]); ALL adapter params := 0.1*randn (generator seed 300); head keeps AdapterHub's init "
            "(normal 0.02, zero bias); every nn.Dropout p := 0; train mode. torch.optim.AdamW(lr, betas 0.9/0.999, "
            "eps 1e-8, weight_decay 0) over the trainable params in sorted-name order; mean cross-entropy; no "
            "clipping; constant lr. batch<k>.* = the inputs of step k; losses[k] = loss at step k before its update; "
            "initial.* / final.* = trainable params before step 0 / after the last step (PyTorch [out, in] layout); "
            "grad0.* = gradients of step 0. initial-hub/ = model.save_adapter(with_head=True) before training."
        ),
    }
    for k, b in enumerate(batches):
        for key, v in b.items():
            golden[f"batch{k}.{key}"] = tensor_entry(v)
    golden.update({f"initial.{n}": v for n, v in initial.items()})
    golden.update({f"grad0.{n}": v for n, v in first_grads.items()})
    golden.update({f"final.{n}": tensor_entry(p) for n, p in trainable})
    write_json(out / "trajectory.json", golden)
    manifest.setdefault("tiny-bert", {})["trajectory"] = {"steps": TRAJ_STEPS, "first_loss": losses[0], "last_loss": losses[-1]}


# --------------------------------------------------------------------------------------
# MiniLM parameter counts
# --------------------------------------------------------------------------------------


def minilm_config() -> BertConfig:
    return BertConfig(
        vocab_size=30522,
        hidden_size=384,
        num_hidden_layers=6,
        num_attention_heads=12,
        intermediate_size=1536,
        max_position_embeddings=512,
        type_vocab_size=2,
    )


@torch.no_grad()
def check_minilm_counts(manifest: dict) -> None:
    expected = {"seq_bn": 113_040, "double_seq_bn": 226_080}
    found = [d for d in MINILM_CANDIDATES if d is not None and (d / "model.safetensors").is_file()]
    real = bool(found)
    got = {}
    for name in expected:
        if real:
            m = BertModel.from_pretrained(found[0])
        else:
            torch.manual_seed(0)
            m = BertModel(minilm_config())
        adapters.init(m)
        m.add_adapter(name, config=AdapterConfig.load(name, reduction_factor=16))
        n = sum(p.numel() for k, p in m.named_parameters() if f"adapters.{name}." in k)
        summ = {r["name"]: r["#param"] for r in m.adapter_summary(as_dict=True)}[name]
        assert n == summ == expected[name], (name, n, summ, expected[name])
        got[name] = n
    print(f"MiniLM ({'real checkpoint' if real else 'config only'}) rf16 adapter params: {got}")
    manifest["minilm_rf16_adapter_param_counts"] = got


# --------------------------------------------------------------------------------------
# tiny GPT-2
# --------------------------------------------------------------------------------------

GPT2_INPUT_IDS = [
    [5, 17, 42, 8, 77, 3],
    [11, 23, 64, 96, 96, 96],  # right-padded with pad/eos id 96
]
GPT2_MASK = [
    [1, 1, 1, 1, 1, 1],
    [1, 1, 1, 0, 0, 0],
]
GREEDY_PROMPT = [[5, 17, 42]]


def gpt2_config(attn: str = "eager") -> GPT2Config:
    return GPT2Config(
        vocab_size=97,
        n_embd=16,
        n_layer=2,
        n_head=2,
        n_positions=32,
        activation_function="gelu_new",
        resid_pdrop=0.1,
        embd_pdrop=0.1,
        attn_pdrop=0.1,
        tie_word_embeddings=True,
        bos_token_id=96,
        eos_token_id=96,
        # 0.1 instead of the default 0.02: with 0.02 the random model's greedy continuation
        # degenerates to one repeated token, which would make a weak generation test.
        initializer_range=0.1,
        attn_implementation=attn,
    )


@torch.no_grad()
def make_gpt2(manifest: dict) -> None:
    out = FIX / "tiny-gpt2"
    torch.manual_seed(0)
    model = GPT2LMHeadModel(gpt2_config())
    perturb_norms_and_biases(model, seed=1)
    assert abs(model.transformer.wte.weight.std().item() - 0.1) < 0.02
    model.eval()
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()

    model.save_pretrained(out, safe_serialization=True)
    keys = sorted(load_file(str(out / "model.safetensors")).keys())
    assert all(k.startswith("transformer.") for k in keys), keys  # lm_head dropped (tied)

    # prefix-stripped PyTorch checkpoint like openai-community/gpt2's pytorch_model.bin,
    # plus the attn.bias / attn.masked_bias buffers such checkpoints carry (non-persistent
    # in transformers 4.57.6, so we add the model's own buffer values).
    sd = model.state_dict()
    assert not any(k.endswith(".attn.bias") or k.endswith(".attn.masked_bias") for k in sd)
    bin_sd = {k[len("transformer."):]: v.clone() for k, v in sd.items() if k.startswith("transformer.")}
    for i, blk in enumerate(model.transformer.h):
        bin_sd[f"h.{i}.attn.bias"] = blk.attn.bias.clone()
        bin_sd[f"h.{i}.attn.masked_bias"] = blk.attn.masked_bias.clone()
    torch.save(bin_sd, out / "pytorch_model.bin")

    ids = torch.tensor(GPT2_INPUT_IDS, dtype=torch.long)
    mask = torch.tensor(GPT2_MASK, dtype=torch.long)
    logits = model(input_ids=ids, attention_mask=mask).logits

    # position-id behaviour of a plain forward: default = arange (cache_position), NOT
    # derived from the attention mask. (generate() derives cumsum(mask)-1 instead.)
    arange = torch.arange(ids.shape[1]).unsqueeze(0).expand_as(ids)
    close(model(input_ids=ids, attention_mask=mask, position_ids=arange).logits, logits, "GPT-2 default pos ids", 0.0)
    from_mask = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
    lm = model(input_ids=ids, attention_mask=mask, position_ids=from_mask).logits
    close(lm[mask.bool()], logits[mask.bool()], "GPT-2 mask-derived pos ids (valid positions)", 0.0)
    pad_diff = (lm - logits)[~mask.bool()].abs().max().item()
    assert pad_diff > 0.0  # only padded positions see different position ids

    # valid positions of the padded row == running that row unpadded
    n1 = int(mask[1].sum())
    row1 = model(input_ids=ids[1:2, :n1]).logits
    close(row1[0], logits[1, :n1], "GPT-2 padded vs unpadded row")

    # sdpa agrees with the eager reference
    sdpa = GPT2LMHeadModel(gpt2_config("sdpa")).eval()
    sdpa.load_state_dict(sd)
    close(sdpa(input_ids=ids, attention_mask=mask).logits[mask.bool()], logits[mask.bool()], "GPT-2 sdpa vs eager")

    # greedy generation
    prompt = torch.tensor(GREEDY_PROMPT, dtype=torch.long)
    gen = model.generate(
        prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=10, do_sample=False, pad_token_id=96
    )
    # the same with a no-cache argmax loop (what a simple Rust implementation does)
    seq = prompt.clone()
    gaps = []
    for _ in range(10):
        top = model(input_ids=seq).logits[0, -1].topk(2)
        gaps.append((top.values[0] - top.values[1]).item())
        nxt = top.indices[:1].view(1, 1)
        seq = torch.cat([seq, nxt], dim=1)
        if int(nxt) == 96:
            break
    assert torch.equal(seq, gen), (seq, gen)
    # argmax must be robust to f32 rounding differences in another implementation
    assert min(gaps) > 1e-2, gaps
    assert len(set(gen[0, prompt.shape[1]:].tolist())) > 2, gen  # not degenerate

    golden = {
        "input_ids": tensor_entry(ids),
        "attention_mask": tensor_entry(mask),
        "logits": tensor_entry(logits),
        "logits_row1_unpadded": tensor_entry(row1),
        "greedy_prompt": tensor_entry(prompt),
        "greedy_output": tensor_entry(gen),
        "notes": (
            "GPT2LMHeadModel(config), torch.manual_seed(0) init, then every LayerNorm weight := "
            "1+0.1*randn and every bias := 0.05*randn (generator seed 1, sorted-name order); eval, fp32, "
            "CPU, eager attention; lm_head tied to wte. logits = model(input_ids, attention_mask) with "
            "DEFAULT position ids = arange(seq_len) for every row (transformers does NOT derive them from "
            "the mask in a plain forward; generate() does: cumsum(mask)-1, pads set to 1). With right "
            "padding this only changes the logits at padded positions. Padded query positions attend to "
            "the unmasked earlier keys. logits_row1_unpadded = row 1 run alone without pads (equals "
            "logits[1,:3]). greedy_output = model.generate(greedy_prompt, max_new_tokens=10, "
            "do_sample=False, pad_token_id=96) (eos 96 would stop early), full sequence incl. prompt; "
            "identical to a no-cache argmax loop; the top-1/top-2 logit gap is >= 1e-2 at every step. "
            "config.initializer_range = 0.1 (not 0.02) so the greedy continuation is not one repeated token."
        ),
    }
    write_json(out / "golden.json", golden)
    manifest["tiny-gpt2"] = {
        "params": sum(p.numel() for p in model.parameters()),
        "greedy_output": gen.tolist(),
        "greedy_min_top1_top2_logit_gap": round(min(gaps), 4),
    }

    counts = {}
    for idx, name in enumerate(GPT2_ADAPTERS):
        m = copy.deepcopy(model)
        adapters.init(m)
        m.add_adapter(name, config=AdapterConfig.load(name, reduction_factor=REDUCTION_FACTOR))
        m.set_active_adapters(name)
        nparams = randomize_adapter(m, name, seed=200 + idx)
        m.eval()

        log: list = []
        hs = install_gpt2_site_checks(m, name, log)
        la = m(input_ids=ids, attention_mask=mask).logits
        for h in hs:
            h.remove()
        assert log, f"no adapter site ran for {name}"
        assert (la - logits).abs().max().item() > 1e-2

        st = adapter_state(m, name)
        assert sum(v.numel() for v in st.values()) == nparams
        (out / "adapters").mkdir(parents=True, exist_ok=True)
        save_file(st, str(out / "adapters" / f"{name}.safetensors"), metadata={"format": "pt"})
        save_hub_dir(m, name, out / "adapters" / f"{name}-hub")
        hub = load_file(str(out / "adapters" / f"{name}-hub" / "adapter.safetensors"))
        assert sorted(hub) == sorted(st) and all(torch.equal(hub[k], st[k]) for k in st)

        write_json(
            out / "adapters" / f"{name}.json",
            {
                "adapter_config": config_dict(m, name),
                "adapter_param_count": nparams,
                "checked_sites": log,
                "logits": tensor_entry(la),
                "notes": (
                    f"tiny-gpt2 + AdapterHub '{name}' (reduction_factor {REDUCTION_FACTOR} -> bottleneck "
                    f"{16 // REDUCTION_FACTOR}); adapters.init(GPT2LMHeadModel); ALL adapter params := "
                    f"0.1*randn (generator seed {200 + idx}, sorted-name order); eval. Inputs = golden.json "
                    "input_ids/attention_mask, default position ids."
                ),
            },
        )
        counts[name] = nparams
    manifest["tiny-gpt2"]["adapter_param_counts"] = counts


# --------------------------------------------------------------------------------------
# tiny RoBERTa (+ a tiny byte-level BPE tokenizer; the Hub is not needed)
# --------------------------------------------------------------------------------------

ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # ids 0..4, as in roberta-base
ROBERTA_PAD = 1
ROBERTA_CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "a tiny roberta model reads byte level pairs",
    "hello world, hello adapters!",
    "the cat sat on the mat and the dog sat on the log",
    "positions start after the padding index",
]
ROBERTA_TEXTS = [
    "the quick brown fox jumps over the lazy dog",
    "hello world",
    "a cat, a dog!",
    "Unseen WORDS: byte-level ü",
]
ROBERTA_PAIRS = [["hello world", "the cat sat"], ["positions", "start after padding"]]


def roberta_tokenizer() -> Tokenizer:
    """Byte-level BPE trained on ROBERTA_CORPUS (deterministic), RoBERTa's <s> A </s></s> B </s>
    post-processor, padding with <pad> (id 1) and NO truncation, like roberta-base's file."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        min_frequency=1,
        show_progress=False,
        special_tokens=ROBERTA_SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(ROBERTA_CORPUS, trainer=trainer)
    tok.post_processor = processors.RobertaProcessing(
        sep=("</s>", 2), cls=("<s>", 0), trim_offsets=True, add_prefix_space=False
    )
    tok.enable_padding(pad_id=ROBERTA_PAD, pad_token="<pad>")
    return tok


def roberta_config(vocab_size: int, attn: str = "eager") -> RobertaConfig:
    return RobertaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=34,  # usable length 34 - pad 1 - 1 = 32, like roberta-base's 514 -> 512
        type_vocab_size=1,
        hidden_act="gelu",
        layer_norm_eps=1e-5,
        pad_token_id=ROBERTA_PAD,
        bos_token_id=0,
        eos_token_id=2,
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        attn_implementation=attn,
    )


@torch.no_grad()
def make_roberta(manifest: dict) -> None:
    out = FIX / "tiny-roberta"
    out.mkdir(parents=True, exist_ok=True)
    tok = roberta_tokenizer()
    assert tok.to_str() == roberta_tokenizer().to_str()  # BPE training is deterministic
    tok.save(str(out / "tokenizer.json"))
    assert [tok.token_to_id(t) for t in ROBERTA_SPECIALS] == [0, 1, 2, 3, 4]

    enc = tok.encode_batch(ROBERTA_TEXTS)  # padded to the longest, on the right
    pair_enc = [tok.encode(a, b) for a, b in ROBERTA_PAIRS]
    plain = [tok.encode(t, add_special_tokens=False).ids for t in ROBERTA_TEXTS]

    torch.manual_seed(0)
    model = RobertaModel(roberta_config(tok.get_vocab_size()), add_pooling_layer=True)
    perturb_norms_and_biases(model, seed=1)
    model.eval()
    sd = model.state_dict()
    model.config.save_pretrained(out)
    # RobertaFor* checkpoints carry the "roberta." prefix; loaders must strip it.
    save_file({f"roberta.{k}": v.contiguous() for k, v in sd.items()}, str(out / "model.safetensors"),
              metadata={"format": "pt"})

    # Batch: rows 0-3 = the tokenizer's right-padded batch; row 4 = row 1 LEFT-padded; row 5 =
    # row 2 with two pad ids in the middle (masked). Position ids come from the ids (pads get
    # padding_idx, the k-th non-pad token padding_idx + k), so rows 4/5 check the offset.
    ids = [list(e.ids) for e in enc]
    mask = [list(e.attention_mask) for e in enc]
    seq = len(ids[0])
    n1 = sum(mask[1])
    ids.append([ROBERTA_PAD] * (seq - n1) + ids[1][:n1])
    mask.append([0] * (seq - n1) + [1] * n1)
    n2 = sum(mask[2])
    mid = ids[2][:3] + [ROBERTA_PAD, ROBERTA_PAD] + ids[2][3:n2]
    ids.append(mid + [ROBERTA_PAD] * (seq - len(mid)))
    mask.append([1, 1, 1, 0, 0] + [1] * (n2 - 3) + [0] * (seq - len(mid)))
    input_ids = torch.tensor(ids, dtype=torch.long)
    attention_mask = torch.tensor(mask, dtype=torch.long)
    assert len(mid) <= seq

    o = model(input_ids=input_ids, attention_mask=attention_mask)
    pos = create_position_ids_from_input_ids(input_ids, ROBERTA_PAD)
    # the offset matters: 0..seq positions give other hidden states on real tokens
    naive = model(input_ids=input_ids, attention_mask=attention_mask,
                  position_ids=torch.arange(seq).unsqueeze(0).expand_as(input_ids))
    assert (naive.last_hidden_state - o.last_hidden_state)[attention_mask.bool()].abs().max() > 1e-2
    # left padding leaves the real tokens' outputs unchanged (positions follow the ids)
    close(o.last_hidden_state[4, seq - n1:], o.last_hidden_state[1, :n1], "RoBERTa left vs right padding")
    sdpa = RobertaModel(roberta_config(tok.get_vocab_size(), "sdpa"), add_pooling_layer=True).eval()
    sdpa.load_state_dict(sd)
    close(sdpa(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state[attention_mask.bool()],
          o.last_hidden_state[attention_mask.bool()], "RoBERTa sdpa vs eager")

    golden = {
        "input_ids": tensor_entry(input_ids),
        "attention_mask": tensor_entry(attention_mask),
        "position_ids": tensor_entry(pos),
        "last_hidden_state": tensor_entry(o.last_hidden_state),
        "pooler_output": tensor_entry(o.pooler_output),
        "texts": ROBERTA_TEXTS,
        "text_ids": [list(e.ids) for e in enc],
        "text_attention_mask": [list(e.attention_mask) for e in enc],
        "plain_ids": plain,
        "pairs": ROBERTA_PAIRS,
        "pair_ids": [list(e.ids) for e in pair_enc],
        "pair_type_ids": [list(e.type_ids) for e in pair_enc],
        "notes": (
            "RobertaModel(config, add_pooling_layer=True), torch.manual_seed(0) init, then every LayerNorm "
            "weight := 1+0.1*randn and every bias := 0.05*randn (generator seed 1, sorted-name order); eval, "
            "fp32, CPU, eager attention. model.safetensors keys carry the 'roberta.' prefix. Outputs of "
            "model(input_ids, attention_mask) with HF's default position ids (from the ids: pad -> 1, k-th "
            "non-pad token -> 1 + k), recorded in position_ids. Rows 0-3 = tokenizer.encode_batch(texts) "
            "(right-padded with <pad> = 1); row 4 = row 1 left-padded; row 5 = row 2 with two masked pad ids "
            "after its third token. text_ids/text_attention_mask = the same padded batch from the tokenizers "
            "library, plain_ids = encode(text, add_special_tokens=False), pair_ids/pair_type_ids = "
            "encode(a, b) (unpadded)."
        ),
    }
    write_json(out / "golden.json", golden)
    manifest["tiny-roberta"] = {"params": sum(p.numel() for p in model.parameters()),
                                "vocab_size": tok.get_vocab_size()}


# --------------------------------------------------------------------------------------


STEPS = {
    # name: (function, fixture directory it owns or None)
    "tiny-bert": (make_bert, "tiny-bert"),
    "bert-f16-bin": (make_bert_f16_bin, None),
    "minilm-counts": (check_minilm_counts, None),
    "tiny-gpt2": (make_gpt2, "tiny-gpt2"),
    "tiny-roberta": (make_roberta, "tiny-roberta"),
    "trajectory": (make_trajectory, "tiny-bert/trajectory"),
    # issue 10 (AdapterHub composition and file interop); the code lives in scripts/hub_*.py
    "compose-bert": (lambda m: _hub("hub_compose").make_compose_bert(m), "tiny-bert/compose"),
    "compose-gpt2": (lambda m: _hub("hub_compose").make_compose_gpt2(m), "tiny-gpt2/compose"),
    "hub-dirs": (lambda m: _hub("hub_dirs").make_hub_dirs(m), None),  # owns tiny-{bert,gpt2}/hub
    # checks the directories the Rust test adapterhub_roundtrip wrote (run that first)
    "hub-roundtrip": (lambda m: _hub("hub_roundtrip").make_hub_roundtrip(m), None),
    # issue 13 (PEFT 0.21.2 LoRA directories); the code lives in scripts/peft_lora.py
    "peft-lora": (lambda m: _hub("peft_lora").make_peft_lora(m), None),  # owns tiny-{bert,gpt2}/peft
    # checks the directories the Rust test peft_roundtrip wrote (run that first)
    "peft-roundtrip": (lambda m: _hub("peft_lora").make_peft_roundtrip(m), None),
    # issue 13 (AdapterHub prefix tuning); the code lives in scripts/prefix_tuning.py
    "prefix-tuning": (lambda m: _hub("prefix_tuning").make_prefix_tuning(m), None),  # owns tiny-{bert,gpt2}/prefix
    # issue 13 (GPT-2 prompt tuning as PEFT 0.21.2); the code lives in scripts/prompt_tuning_gpt2.py
    "prompt-tuning-gpt2": (lambda m: _hub("prompt_tuning_gpt2").make_prompt_tuning_gpt2(m), "tiny-gpt2/prompt"),
    # issue 13 (one backward pass of prefix / prompt tuning); the code lives in scripts/prefix_grads.py
    "prefix-grads": (lambda m: _hub("prefix_grads").make_prefix_grads(m), None),  # owns tiny-{bert,gpt2}/grads
    # issue 13 (AdapterHub LoRA / IA³ / prefix-tuning directories); the code is scripts/hub_methods.py
    "hub-methods": (lambda m: _hub("hub_methods").make_hub_methods(m), None),  # owns tiny-{bert,gpt2}/hub-methods
    # checks the directories the Rust test hub_methods_roundtrip wrote (run that first)
    "hub-methods-roundtrip": (lambda m: _hub("hub_roundtrip").make_hub_methods_roundtrip(m), None),
}


def _hub(module: str):
    """The issue-10 steps live in their own modules (imported lazily: they import this one)."""
    import importlib

    return importlib.import_module(module)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=list(STEPS), help="run only these steps")
    args = parser.parse_args()
    check_versions()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.set_default_dtype(torch.float32)

    steps = args.only or list(STEPS)
    manifest: dict = {}
    if args.only and (FIX / "MANIFEST.json").is_file():
        manifest = json.loads((FIX / "MANIFEST.json").read_text())
    manifest.update({
        "generated_by": "scripts/make_fixtures.py",
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "adapters": adapters.__version__,
        },
    })
    for name in steps:
        fn, owned = STEPS[name]
        if owned:
            shutil.rmtree(FIX / owned, ignore_errors=True)
        fn(manifest)

    files = sorted(p for p in FIX.rglob("*") if p.is_file() and p.name not in ("MANIFEST.json", "README.md"))
    manifest["files"] = {
        str(p.relative_to(FIX)): {"bytes": p.stat().st_size, "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
        for p in files
    }
    (FIX / "MANIFEST.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    total = sum(v["bytes"] for v in manifest["files"].values())
    print(f"wrote {len(files)} files, {total} bytes under {FIX}")


if __name__ == "__main__":
    main()

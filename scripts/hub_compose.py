"""Steps ``compose-bert`` and ``compose-gpt2`` of ``make_fixtures.py``: several named AdapterHub
adapters on one tiny model, every composition block of adapters 1.3.0 (Stack, Parallel, BatchSplit,
Average, Fuse) and AdapterDrop at inference (``skip_layers``), with golden outputs.

Every adapter site output is re-derived with the closed forms of ``scripts/ADAPTERHUB_MATHS.md``
§7-§9 (``compose_formula`` below, written from the document, not calling AdapterHub's compose
code) through forward hooks and asserted to match AdapterHub to 1e-5.

Run through ``make_fixtures.py --only compose-bert compose-gpt2`` (this module is not a script).
"""

from __future__ import annotations

import copy

import torch
from safetensors.torch import save_file

import adapters
from adapters import AdapterConfig
from adapters.composition import Average, BatchSplit, Fuse, Parallel, Stack

import make_fixtures as mf

# name -> (preset, reduction factor or per-layer mapping, overrides). All adapter params := 0.1*randn.
BERT_NAMED = {
    "a": ("seq_bn", 4, {}),
    "b": ("double_seq_bn", 8, {}),
    "c": ("par_bn", 2, {}),
    "d": ("seq_bn", {"0": 4, "default": 16}, {"non_linearity": "gelu"}),
}
GPT2_NAMED = {
    "a": ("seq_bn", 4, {}),
    "b": ("double_seq_bn", 8, {}),
    "c": ("par_bn", 2, {}),
    "d": ("seq_bn", {"1": 2, "default": 8}, {"non_linearity": "gelu"}),
}
FUSIONS = {"a,d": "dynamic", "a,c": "static"}


def setups() -> list:
    """(key, AdapterHub setup, skip_layers). Chosen so that AdapterHub 1.3.0 runs them (see
    ADAPTERHUB_MATHS.md §7 for the blocks it rejects or crashes on)."""
    return [
        ("single_a", "a", None),
        ("single_b", "b", None),
        ("single_c", "c", None),
        ("single_d", "d", None),
        ("stack_a_b", Stack("a", "b"), None),
        ("stack_c_a", Stack("c", "a"), None),
        ("parallel_a_d", Parallel("a", "d"), None),
        ("parallel_c_a", Parallel("c", "a"), None),
        ("batchsplit_a_d", BatchSplit("a", "d", batch_sizes=[1, 1]), None),
        ("batchsplit_c_a", BatchSplit("c", "a", batch_sizes=[1, 1]), None),
        ("average_a_d", Average("a", "d", weights=[0.7, 0.3]), None),
        ("average_a_c", Average("a", "c", weights=[1.0, 3.0]), None),
        ("average_a_d_unnormalized", Average("a", "d", weights=[0.7, 0.3], normalize_weights=False), None),
        ("fuse_a_d", Fuse("a", "d"), None),
        ("fuse_a_c", Fuse("a", "c"), None),
        ("drop_b_skip0", "b", [0]),
        ("drop_stack_a_b_skip1", Stack("a", "b"), [1]),
        ("drop_fuse_a_d_skip0", Fuse("a", "d"), [0]),
    ]


def setup_dict(setup) -> dict:
    """AdapterHub's own serialisation (``to_dict``); a bare name is written as ``single``."""
    if isinstance(setup, str):
        return {"type": "single", "children": [setup]}
    return setup.to_dict()


# --------------------------------------------------------------------------------------
# closed forms (ADAPTERHUB_MATHS.md §7-§9)
# --------------------------------------------------------------------------------------


def is_par(ad) -> bool:
    return ad.__class__.__name__ == "ParallelAdapter"


def pre(ad, h, x, ln):
    """§2a/§2b pre_forward: (h', r)."""
    assert not ad.add_layer_norm_after and not ad.use_gating and not hasattr(ad, "DropPath")
    if is_par(ad):
        return x, x
    assert ad.residual_before_ln is True
    r = h
    if ad.original_ln_before:
        h = ln(h + x) if ln is not None else h + x
    return h, r


def fwd(ad, h, r):
    """§2a/§2b forward: (o, up) where up = s * f(h) (what Fuse attends over)."""
    up = mf.bottleneck(ad, h)
    return (up if is_par(ad) else up + r), up


def post(ad, o, sub, x, ln):
    assert ad.original_ln_after
    if is_par(ad):
        o = o + sub
    return ln(o + x) if ln is not None else o + x


def fusion_formula(fl, cfg, query, ups, r):
    """§8: ups [k, B, S, H] (each child's up), query/r [B, S, H]."""
    assert not cfg["residual_before"] and not cfg["temperature"]
    q = query @ fl.query.weight.T + fl.query.bias
    k = ups @ fl.key.weight.T + fl.key.bias
    v = ups @ fl.value.weight.T if cfg["value"] else ups  # value has no bias
    scores = torch.einsum("bsh,kbsh->bsk", q, k)
    p = torch.softmax(scores, dim=-1)
    return torch.einsum("bsk,kbsh->bsh", p, v) + r


def compose_formula(setup, ads: dict, fusions: dict, sub, x, ln, batch: int):
    """Output of one site for an active setup: only the adapters of `setup` that exist at this
    site (`ads`) take part; the caller handles 'none present' (fallback) and skip_layers."""
    if isinstance(setup, str):
        setup = Stack(setup)
    kind = type(setup).__name__
    names = [c for c in setup.children]
    assert all(isinstance(c, str) for c in names)
    present = [n for n in names if n in ads]
    if kind == "Stack":
        h, r, last = sub, x, None
        for n in present:
            h, r = pre(ads[n], h, x, ln)
            h, _ = fwd(ads[n], h, r)
            last = n
        return post(ads[last], h, sub, x, ln)
    first, last = names[0], names[-1]
    if kind == "Fuse":
        fl = fusions[setup.name]
        cfg = fl.config
        h, r = pre(ads[last], sub, x, ln)
        query = sub if cfg["query_before_ln"] else h
        ups = torch.stack([fwd(ads[n], h, r)[1] for n in present])
        return post(ads[last], fusion_formula(fl, cfg, query, ups, r), sub, x, ln)
    if kind == "Parallel":
        k = len(names)
        if sub.shape[0] == batch:  # first site of the forward: replicate the batch k times
            sub_in = sub
            sub, x = sub.repeat(k, 1, 1), x.repeat(k, 1, 1)
        else:
            sub_in = sub
        h, r = pre(ads[first], sub, x, ln)
        n_b = h.shape[0] // k
        parts = [fwd(ads[n], h[i * n_b:(i + 1) * n_b], r[i * n_b:(i + 1) * n_b])[0] for i, n in enumerate(names)]
        return post(ads[last], torch.cat(parts), sub_in, x, ln)
    if kind == "BatchSplit":
        h, r = pre(ads[first], sub, x, ln)
        edges = [0]
        for s in setup.batch_sizes:
            edges.append(edges[-1] + s)
        parts = [fwd(ads[n], h[edges[i]:edges[i + 1]], r[edges[i]:edges[i + 1]])[0] for i, n in enumerate(names)]
        return post(ads[last], torch.cat(parts), sub, x, ln)
    if kind == "Average":
        h, r = pre(ads[first], sub, x, ln)
        outs = torch.stack([fwd(ads[n], h, r)[0] for n in present])
        w = torch.tensor(setup.weights)[:, None, None, None]
        # torch.mean over the stacked children: (1/k) * sum_i w_i o_i (not sum_i w_i o_i)
        return post(ads[last], (outs * w).sum(0) / len(present), sub, x, ln)
    raise AssertionError(kind)


def site_active(setup, mod, layer: int, skip) -> bool:
    names = {setup} if isinstance(setup, str) else setup.flatten()
    return not (skip is not None and layer in skip) and bool(names & set(mod.adapters.keys()))


def install_checks(sites, setup, skip, batch: int, log: list, what: str):
    """sites: [(tag, layer, module, args -> (sub, x, ln))]."""
    handles = []
    for tag, layer, mod, unpack in sites:

        def hook(m, args, out, tag=tag, layer=layer, unpack=unpack):
            sub, x, ln = unpack(m, args)
            if site_active(setup, m, layer, skip):
                want = compose_formula(setup, dict(m.adapters.items()), dict(m.adapter_fusion_layer.items()),
                                       sub, x, ln, batch)
                log.append(tag)
            else:  # no adapter of the setup here, or AdapterDrop: the original maths
                want = ln(sub + x) if ln is not None else sub + x
            mf.close(out, want, f"{what} {tag}")

        handles.append(mod.register_forward_hook(hook))
    return handles


def bert_sites(model):
    def unpack(m, args):
        hidden, inp = args
        return m.dropout(m.dense(hidden)), inp, m.LayerNorm

    out = []
    for i, layer in enumerate(model.encoder.layer):
        out.append((f"layer{i}.mh_adapter", i, layer.attention.output, unpack))
        out.append((f"layer{i}.output_adapter", i, layer.output, unpack))
    return out


def gpt2_sites(model):
    def unpack(m, args):
        sub, x, ln = args
        assert ln is None
        return sub, x, None

    out = []
    for i, block in enumerate(model.transformer.h):
        out.append((f"h{i}.mh_adapter", i, block.attention_adapters, unpack))
        out.append((f"h{i}.output_adapter", i, block.output_adapters, unpack))
    return out


@torch.no_grad()
def randomize_fusion(model, name: str, seed: int) -> int:
    """query/key := 0.3*randn (+ bias 0.1*randn) so the softmax over adapters is far from uniform;
    value := I + 0.1*randn (AdapterHub initialises it near I)."""
    g = torch.Generator().manual_seed(seed)
    n = 0
    tag = f"adapter_fusion_layer.{name}."
    for pname, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        if tag not in pname:
            continue
        leaf = pname[pname.index(tag) + len(tag):]
        if leaf == "value.weight":
            p.copy_(torch.eye(p.shape[0]) + 0.1 * torch.randn(p.shape, generator=g))
        elif leaf.endswith("weight"):
            p.copy_(0.3 * torch.randn(p.shape, generator=g))
        else:
            p.copy_(0.1 * torch.randn(p.shape, generator=g))
        n += p.numel()
    assert n > 0, name
    return n


def add_named(model, named: dict, seed0: int) -> dict:
    counts = {}
    for i, (name, (preset, rf, over)) in enumerate(named.items()):
        model.add_adapter(name, config=AdapterConfig.load(preset, reduction_factor=rf, **over))
        counts[name] = mf.randomize_adapter(model, name, seed=seed0 + i)
    for i, (fname, preset) in enumerate(FUSIONS.items()):
        model.add_adapter_fusion(Fuse(*fname.split(",")), preset)
        counts[f"fusion:{fname}"] = randomize_fusion(model, fname, seed=seed0 + 50 + i)
    return counts


def named_state(model) -> dict:
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()
            if ".adapters." in k or ".adapter_fusion_layer." in k}


def run_all(model, sites, forward, batch: int, what: str, reference) -> dict:
    out = {}
    for key, setup, skip in setups():
        model.set_active_adapters(setup, skip_layers=skip)
        log: list = []
        hs = install_checks(sites, setup, skip, batch, log, f"{what} {key}")
        y = forward()
        for h in hs:
            h.remove()
        assert log, f"{what} {key}: no adapter site ran"
        ref = reference.repeat(len(setup), 1, 1) if isinstance(setup, Parallel) else reference
        assert (y - ref).abs().max().item() > 1e-2, f"{what} {key} has no visible effect"
        out[key] = (setup, skip, log, y)
    model.set_active_adapters(None)

    # facts the document states, checked here
    single = {k[len("single_"):]: v[3] for k, v in out.items() if k.startswith("single_")}
    par = out["parallel_a_d"][3]
    mf.close(par[:batch], single["a"], f"{what} Parallel(a,d) channel a == a alone", 0.0)
    mf.close(par[batch:], single["d"], f"{what} Parallel(a,d) channel d == d alone", 0.0)
    bs = out["batchsplit_a_d"][3]
    mf.close(bs[:1], single["a"][:1], f"{what} BatchSplit(a,d) rows 0 == a alone", 0.0)
    mf.close(bs[1:2], single["d"][1:2], f"{what} BatchSplit(a,d) rows 1 == d alone", 0.0)
    mixed = (out["parallel_c_a"][3][:batch] - single["c"]).abs().max().item()
    assert mixed > 1e-2, f"{what} Parallel(c,a): channel c unexpectedly equals c alone ({mixed})"
    return out


def record(out: dict, hidden_key: str) -> dict:
    rec = {}
    for key, (setup, skip, log, y) in out.items():
        rec[f"{key}.{hidden_key}"] = mf.tensor_entry(y)
        rec[f"{key}.setup"] = {"setup": setup_dict(setup), "skip_layers": skip, "checked_sites": log}
    return rec


def configs(model, named: dict) -> dict:
    return {
        "adapter_configs": {n: mf.config_dict(model, n) for n in named},
        "fusion_configs": {f: model.adapters_config.get_fusion(f)[0].to_dict() for f in FUSIONS},
    }


@torch.no_grad()
def make_compose_bert(manifest: dict) -> None:
    out_dir = mf.FIX / "tiny-bert" / "compose"
    from transformers import BertModel

    base = BertModel.from_pretrained(mf.FIX / "tiny-bert", attn_implementation="eager").eval()
    inp = mf.bert_inputs()
    ref = base(**inp).last_hidden_state
    # 2 rows are enough and keep the files small: rows 0 (two segments, unpadded) and 1 (padded)
    inp = {k: v[:2] for k, v in inp.items()}
    ref = ref[:2]
    model = copy.deepcopy(base)
    adapters.init(model)
    counts = add_named(model, BERT_NAMED, seed0=600)
    model.eval()
    out = run_all(model, bert_sites(model), lambda: model(**inp).last_hidden_state, 2, "BERT", ref)

    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(named_state(model), str(out_dir / "adapters.safetensors"), metadata={"format": "pt"})
    mf.write_json(out_dir / "compose.json", {
        **{k: mf.tensor_entry(v) for k, v in inp.items()},
        **configs(model, BERT_NAMED),
        "param_counts": counts,
        **record(out, "last_hidden_state"),
        "notes": NOTES.format(model="tiny-bert (adapters.init(BertModel))", out="last_hidden_state [B,7,32]"),
    })
    manifest.setdefault("tiny-bert", {})["compose_param_counts"] = counts


@torch.no_grad()
def make_compose_gpt2(manifest: dict) -> None:
    out_dir = mf.FIX / "tiny-gpt2" / "compose"
    from transformers import GPT2LMHeadModel

    base = GPT2LMHeadModel.from_pretrained(mf.FIX / "tiny-gpt2", attn_implementation="eager").eval()
    ids = torch.tensor(mf.GPT2_INPUT_IDS, dtype=torch.long)
    mask = torch.tensor(mf.GPT2_MASK, dtype=torch.long)

    def hidden(m):
        return m(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[-1]

    ref = hidden(base)
    model = copy.deepcopy(base)
    adapters.init(model)
    counts = add_named(model, GPT2_NAMED, seed0=700)
    model.eval()
    out = run_all(model, gpt2_sites(model), lambda: hidden(model), 2, "GPT-2", ref)
    # the final hidden state is after ln_f; the logits are its product with the tied wte
    model.set_active_adapters("a")
    la = model(input_ids=ids, attention_mask=mask).logits
    mf.close(la, out["single_a"][3] @ model.transformer.wte.weight.T, "GPT-2 logits = hidden @ wte^T")
    model.set_active_adapters(None)

    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(named_state(model), str(out_dir / "adapters.safetensors"), metadata={"format": "pt"})
    mf.write_json(out_dir / "compose.json", {
        "input_ids": mf.tensor_entry(ids),
        "attention_mask": mf.tensor_entry(mask),
        **configs(model, GPT2_NAMED),
        "param_counts": counts,
        **record(out, "hidden"),
        "notes": NOTES.format(model="tiny-gpt2 (adapters.init(GPT2LMHeadModel))",
                              out="hidden = final hidden state after ln_f [B,6,16] (logits = hidden @ wte^T)"),
    })
    manifest.setdefault("tiny-gpt2", {})["compose_param_counts"] = counts


NOTES = (
    "{model} with four named AdapterHub adapters added in the order a, b, c, d (see adapter_configs; "
    "d has a per-layer reduction_factor and non_linearity gelu) and two AdapterFusion layers "
    "('a,d' dynamic, 'a,c' static). Every adapter param := 0.1*randn (generator seed base+i, sorted-name "
    "order); fusion query/key weight := 0.3*randn, biases 0.1*randn, value.weight := I + 0.1*randn. "
    "adapters.safetensors = every adapter and fusion tensor under its AdapterHub state-dict name "
    "([out,in] weights). For each setup key K: K.setup = AdapterHub's setup.to_dict() + skip_layers "
    "(AdapterDrop at inference: set_active_adapters(setup, skip_layers)) + the sites whose closed form "
    "was asserted; K.<out> = {out} for the inputs here, eval mode. Parallel outputs have k*B rows, "
    "channel-major (rows 0..B = first child). See scripts/ADAPTERHUB_MATHS.md §7-§9."
)

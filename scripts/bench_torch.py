#!/usr/bin/env python
"""PyTorch + AdapterHub side of burn-peft's benchmark (scripts/bench.sh), CPU.

Pinned environment (the peer benchmark's):
    torch==2.15.0  transformers==4.57.6  adapters==1.3.0  (Python 3.11)

The workloads are the peer's (shared/bench/peer/bench_peer.py), written again concisely so that
both sides run in the same invocation on the same machine:

  w1 --method seq_bn|double_seq_bn|head|full [--dropout P] [--repeats 3]
        batch 32, max_length 64, padding="longest", train.tsv rows 0..2079 in file order,
        5 warm-up + 60 timed steps; AdamW(lr, weight_decay=0), constant lr; cross-entropy;
        the timed region is the steps only (batches are tokenized before), each step ends
        with loss.item()
  w2 --variant base|head|seq_bn|double_seq_bn [--passes 3]
        dev.tsv (872 rows) in batches of 64, eval() + inference_mode(), one untimed warm-up
        pass, then timed passes
  w3 --method M [--tries 1]   peak RSS (wait4 ru_maxrss) of a child running `w1 --repeats 1`
  overhead [--reps 30] [--rounds 5]   one BERT layer with AdapterHub adapters vs plain HF

Every command prints one JSON line (and appends it to --json-out). Assets: --model / --data,
else $PEFT_ASSETS_DIR/models/all-MiniLM-L6-v2 and $PEFT_ASSETS_DIR/data/sst2.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MAX_LEN = 64
SEED = 0
LR = {"seq_bn": 1e-3, "double_seq_bn": 1e-3, "head": 1e-3, "full": 2e-5}
HEAD = "sst2"


def log(*a):
    print("[bench_torch]", *a, file=sys.stderr, flush=True)


def assets(a, flag, rel):
    path = getattr(a, flag) or os.path.join(os.environ.get("PEFT_ASSETS_DIR", ""), rel)
    if not os.path.isdir(path):
        raise SystemExit(f"{path} not found: pass --{flag} or set PEFT_ASSETS_DIR")
    return path


def versions():
    import adapters
    import torch
    import transformers
    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "adapters": adapters.__version__,
            "torch_threads": torch.get_num_threads()}


def stats(xs):
    s = sorted(xs)
    n = len(s)
    med = s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])
    return {"median": med, "min": s[0], "max": s[-1], "n": n, "all": xs}


class Noise:
    """Cores other processes kept busy during the timed region (as the peer measures it)."""

    @staticmethod
    def _busy():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
        return sum(v) - v[3] - v[4], v[1]  # busy (niced included), niced

    def __enter__(self):
        (self.b0, self.n0), t = self._busy(), os.times()
        self.o0, self.w0, self.l0 = t.user + t.system, time.perf_counter(), os.getloadavg()[0]
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.w0
        t = os.times()
        own = t.user + t.system - self.o0
        b1, n1 = self._busy()
        tck = os.sysconf("SC_CLK_TCK")
        busy = (b1 - self.b0) / tck
        self.rec = {"wall_s": self.wall, "own_cores": round(own / self.wall, 3),
                    "foreign_cores": round(max(0.0, (busy - own) / self.wall), 3),
                    "foreign_niced_cores": round((n1 - self.n0) / tck / self.wall, 3),
                    "loadavg_before": self.l0, "loadavg_after": os.getloadavg()[0]}
        return False


def emit(a, rec):
    line = json.dumps(rec)
    if a.json_out:
        with open(a.json_out, "a") as f:
            f.write(line + "\n")
    print(line, flush=True)


def setup():
    import torch
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", os.cpu_count() or 2)))
    return torch


def read_tsv(data_dir, name, n=None):
    texts, labels = [], []
    with open(os.path.join(data_dir, name), encoding="utf-8") as f:
        assert f.readline().rstrip("\n").split("\t") == ["sentence", "label"]
        for line in f:
            s, l = line.rstrip("\n").split("\t")
            texts.append(s.rstrip())
            labels.append(int(l))
    return (texts[:n], labels[:n]) if n else (texts, labels)


def batches(model_dir, texts, labels, bs):
    import torch
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(model_dir)
    out = []
    for i in range(0, len(texts), bs):
        enc = dict(tok(texts[i:i + bs], padding="longest", truncation=True, max_length=MAX_LEN,
                       return_tensors="pt"))
        enc["labels"] = torch.tensor(labels[i:i + bs])
        out.append(enc)
    return out


def build(model_dir, method, training):
    """AdapterHub model + AdapterHub head for seq_bn/double_seq_bn/head; HF
    BertForSequenceClassification for full/base. Seeded like the peer."""
    import torch
    torch.manual_seed(SEED)
    if method in ("seq_bn", "double_seq_bn", "head"):
        from adapters import AutoAdapterModel
        m = AutoAdapterModel.from_pretrained(model_dir)
        if method != "head":
            m.add_adapter(HEAD, config=method)
        m.add_classification_head(HEAD, num_labels=2)
        if method == "head":
            m.requires_grad_(False)
            m.heads[HEAD].requires_grad_(True)
        elif training:
            m.train_adapter(HEAD)
        else:
            m.set_active_adapters(HEAD)
        m.active_head = HEAD
    else:
        from transformers import BertForSequenceClassification
        m = BertForSequenceClassification.from_pretrained(model_dir, num_labels=2)
    m.train(training)
    return m


def set_dropout(model, p):
    import torch
    for mod in model.modules():
        if isinstance(mod, torch.nn.Dropout):
            mod.p = p
        if isinstance(getattr(mod, "dropout_prob", None), float):
            mod.dropout_prob = p


def logits(model, b):
    return model(input_ids=b["input_ids"], attention_mask=b["attention_mask"],
                 token_type_ids=b["token_type_ids"]).logits


def peak_rss_kb():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def cmd_w1(a):
    torch = setup()
    import torch.nn.functional as F
    model_dir, data_dir = assets(a, "model", "models/all-MiniLM-L6-v2"), assets(a, "data", "data/sst2")
    n = (a.warmup + a.steps) * 32
    texts, labels = read_tsv(data_dir, "train.tsv", n)
    t0 = time.perf_counter()
    bs = batches(model_dir, texts, labels, 32)
    tok_s = time.perf_counter() - t0
    timed = bs[a.warmup:]
    padded = sum(int(b["input_ids"].numel()) for b in timed)
    real = sum(int(b["attention_mask"].sum()) for b in timed)
    reps = []
    for r in range(a.repeats):
        model = build(model_dir, a.method, True)
        if a.dropout is not None:
            set_dropout(model, a.dropout)
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LR[a.method],
                                weight_decay=0.0)

        def step(b):
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(logits(model, b), b["labels"])
            loss.backward()
            opt.step()
            return loss.item()

        for b in bs[:a.warmup]:
            step(b)
        ms, losses = [], []
        with Noise() as nm:
            for b in timed:
                s0 = time.perf_counter()
                losses.append(step(b))
                ms.append(1000 * (time.perf_counter() - s0))
        rec = dict(nm.rec, repeat=r, examples_per_s=len(timed) * 32 / nm.wall,
                   median_step_ms=stats(ms)["median"], first_loss=losses[0], last_loss=losses[-1])
        log(f"w1 {a.method} rep {r}: {rec['examples_per_s']:.1f} ex/s, foreign {rec['foreign_cores']}")
        reps.append(rec)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in model.parameters())
        del model, opt
    eps = [r["examples_per_s"] for r in reps]
    emit(a, {"impl": "torch", "workload": "w1", "method": a.method,
             "dropout": 0.1 if a.dropout is None else a.dropout, "batch_size": 32,
             "warmup_steps": a.warmup, "timed_steps": len(timed), "timed_padded_tokens": padded,
             "timed_real_tokens": real, "tokenize_s": tok_s,
             "model": {"trainable_params": trainable, "total_params": total},
             "examples_per_s": stats(eps),
             "median_step_ms": stats([r["median_step_ms"] for r in reps])["median"],
             "repeats": reps, "peak_rss_kb": peak_rss_kb(), "versions": versions()})


def cmd_w2(a):
    torch = setup()
    model_dir, data_dir = assets(a, "model", "models/all-MiniLM-L6-v2"), assets(a, "data", "data/sst2")
    texts, labels = read_tsv(data_dir, "dev.tsv")
    bs = batches(model_dir, texts, labels, 64)
    model = build(model_dir, a.variant, False)

    def one_pass():
        with torch.inference_mode():
            for b in bs:
                logits(model, b)

    one_pass()
    reps = []
    for p in range(a.passes):
        with Noise() as nm:
            one_pass()
        reps.append(dict(nm.rec, examples_per_s=len(texts) / nm.wall, **{"pass": p}))
        log(f"w2 {a.variant} pass {p}: {reps[-1]['examples_per_s']:.1f} ex/s")
    emit(a, {"impl": "torch", "workload": "w2", "variant": a.variant, "batch_size": 64,
             "n_examples": len(texts), "padded_tokens": sum(int(b["input_ids"].numel()) for b in bs),
             "examples_per_s": stats([r["examples_per_s"] for r in reps]), "passes": reps,
             "versions": versions()})


def cmd_w3(a):
    runs = []
    for t in range(a.tries):
        cmd = [sys.executable, os.path.abspath(__file__), "w1", "--method", a.method, "--repeats", "1"]
        for flag in ("model", "data"):
            if getattr(a, flag):
                cmd += [f"--{flag}", getattr(a, flag)]
        if a.dropout is not None:
            cmd += ["--dropout", str(a.dropout)]
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            raise SystemExit(f"w3 child failed ({p.returncode})")
        runs.append({"try": t, "max_rss_kb": ru.ru_maxrss, "max_rss_mb": ru.ru_maxrss / 1024})
        log(f"w3 {a.method} try {t}: {ru.ru_maxrss / 1024:.1f} MB")
    emit(a, {"impl": "torch", "workload": "w3", "method": a.method,
             "what": "wait4 ru_maxrss of a child running `w1 --repeats 1`",
             "max_rss_mb": stats([r["max_rss_mb"] for r in runs]), "runs": runs, "versions": versions()})


def cmd_overhead(a):
    torch = setup()
    from adapters import AutoAdapterModel
    from transformers import BertModel
    model_dir = assets(a, "model", "models/all-MiniLM-L6-v2")
    torch.manual_seed(SEED)
    plain = BertModel.from_pretrained(model_dir).encoder.layer[0]
    layers = {"plain": plain}
    keep = []
    for v in ("seq_bn", "double_seq_bn"):
        m = AutoAdapterModel.from_pretrained(model_dir)
        m.add_adapter(HEAD, config=v)
        m.train_adapter(HEAD)  # freezes the base, activates the adapter
        keep.append(m)
        layers[v] = m.bert.encoder.layer[0]
    plain.requires_grad_(False)
    torch.manual_seed(SEED + 1)
    x = torch.randn(a.batch_size, a.seq, plain.attention.self.query.in_features)
    mask = torch.zeros(a.batch_size, 1, 1, a.seq)
    results = {}
    for mode in ("infer", "train"):
        def run(layer):
            if mode == "train":
                layer.train()
                xi = x.clone().requires_grad_(True)
                y = layer(xi, mask)[0]
                y.sum().backward()
            else:
                layer.eval()
                with torch.inference_mode():
                    layer(x, mask)

        names = list(layers)
        for nme in names:
            for _ in range(3):
                run(layers[nme])
        times = {nme: [] for nme in names}
        for r in range(a.rounds):
            for k in range(len(names)):
                nme = names[(k + r) % len(names)]
                t0 = time.perf_counter()
                for _ in range(a.reps):
                    run(layers[nme])
                times[nme].append(1000 * (time.perf_counter() - t0) / a.reps)
        p = stats(times["plain"])["median"]
        results[mode] = {n: {"ms": stats(times[n]), "ratio_vs_plain": stats(times[n])["median"] / p}
                         for n in names}
        log(mode, {n: round(results[mode][n]["ratio_vs_plain"], 3) for n in names})
    emit(a, {"impl": "torch", "workload": "overhead", "input": [a.batch_size, a.seq, x.shape[-1]],
             "what": "one BERT layer (HF plain vs AdapterHub with adapter)",
             "reps_per_round": a.reps, "rounds": a.rounds, "results": results, "versions": versions()})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model")
    ap.add_argument("--data")
    ap.add_argument("--json-out")
    sp = ap.add_subparsers(dest="cmd", required=True)
    p = sp.add_parser("w1")
    p.add_argument("--method", choices=list(LR), required=True)
    p.add_argument("--dropout", type=float)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--steps", type=int, default=60)
    p.set_defaults(fn=cmd_w1)
    p = sp.add_parser("w2")
    p.add_argument("--variant", choices=["base", "head", "seq_bn", "double_seq_bn"], required=True)
    p.add_argument("--passes", type=int, default=3)
    p.set_defaults(fn=cmd_w2)
    p = sp.add_parser("w3")
    p.add_argument("--method", choices=list(LR), required=True)
    p.add_argument("--dropout", type=float)
    p.add_argument("--tries", type=int, default=1)
    p.set_defaults(fn=cmd_w3)
    p = sp.add_parser("overhead")
    p.add_argument("--reps", type=int, default=30)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seq", type=int, default=39)
    p.set_defaults(fn=cmd_overhead)
    # Accept the common flags after the subcommand too.
    for sub in sp.choices.values():
        sub.add_argument("--model", dest="model_sub")
        sub.add_argument("--data", dest="data_sub")
        sub.add_argument("--json-out", dest="json_out_sub")
    a = ap.parse_args()
    a.model = a.model_sub or a.model
    a.data = a.data_sub or a.data
    a.json_out = a.json_out_sub or a.json_out
    a.fn(a)


if __name__ == "__main__":
    main()

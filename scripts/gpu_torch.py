"""PyTorch side of scripts/gpu-check.sh: the same SST-2-shaped workload as examples/gpu_workload.rs
on the same GPU, so ours and PyTorch's examples/s come from one lease.

The lent GPU machine has torch (CUDA) and transformers but not `adapters`, so the Pfeiffer adapter
(AdapterHub's `seq_bn`: after the feed-forward output, down -> ReLU -> up, residual, before the
output LayerNorm; reduction factor 16) is written here with a forward hook-free wrapper around
`BertOutput`. Random-weight encoders of MiniLM-L6 and BERT-base shape; synthetic token ids with
lengths around a mean of 39 and a maximum of 64, each batch padded to its longest item; training
at batch 32 (frozen base, AdamW on adapters + head), inference at batch 64 under `no_grad`.

    python3 scripts/gpu_torch.py [--device cuda] [--models minilm,bert-base]
        [--train-steps 40] [--infer-batches 14] [--warmup 3]

Prints one table row per (model, phase): examples/s and peak allocated MiB (CUDA only).
"""
from __future__ import annotations

import argparse
import random
import time

import torch
from torch import nn
from transformers import BertConfig, BertModel

SHAPES = {
    "minilm": dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536),
    "bert-base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
}


class PfeifferOutput(nn.Module):
    """BertOutput with AdapterHub's seq_bn adapter: LN(x + (h + up(relu(down(h))))), h = dropout(dense(i))."""

    def __init__(self, out: nn.Module, rf: int = 16):
        super().__init__()
        self.out = out
        d = out.dense.out_features
        self.down = nn.Linear(d, d // rf)
        self.up = nn.Linear(d // rf, d)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, hidden_states, input_tensor):
        h = self.out.dropout(self.out.dense(hidden_states))
        h = h + self.up(torch.relu(self.down(h)))
        return self.out.LayerNorm(h + input_tensor)


class Classifier(nn.Module):
    def __init__(self, shape: dict):
        super().__init__()
        self.bert = BertModel(BertConfig(vocab_size=30522, **shape), add_pooling_layer=False)
        for p in self.bert.parameters():
            p.requires_grad_(False)
        for layer in self.bert.encoder.layer:
            layer.output = PfeifferOutput(layer.output)
        d = shape["hidden_size"]
        self.head = nn.Sequential(nn.Dropout(0.1), nn.Linear(d, d), nn.Tanh(), nn.Dropout(0.1), nn.Linear(d, 2))

    def forward(self, ids, mask):
        return self.head(self.bert(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0])


def batch(rng: random.Random, size: int, device):
    lens = [max(4, min(64, int(rng.gauss(39, 14)))) for _ in range(size)]
    longest = max(lens)
    ids = torch.zeros(size, longest, dtype=torch.long)
    mask = torch.zeros(size, longest, dtype=torch.long)
    for i, n in enumerate(lens):
        ids[i, :n] = torch.randint(1000, 30000, (n,))
        mask[i, :n] = 1
    labels = torch.randint(0, 2, (size,))
    return ids.to(device), mask.to(device), labels.to(device)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_mib(device):
    if device.type != "cuda":
        return "n/a"
    return f"{torch.cuda.max_memory_allocated() / 2**20:.0f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--models", default="minilm,bert-base")
    ap.add_argument("--train-steps", type=int, default=40)
    ap.add_argument("--infer-batches", type=int, default=14)
    ap.add_argument("--warmup", type=int, default=3)
    a = ap.parse_args()
    device = torch.device(a.device)
    torch.manual_seed(0)
    print("| model | phase | batch | timed steps | examples/s | peak allocated MiB |")
    print("|---|---|---|---|---|---|")
    for name in a.models.split(","):
        model = Classifier(SHAPES[name]).to(device)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.0)
        loss_fn = nn.CrossEntropyLoss()
        rng = random.Random(0)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        model.train()
        for step in range(a.warmup + a.train_steps):
            if step == a.warmup:
                sync(device)
                t0, seen = time.perf_counter(), 0
            ids, mask, labels = batch(rng, 32, device)
            loss = loss_fn(model(ids, mask), labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if step >= a.warmup:
                seen += ids.shape[0]
        sync(device)
        dt = time.perf_counter() - t0
        print(f"| {name} | train | 32 | {a.train_steps} | {seen / dt:.1f} | {peak_mib(device)} |", flush=True)
        model.eval()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        with torch.no_grad():
            for step in range(a.warmup + a.infer_batches):
                if step == a.warmup:
                    sync(device)
                    t0, seen = time.perf_counter(), 0
                ids, mask, _ = batch(rng, 64, device)
                model(ids, mask)
                if step >= a.warmup:
                    seen += ids.shape[0]
        sync(device)
        dt = time.perf_counter() - t0
        print(f"| {name} | infer | 64 | {a.infer_batches} | {seen / dt:.1f} | {peak_mib(device)} |", flush=True)


if __name__ == "__main__":
    main()

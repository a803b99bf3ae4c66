import sys, re, collections
# input: `perf report --stdio --sort sym --no-children -q` lines: "  12.34%  [.] symbol"
cats = [
 ("GEMM (gemm crate microkernels + packing)", r"gemm|microkernel|pack_"),
 ("fused kernels (ours: softmax, LayerNorm)", r"kernels::rows|softmax_forward|softmax_backward|layer_norm_forward|layer_norm_backward"),
 ("GELU / dropout host loops (ours)", r"activation::|gelu|dropout|xoshiro"),
 ("softmax (burn-flex)", r"softmax"),
 ("layer_norm (burn-flex)", r"layer_norm"),
 ("exp / libm", r"exp|__ieee|libm|expf"),
 ("memcpy / memmove / memset", r"memcpy|memmove|memset|__memcpy|__memset"),
 ("reductions (sum/mean/max, burn-flex)", r"reduce|sum_dim|mean|max_dim|argmax"),
 ("element-wise binary / unary / scalar (burn-flex)", r"binary|unary|scalar|zip|strided|broadcast|map_|ops::float|cmp|comparison|mask"),
 ("copies / layout (to_contiguous, cat, slice, gather)", r"contiguous|copy|cat|slice|gather|select|permute|transpose|expand|repeat"),
 ("autodiff bookkeeping (graph, grads, hashmap, Arc)", r"autodiff|hashbrown|graph|Gradients|Arc|drop_in_place|node"),
 ("allocator (malloc/free)", r"malloc|free|alloc|cfree|_int_|realloc"),
 ("kernel (page faults, scheduling)", r"^\[k\]|\[k\]"),
 ("rayon / threads (spin, sleep, join)", r"rayon|crossbeam|futex|sched_yield|pthread|std::thread"),
]
tot = collections.OrderedDict((c, 0.0) for c, _ in cats); tot["other"] = 0.0
other = collections.Counter()
for line in open(sys.argv[1]):
    m = re.match(r"\s*([\d.]+)%\s+(\[.\])\s+(.*)", line)
    if not m: continue
    pct, kind, sym = float(m.group(1)), m.group(2), m.group(3)
    key = sym if kind != "[k]" else "[k] " + sym
    for c, pat in cats:
        if re.search(pat, key, re.I):
            tot[c] += pct; break
    else:
        tot["other"] += pct; other[sym[:90]] += pct
for c, v in tot.items():
    if v >= 0.05: print(f"| {c} | {v:.1f}% |")
print("top other:", ", ".join(f"{s} {v:.1f}%" for s, v in other.most_common(8)), file=sys.stderr)

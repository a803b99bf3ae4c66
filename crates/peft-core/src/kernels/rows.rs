//! Row kernels on host slices (rayon over blocks of rows; the inner loops have no calls, so
//! they vectorise): masked softmax and (residual-add +) LayerNorm, forward and backward.
//!
//! Every function works on contiguous row-major `f32` data whose last dimension is `row`.

use rayon::prelude::*;

use crate::activation::exp_nonpositive;

/// Elements handled by one rayon task (a block of whole rows).
const TASK_ELEMS: usize = 16 * 1024;

/// Rows per rayon task for rows of `row` elements (at least one).
fn rows_per_task(row: usize) -> usize {
    (TASK_ELEMS / row.max(1)).max(1)
}

/// How the bias of a masked softmax broadcasts over the scores `[b, h, s, t]`: its shape is
/// `[bb, bh, bs, t]` with each of `bb`, `bh`, `bs` either 1 or the scores' size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BiasLayout {
    /// Scores' `[b, h, s, t]`.
    pub scores: [usize; 4],
    /// Bias `[bb, bh, bs, t]`.
    pub bias: [usize; 4],
}

impl BiasLayout {
    /// The layout if `bias` broadcasts to `scores` along the first three dims (last equal).
    pub fn new(scores: [usize; 4], bias: [usize; 4]) -> Option<Self> {
        let ok = bias[3] == scores[3] && (0..3).all(|i| bias[i] == 1 || bias[i] == scores[i]);
        ok.then_some(Self { scores, bias })
    }

    /// Offset of the bias row for score row `r` (row index over `[b, h, s]`).
    #[inline]
    fn bias_row(&self, r: usize) -> usize {
        let [_, h, s, t] = self.scores;
        let [bb, bh, bs, _] = self.bias;
        let (bi, rest) = (r / (h * s), r % (h * s));
        let (hi, si) = (rest / s, rest % s);
        let bi = if bb == 1 { 0 } else { bi };
        let hi = if bh == 1 { 0 } else { hi };
        let si = if bs == 1 { 0 } else { si };
        ((bi * bh + hi) * bs + si) * t
    }
}

/// `softmax(x * scale + bias)` along the last dimension. `x` is `[b, h, s, t]` row-major,
/// `bias` as described by `layout`. Shifted values below -87 (exp < 2e-38; padding biases of
/// `f32::MIN`) give exactly 0.
pub(crate) fn softmax_forward(x: &[f32], bias: &[f32], scale: f32, layout: BiasLayout) -> Vec<f32> {
    let t = layout.scores[3];
    let mut y = vec![0f32; x.len()];
    if t == 0 {
        return y;
    }
    let rows = rows_per_task(t);
    y.par_chunks_mut(rows * t)
        .zip(x.par_chunks(rows * t))
        .enumerate()
        .for_each(|(task, (y, x))| {
            for (i, (y, x)) in y.chunks_exact_mut(t).zip(x.chunks_exact(t)).enumerate() {
                let b = layout.bias_row(task * rows + i);
                let bias = &bias[b..b + t];
                // z = x * scale + bias, rounded as burn's two separate ops are.
                let mut max = f32::NEG_INFINITY;
                for ((y, &x), &b) in y.iter_mut().zip(x).zip(bias) {
                    let z = x * scale + b;
                    *y = z;
                    max = max.max(z);
                }
                let mut sum = 0f32;
                for y in y.iter_mut() {
                    let d = *y - max;
                    let e = if d < -87.0 { 0.0 } else { exp_nonpositive(d) };
                    *y = e;
                    sum += e;
                }
                for y in y.iter_mut() {
                    *y /= sum;
                }
            }
        });
    y
}

/// Gradient of [`softmax_forward`] with respect to `x`: `scale * y * (dy - sum(dy * y))` per row.
pub(crate) fn softmax_backward(y: &[f32], dy: &[f32], scale: f32, row: usize) -> Vec<f32> {
    let mut dx = vec![0f32; y.len()];
    if row == 0 {
        return dx;
    }
    let rows = rows_per_task(row);
    dx.par_chunks_mut(rows * row)
        .zip(y.par_chunks(rows * row).zip(dy.par_chunks(rows * row)))
        .for_each(|(dx, (y, dy))| {
            for ((dx, y), dy) in dx
                .chunks_exact_mut(row)
                .zip(y.chunks_exact(row))
                .zip(dy.chunks_exact(row))
            {
                let dot = dot(y, dy);
                for ((dx, &y), &dy) in dx.iter_mut().zip(y).zip(dy) {
                    *dx = scale * (y * (dy - dot));
                }
            }
        });
    dx
}

/// Sum of `a * b` with 8 independent accumulators (vectorises).
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (a, b) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += a[k] * b[k];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(a, b)| a * b).sum();
    acc.iter().sum::<f32>() + tail
}

/// Sum of `a` with 8 independent accumulators.
#[inline]
fn sum(a: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let c = a.chunks_exact(8);
    let r = c.remainder();
    for a in c {
        for k in 0..8 {
            acc[k] += a[k];
        }
    }
    acc.iter().sum::<f32>() + r.iter().sum::<f32>()
}

/// What [`layer_norm_forward`] keeps for the backward pass.
#[derive(Clone, Debug, Default)]
pub(crate) struct LayerNormSaved {
    /// `(x - mean) / sqrt(var + eps)`, same layout as the input.
    pub xhat: Vec<f32>,
    /// `1 / sqrt(var + eps)` per row.
    pub rstd: Vec<f32>,
}

/// `LayerNorm(x + residual)` over the last dimension (`gamma`, `beta` of length `row`); with
/// `save`, also the normalised input and the reciprocal standard deviations.
pub(crate) fn layer_norm_forward(
    x: &[f32],
    residual: Option<&[f32]>,
    gamma: &[f32],
    beta: &[f32],
    epsilon: f64,
    save: bool,
) -> (Vec<f32>, LayerNormSaved) {
    let row = gamma.len();
    let mut y = vec![0f32; x.len()];
    if row == 0 {
        return (y, LayerNormSaved::default());
    }
    let n_rows = x.len() / row;
    let mut saved = LayerNormSaved {
        xhat: if save {
            vec![0f32; x.len()]
        } else {
            Vec::new()
        },
        rstd: vec![0f32; n_rows],
    };
    let eps = epsilon as f32;
    let rows = rows_per_task(row);
    let chunk = rows * row;
    let per_task = |y: &mut [f32], xhat: Option<&mut [f32]>, rstd: &mut [f32], task: usize| {
        let start = task * chunk;
        let x = &x[start..start + y.len()];
        let r = residual.map(|r| &r[start..start + y.len()]);
        // The sum first (into y), then mean, variance and the outputs.
        match r {
            Some(r) => y
                .iter_mut()
                .zip(x)
                .zip(r)
                .for_each(|((y, &a), &b)| *y = a + b),
            None => y.copy_from_slice(x),
        }
        let mut xhat = xhat;
        for (i, (yr, rs)) in y.chunks_exact_mut(row).zip(rstd.iter_mut()).enumerate() {
            let mean = sum(yr) / row as f32;
            let mut acc = [0f32; 8];
            let c = yr.chunks_exact(8);
            let tail: f32 = c.remainder().iter().map(|v| (v - mean) * (v - mean)).sum();
            for v in c {
                for k in 0..8 {
                    let d = v[k] - mean;
                    acc[k] += d * d;
                }
            }
            let var = (acc.iter().sum::<f32>() + tail) / row as f32;
            let std = (var + eps).sqrt();
            *rs = 1.0 / std;
            let xh = xhat
                .as_deref_mut()
                .map(|xh| &mut xh[i * row..(i + 1) * row]);
            match xh {
                Some(xh) => {
                    for (((y, xh), &g), &b) in yr.iter_mut().zip(xh).zip(gamma).zip(beta) {
                        let n = (*y - mean) / std;
                        *xh = n;
                        *y = n * g + b;
                    }
                }
                None => {
                    for ((y, &g), &b) in yr.iter_mut().zip(gamma).zip(beta) {
                        *y = (*y - mean) / std * g + b;
                    }
                }
            }
        }
    };
    if save {
        y.par_chunks_mut(chunk)
            .zip(saved.xhat.par_chunks_mut(chunk))
            .zip(saved.rstd.par_chunks_mut(rows))
            .enumerate()
            .for_each(|(task, ((y, xh), rs))| per_task(y, Some(xh), rs, task));
    } else {
        y.par_chunks_mut(chunk)
            .zip(saved.rstd.par_chunks_mut(rows))
            .enumerate()
            .for_each(|(task, (y, rs))| per_task(y, None, rs, task));
    }
    (y, saved)
}

/// Gradients of [`layer_norm_forward`]: `(dx, dgamma, dbeta)`; `dx` (also the residual's
/// gradient) only when `want_dx`, `dgamma`/`dbeta` only when `want_params`.
pub(crate) fn layer_norm_backward(
    dy: &[f32],
    saved: &LayerNormSaved,
    gamma: &[f32],
    want_dx: bool,
    want_params: bool,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let row = gamma.len();
    if row == 0 {
        return (vec![0f32; dy.len()], Vec::new(), Vec::new());
    }
    let rows = rows_per_task(row);
    let chunk = rows * row;
    let dx = if want_dx {
        let mut dx = vec![0f32; dy.len()];
        dx.par_chunks_mut(chunk)
            .zip(dy.par_chunks(chunk))
            .zip(
                saved
                    .xhat
                    .par_chunks(chunk)
                    .zip(saved.rstd.par_chunks(rows)),
            )
            .for_each(|((dx, dy), (xh, rs))| {
                let mut g = vec![0f32; row];
                for (((dx, dy), xh), &rs) in dx
                    .chunks_exact_mut(row)
                    .zip(dy.chunks_exact(row))
                    .zip(xh.chunks_exact(row))
                    .zip(rs)
                {
                    // g = dy * gamma; dx = rstd * (g - mean(g) - xhat * mean(g * xhat)).
                    for ((g, &d), &w) in g.iter_mut().zip(dy).zip(gamma) {
                        *g = d * w;
                    }
                    let mean_g = sum(&g) / row as f32;
                    let mean_gx = dot(&g, xh) / row as f32;
                    for ((dx, &g), &xh) in dx.iter_mut().zip(&g).zip(xh) {
                        *dx = rs * (g - mean_g - xh * mean_gx);
                    }
                }
            });
        dx
    } else {
        Vec::new()
    };
    let (dgamma, dbeta) = if want_params {
        // Per-task partial sums over rows, then a sum over tasks (deterministic order).
        let partials: Vec<(Vec<f32>, Vec<f32>)> = dy
            .par_chunks(chunk)
            .zip(saved.xhat.par_chunks(chunk))
            .map(|(dy, xh)| {
                let mut dg = vec![0f32; row];
                let mut db = vec![0f32; row];
                for (dy, xh) in dy.chunks_exact(row).zip(xh.chunks_exact(row)) {
                    for (((dg, db), &d), &x) in dg.iter_mut().zip(db.iter_mut()).zip(dy).zip(xh) {
                        *dg += d * x;
                        *db += d;
                    }
                }
                (dg, db)
            })
            .collect();
        let mut dg = vec![0f32; row];
        let mut db = vec![0f32; row];
        for (pg, pb) in partials {
            dg.iter_mut().zip(pg).for_each(|(a, b)| *a += b);
            db.iter_mut().zip(pb).for_each(|(a, b)| *a += b);
        }
        (dg, db)
    } else {
        (Vec::new(), Vec::new())
    };
    (dx, dgamma, dbeta)
}

//! Pearson and Spearman correlation, as GLUE reports them for STS-B (`scipy.stats.pearsonr` /
//! `spearmanr` in the GLUE and `transformers` evaluation scripts): Spearman is the Pearson
//! correlation of the average ranks (tied values share the mean of their ranks).

use crate::error::{Result, TrainError};

/// Error unless `x` and `y` can be correlated: equal lengths, at least 2 values, all finite.
fn check(x: &[f64], y: &[f64]) -> Result<()> {
    if x.len() != y.len() {
        return Err(TrainError::InvalidConfig(format!(
            "correlation of {} predictions with {} labels",
            x.len(),
            y.len()
        )));
    }
    if x.len() < 2 {
        return Err(TrainError::InvalidConfig(format!(
            "correlation needs at least 2 values, got {}",
            x.len()
        )));
    }
    if x.iter().chain(y).any(|v| !v.is_finite()) {
        return Err(TrainError::InvalidConfig(
            "correlation of values that are not finite".into(),
        ));
    }
    Ok(())
}

/// Pearson's correlation coefficient of `x` and `y` (in `[-1, 1]`; `NaN` when either is
/// constant, as scipy returns).
///
/// # Errors
/// [`TrainError::InvalidConfig`] for different lengths, fewer than 2 values or a non-finite
/// value.
pub fn pearson(x: &[f64], y: &[f64]) -> Result<f64> {
    check(x, y)?;
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        let (dx, dy) = (a - mx, b - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if sxx == 0.0 || syy == 0.0 {
        return Ok(f64::NAN);
    }
    Ok((sxy / (sxx.sqrt() * syy.sqrt())).clamp(-1.0, 1.0))
}

/// The 1-based ranks of `v`, tied values sharing the mean of their ranks.
pub fn average_ranks(v: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut ranks = vec![0.0; v.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && v[order[j + 1]] == v[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            ranks[k] = rank;
        }
        i = j + 1;
    }
    ranks
}

/// Spearman's rank correlation of `x` and `y`: [`pearson`] of their [`average_ranks`].
///
/// # Errors
/// As [`pearson`].
pub fn spearman(x: &[f64], y: &[f64]) -> Result<f64> {
    check(x, y)?;
    pearson(&average_ranks(x), &average_ranks(y))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Golden values from numpy 2.4.6 in /work/venv (no scipy there):
    //   np.corrcoef(x, y)[0, 1] for Pearson, and np.corrcoef of the average ranks (ties share
    //   the mean rank, scipy.stats.rankdata's default) for Spearman. The first Spearman value is
    //   also 1 - 6 * sum(d^2) / (n (n^2 - 1)) = 1 - 36 / 210 by hand.
    const X1: [f64; 6] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    const Y1: [f64; 6] = [2.0, 1.0, 4.0, 3.0, 7.0, 5.5];
    const X2: [f64; 7] = [0.0, 1.5, 1.5, 3.2, 4.8, 5.0, 2.2];
    const Y2: [f64; 7] = [0.4, 1.0, 2.0, 2.0, 4.1, 4.9, 1.7];

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn pearson_and_spearman_match_numpy() {
        let r = |v: Result<f64>| v.unwrap_or(f64::NAN);
        assert!(close(r(pearson(&X1, &Y1)), 0.826_777_273_783_624_6));
        assert!(close(r(spearman(&X1, &Y1)), 0.828_571_428_571_428_7));
        assert!(close(r(pearson(&X2, &Y2)), 0.945_802_026_775_063_9));
        assert!(close(r(spearman(&X2, &Y2)), 0.9));
        // Symmetric, and invariant under a positive affine map (pearson) / any increasing map
        // (spearman).
        let y: Vec<f64> = Y2.iter().map(|v| 3.0 * v - 1.0).collect();
        assert!(close(r(pearson(&X2, &y)), r(pearson(&Y2, &X2))));
        let cubed: Vec<f64> = Y2.iter().map(|v| v * v * v).collect();
        assert!(close(r(spearman(&X2, &cubed)), 0.9));
    }

    #[test]
    fn ties_share_the_mean_rank() {
        assert_eq!(average_ranks(&X2), vec![1.0, 2.5, 2.5, 5.0, 6.0, 7.0, 4.0]);
        assert_eq!(average_ranks(&Y2), vec![1.0, 2.0, 4.5, 4.5, 6.0, 7.0, 3.0]);
    }

    #[test]
    fn bad_inputs_are_errors_and_constants_nan() {
        assert!(pearson(&[1.0, 2.0], &[1.0]).is_err());
        assert!(spearman(&[1.0], &[1.0]).is_err());
        assert!(pearson(&[1.0, f64::NAN], &[1.0, 2.0]).is_err());
        assert!(pearson(&[1.0, 1.0], &[1.0, 2.0]).is_ok_and(f64::is_nan));
    }
}

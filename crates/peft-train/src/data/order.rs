//! Seeded example orders: [`shuffled_indices`] (a platform-independent permutation) and
//! [`load_permutation`] (a fixed order from a file, e.g. the PyTorch peer's).

use std::fs;
use std::path::Path;

use super::tsv::{lines_of, malformed};
use crate::error::{Result, TrainError};

/// SplitMix64, a small deterministic PRNG (Steele, Lea & Flood 2014).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (`bound > 0`), without modulo bias (Lemire's method).
    fn below(&mut self, bound: u64) -> u64 {
        let threshold = bound.wrapping_neg() % bound;
        loop {
            let m = u128::from(self.next_u64()) * u128::from(bound);
            if (m as u64) >= threshold {
                return (m >> 64) as u64;
            }
        }
    }
}

/// A permutation of `0..n` that depends only on `n` and `seed` (SplitMix64 + Fisher–Yates),
/// the same on every platform and release. It does not reproduce PyTorch's `randperm`: for the
/// PyTorch reference order use [`load_permutation`].
pub fn shuffled_indices(n: usize, seed: u64) -> Vec<usize> {
    let mut rng = SplitMix64(seed);
    let mut indices: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        // i + 1 <= n fits in u64 and the result is <= i, so both casts are lossless.
        let j = rng.below(i as u64 + 1) as usize;
        indices.swap(i, j);
    }
    indices
}

/// Reads a permutation written one 0-based index per line (e.g.
/// `sst2_train_perm_seed0.txt`, PyTorch's `randperm(67349)` with seed 0). Surrounding
/// whitespace is ignored; a final newline is optional.
///
/// # Errors
/// [`TrainError::Io`] when unreadable, [`TrainError::EmptyData`] when it holds no index,
/// [`TrainError::MalformedRow`] for a line that is not an index, an index `>= n` or a repeated
/// index (`n` = number of lines).
pub fn load_permutation(path: impl AsRef<Path>) -> Result<Vec<usize>> {
    let path = path.as_ref();
    let bytes = fs::read(path).map_err(|source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut values = Vec::new();
    for entry in lines_of(&bytes, path) {
        let (line, text) = entry?;
        let text = text.trim();
        let value: usize = text.parse().map_err(|_| {
            malformed(
                path,
                line,
                format!("{text:?} is not a non-negative integer index"),
            )
        })?;
        values.push((line, value));
    }
    if values.is_empty() {
        return Err(TrainError::EmptyData {
            path: path.to_path_buf(),
        });
    }
    let n = values.len();
    let mut seen = vec![false; n];
    for &(line, v) in &values {
        match seen.get_mut(v) {
            None => {
                return Err(malformed(
                    path,
                    line,
                    format!("index {v} out of range for a permutation of {n} items"),
                ));
            }
            Some(true) => return Err(malformed(path, line, format!("index {v} repeated"))),
            Some(s) => *s = true,
        }
    }
    Ok(values.into_iter().map(|(_, v)| v).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::test_util::write;

    #[test]
    fn shuffled_indices_deterministic_permutation() {
        let a = shuffled_indices(1000, 42);
        assert_eq!(a, shuffled_indices(1000, 42));
        assert_ne!(a, shuffled_indices(1000, 43));
        assert_ne!(a, (0..1000).collect::<Vec<_>>());
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
        assert!(shuffled_indices(0, 1).is_empty());
        assert_eq!(shuffled_indices(1, 1), vec![0]);
        // Pinned: the order must not change between releases (values computed independently
        // from the SplitMix64 + Lemire + Fisher-Yates definition).
        assert_eq!(shuffled_indices(10, 0), vec![4, 9, 2, 5, 1, 7, 6, 0, 3, 8]);
        assert_eq!(shuffled_indices(10, 42), vec![8, 3, 6, 5, 4, 0, 9, 2, 1, 7]);
    }

    #[test]
    fn permutation_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = write(dir.path(), "perm.txt", "2\n0\n1\n");
        assert_eq!(load_permutation(&p).expect("perm"), vec![2, 0, 1]);
        let p = write(dir.path(), "perm2.txt", "2\n0\n1");
        assert_eq!(load_permutation(&p).expect("perm"), vec![2, 0, 1]);
        for (text, line) in [("0\n0\n", 2), ("0\n5\n", 2), ("0\nx\n", 2), ("1\n\n0\n", 2)] {
            let p = write(dir.path(), "bad.txt", text);
            assert!(
                matches!(load_permutation(&p), Err(TrainError::MalformedRow { line: l, .. }) if l == line),
                "{text:?}"
            );
        }
        let p = write(dir.path(), "empty.txt", "");
        assert!(matches!(
            load_permutation(&p),
            Err(TrainError::EmptyData { .. })
        ));
    }
}

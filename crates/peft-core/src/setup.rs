//! The active adapter setup: which named adapters run, and how they are composed.
//!
//! [`Setup`] mirrors AdapterHub's composition blocks (`adapters` 1.3, `composition.py`) with the
//! same maths and the same nesting rules, plus per-example routing ([`Setup::Route`]), which
//! none of the Python libraries have:
//!
//! | block | what runs at each adapter site |
//! |---|---|
//! | [`Setup::Single`] | one adapter (AdapterHub turns a bare name into `Stack(name)`; so do we) |
//! | [`Setup::Stack`] | the children one after another, each reading the previous output |
//! | [`Setup::Parallel`] | each child on its own copy of the batch (the batch is replicated once, at the embeddings; outputs are `channels × batch` rows, child `i` owns rows `i·batch..(i+1)·batch`) |
//! | [`Setup::BatchSplit`] | child `i` on the next `batch_sizes[i]` rows |
//! | [`Setup::Average`] | every child on the same input; the outputs averaged as AdapterHub does: `mean_i(w_i · h_i)` with the weights normalised to sum 1 |
//! | [`Setup::Fuse`] | AdapterFusion (Pfeiffer et al. 2021) over the children's bottleneck outputs |
//! | [`Setup::Route`] | each example its own setup (or none), as if it ran alone |

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::error::{PeftError, Result};

/// An adapter composition: what [`crate::set_active`] switches on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Setup {
    /// One named adapter.
    Single(String),
    /// Adapters applied in sequence (AdapterHub `Stack`).
    Stack(Vec<Setup>),
    /// The children run side by side on copies of the batch (AdapterHub `Parallel`).
    Parallel(Vec<Setup>),
    /// Consecutive slices of the batch go to the children (AdapterHub `BatchSplit`).
    BatchSplit {
        /// The children.
        children: Vec<Setup>,
        /// Rows per child; they must add up to the batch size.
        batch_sizes: Vec<usize>,
    },
    /// The children's outputs averaged (AdapterHub `Average`).
    Average {
        /// The children.
        children: Vec<Setup>,
        /// One weight per child, normalised to sum 1 (AdapterHub's default
        /// `normalize_weights=True`).
        weights: Vec<f64>,
    },
    /// AdapterFusion over the children (AdapterHub `Fuse`). The fusion layer is the one named
    /// by the children's last adapters joined with `,` (see [`Setup::fusion_name`]).
    Fuse(Vec<Setup>),
    /// Per-example routing: entry `i` is the setup of example `i` of the batch (`None`: the
    /// base model). Every example's output equals running it alone with its setup.
    Route(Vec<Option<Setup>>),
}

/// Which block a [`Setup`] is, for nesting rules and messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockKind {
    /// A single adapter.
    Single,
    /// [`Setup::Stack`].
    Stack,
    /// [`Setup::Parallel`].
    Parallel,
    /// [`Setup::BatchSplit`].
    BatchSplit,
    /// [`Setup::Average`].
    Average,
    /// [`Setup::Fuse`].
    Fuse,
    /// [`Setup::Route`].
    Route,
}

impl BlockKind {
    /// The block's name as AdapterHub spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Single => "single adapter",
            Self::Stack => "Stack",
            Self::Parallel => "Parallel",
            Self::BatchSplit => "BatchSplit",
            Self::Average => "Average",
            Self::Fuse => "Fuse",
            Self::Route => "Route",
        }
    }

    /// AdapterHub's `ALLOWED_NESTINGS` (composition.py), for the blocks we support.
    fn may_contain(self, child: BlockKind) -> bool {
        use BlockKind::*;
        match self {
            Stack => matches!(child, Single | Fuse | Parallel | BatchSplit | Average),
            Fuse => matches!(child, Single | Stack),
            Parallel => matches!(child, Single | Stack | BatchSplit | Average),
            BatchSplit => matches!(child, Single | Stack | BatchSplit | Average),
            Average => matches!(child, Single | Stack | BatchSplit),
            Single | Route => false,
        }
    }
}

impl Setup {
    /// A single adapter.
    pub fn single(name: impl Into<String>) -> Self {
        Self::Single(name.into())
    }

    /// `Stack` of single adapters.
    pub fn stack<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Self {
        Self::Stack(names.into_iter().map(Self::single).collect())
    }

    /// `Parallel` of single adapters.
    pub fn parallel<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Self {
        Self::Parallel(names.into_iter().map(Self::single).collect())
    }

    /// `Fuse` of single adapters.
    pub fn fuse<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Self {
        Self::Fuse(names.into_iter().map(Self::single).collect())
    }

    /// `Average` of single adapters with the given weights (normalised to sum 1).
    pub fn average<S: Into<String>>(names: impl IntoIterator<Item = S>, weights: Vec<f64>) -> Self {
        Self::Average {
            children: names.into_iter().map(Self::single).collect(),
            weights,
        }
    }

    /// `BatchSplit` of single adapters.
    pub fn batch_split<S: Into<String>>(
        names: impl IntoIterator<Item = S>,
        batch_sizes: Vec<usize>,
    ) -> Self {
        Self::BatchSplit {
            children: names.into_iter().map(Self::single).collect(),
            batch_sizes,
        }
    }

    /// Which block this is.
    pub fn kind(&self) -> BlockKind {
        match self {
            Self::Single(_) => BlockKind::Single,
            Self::Stack(_) => BlockKind::Stack,
            Self::Parallel(_) => BlockKind::Parallel,
            Self::BatchSplit { .. } => BlockKind::BatchSplit,
            Self::Average { .. } => BlockKind::Average,
            Self::Fuse(_) => BlockKind::Fuse,
            Self::Route(_) => BlockKind::Route,
        }
    }

    /// The direct children of a composition block (none for a single adapter or a route).
    pub fn children(&self) -> &[Setup] {
        match self {
            Self::Single(_) | Self::Route(_) => &[],
            Self::Stack(c) | Self::Parallel(c) | Self::Fuse(c) => c,
            Self::BatchSplit { children, .. } | Self::Average { children, .. } => children,
        }
    }

    /// Every adapter name the setup uses (AdapterHub's `flatten`).
    pub fn names(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        self.collect_names(&mut out);
        out
    }

    fn collect_names(&self, out: &mut BTreeSet<String>) {
        match self {
            Self::Single(n) => {
                out.insert(n.clone());
            }
            Self::Route(routes) => {
                for r in routes.iter().flatten() {
                    r.collect_names(out);
                }
            }
            _ => {
                for c in self.children() {
                    c.collect_names(out);
                }
            }
        }
    }

    /// The first adapter (AdapterHub's `first()`): whose `pre_forward` a block uses.
    pub fn first(&self) -> Option<&str> {
        match self {
            Self::Single(n) => Some(n),
            Self::Route(_) => None,
            _ => self.children().first().and_then(Setup::first),
        }
    }

    /// The last adapter (AdapterHub's `last()`).
    pub fn last(&self) -> Option<&str> {
        match self {
            Self::Single(n) => Some(n),
            Self::Route(_) => None,
            _ => self.children().last().and_then(Setup::last),
        }
    }

    /// The fusion layer a `Fuse` block uses: its children's last adapters joined by `,`
    /// (AdapterHub's `Fuse.name`). `None` for other blocks.
    pub fn fusion_name(&self) -> Option<String> {
        match self {
            Self::Fuse(children) => Some(
                children
                    .iter()
                    .filter_map(Setup::last)
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            _ => None,
        }
    }

    /// How many copies of the batch the setup needs (AdapterHub's `parallel_channels`): the
    /// number of children of the widest `Parallel` block, 1 without one.
    pub fn parallel_channels(&self) -> usize {
        match self {
            Self::Parallel(c) => c.len().max(1),
            Self::Single(_) | Self::Route(_) => 1,
            _ => self
                .children()
                .iter()
                .map(Setup::parallel_channels)
                .max()
                .unwrap_or(1),
        }
    }

    /// Check the structure: non-empty blocks, AdapterHub's nesting rules and depth limit
    /// (only `Stack` or a single adapter below level 1), matching `batch_sizes`/`weights`
    /// lengths, finite non-negative weights with a positive sum, no `Parallel` under a route.
    /// Names are checked against a model by [`crate::set_active`].
    pub fn validate(&self) -> Result<()> {
        match self {
            Self::Route(routes) => {
                if routes.is_empty() {
                    return Err(invalid("a route needs one entry per example"));
                }
                for r in routes.iter().flatten() {
                    if r.parallel_channels() > 1 {
                        return Err(invalid(
                            "Parallel changes the number of rows and cannot be routed per example; activate it for the whole batch",
                        ));
                    }
                    if matches!(r, Setup::Route(_)) {
                        return Err(invalid("a route cannot contain another route"));
                    }
                    r.validate_at(0)?;
                }
                Ok(())
            }
            _ => self.validate_at(0),
        }
    }

    fn validate_at(&self, level: usize) -> Result<()> {
        let kind = self.kind();
        if level > 1 && !matches!(kind, BlockKind::Single | BlockKind::Stack) {
            return Err(invalid(format!(
                "adapter setup is too deep: {} at level {level} (below level 1 only Stack or a single adapter)",
                kind.name()
            )));
        }
        match self {
            Self::Single(name) => check_name(name),
            Self::Route(_) => Err(invalid("Route is only allowed as the whole setup")),
            _ => {
                let children = self.children();
                if children.is_empty() {
                    return Err(invalid(format!("{} has no children", kind.name())));
                }
                for child in children {
                    if !kind.may_contain(child.kind()) {
                        return Err(invalid(format!(
                            "cannot nest {} inside {}",
                            child.kind().name(),
                            kind.name()
                        )));
                    }
                    child.validate_at(level + 1)?;
                }
                match self {
                    Self::BatchSplit { batch_sizes, .. } if batch_sizes.len() != children.len() => {
                        Err(invalid(format!(
                            "BatchSplit has {} children but {} batch sizes",
                            children.len(),
                            batch_sizes.len()
                        )))
                    }
                    Self::Average { weights, .. } => {
                        if weights.len() != children.len() {
                            return Err(invalid(format!(
                                "Average has {} children but {} weights",
                                children.len(),
                                weights.len()
                            )));
                        }
                        let sum: f64 = weights.iter().sum();
                        if weights.iter().any(|w| !w.is_finite() || *w < 0.0) || sum <= 0.0 {
                            return Err(invalid(format!(
                                "Average weights must be finite, non-negative and not all zero, got {weights:?}"
                            )));
                        }
                        Ok(())
                    }
                    _ => Ok(()),
                }
            }
        }
    }

    /// Check that the setup fits a batch of `batch` examples: `BatchSplit` sizes add up to the
    /// rows they receive, a route has one entry per example.
    pub fn check_batch(&self, batch: usize) -> Result<()> {
        match self {
            Self::Route(routes) if routes.len() != batch => Err(invalid(format!(
                "the route names {} examples, the batch has {batch}",
                routes.len()
            ))),
            Self::Route(_) | Self::Single(_) => Ok(()),
            Self::BatchSplit {
                children,
                batch_sizes,
            } => {
                let total: usize = batch_sizes.iter().sum();
                if total != batch {
                    return Err(invalid(format!(
                        "BatchSplit sizes {batch_sizes:?} add up to {total}, the batch has {batch} rows"
                    )));
                }
                children
                    .iter()
                    .zip(batch_sizes)
                    .try_for_each(|(c, &n)| c.check_batch(n))
            }
            Self::Parallel(children) => children.iter().try_for_each(|c| c.check_batch(batch)),
            _ => self
                .children()
                .iter()
                .try_for_each(|c| c.check_batch(batch)),
        }
    }

    /// The weights of an `Average` block, normalised to sum 1.
    pub(crate) fn normalised_weights(weights: &[f64]) -> Vec<f64> {
        let sum: f64 = weights.iter().sum();
        weights.iter().map(|w| w / sum).collect()
    }
}

impl std::fmt::Display for Setup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |f: &mut std::fmt::Formatter<'_>, c: &[Setup]| {
            for (i, s) in c.iter().enumerate() {
                if i > 0 {
                    write!(f, ", ")?;
                }
                write!(f, "{s}")?;
            }
            Ok(())
        };
        match self {
            Self::Single(n) => write!(f, "{n}"),
            Self::Route(r) => write!(f, "Route[{} examples]", r.len()),
            _ => {
                write!(f, "{}[", self.kind().name())?;
                list(f, self.children())?;
                write!(f, "]")
            }
        }
    }
}

/// Adapter names become module path segments and fusion names join them with `,`: a name is
/// non-empty and holds letters, digits, `_` and `-` only.
pub fn check_name(name: &str) -> Result<()> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(PeftError::InvalidName(name.to_string()));
    }
    Ok(())
}

fn invalid(message: impl Into<String>) -> PeftError {
    PeftError::InvalidSetup(message.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_rules_are_adapterhubs() {
        let ok = [
            Setup::single("a"),
            Setup::stack(["a", "b"]),
            Setup::Stack(vec![Setup::single("a"), Setup::fuse(["b", "c"])]),
            Setup::Parallel(vec![Setup::stack(["a", "b"]), Setup::single("c")]),
            Setup::Fuse(vec![Setup::stack(["a", "b"]), Setup::single("c")]),
            Setup::average(["a", "b"], vec![1.0, 3.0]),
        ];
        for s in ok {
            assert!(s.validate().is_ok(), "{s}");
        }
        let bad = [
            // Fuse may hold only adapters and stacks.
            Setup::Fuse(vec![Setup::parallel(["a", "b"])]),
            // Average cannot hold Fuse.
            Setup::Average {
                children: vec![Setup::fuse(["a", "b"]), Setup::single("c")],
                weights: vec![1.0, 1.0],
            },
            // Too deep: Parallel at level 2.
            Setup::Stack(vec![Setup::Average {
                children: vec![Setup::BatchSplit {
                    children: vec![Setup::single("a")],
                    batch_sizes: vec![1],
                }],
                weights: vec![1.0],
            }]),
            Setup::Stack(vec![]),
            Setup::average(["a", "b"], vec![1.0]),
            Setup::average(["a", "b"], vec![0.0, 0.0]),
            Setup::batch_split(["a", "b"], vec![1]),
            Setup::single("a.b"),
            Setup::single("a,b"),
            Setup::Route(vec![Some(Setup::parallel(["a", "b"]))]),
        ];
        for s in bad {
            assert!(
                matches!(
                    s.validate(),
                    Err(PeftError::InvalidSetup(_) | PeftError::InvalidName(_))
                ),
                "{s} must be rejected"
            );
        }
    }

    #[test]
    fn first_last_fusion_name_and_channels() {
        let s = Setup::Fuse(vec![Setup::stack(["a", "b"]), Setup::single("c")]);
        assert_eq!(s.first(), Some("a"));
        assert_eq!(s.last(), Some("c"));
        assert_eq!(s.fusion_name().as_deref(), Some("b,c"));
        assert_eq!(s.parallel_channels(), 1);
        let p = Setup::Stack(vec![Setup::single("x"), Setup::parallel(["a", "b", "c"])]);
        assert_eq!(p.parallel_channels(), 3);
        assert_eq!(
            p.names().into_iter().collect::<Vec<_>>(),
            vec!["a", "b", "c", "x"]
        );
    }

    #[test]
    fn batch_checks() {
        assert!(
            Setup::batch_split(["a", "b"], vec![2, 3])
                .check_batch(5)
                .is_ok()
        );
        assert!(
            Setup::batch_split(["a", "b"], vec![2, 3])
                .check_batch(4)
                .is_err()
        );
        let r = Setup::Route(vec![Some(Setup::single("a")), None]);
        assert!(r.check_batch(2).is_ok());
        assert!(r.check_batch(3).is_err());
    }
}

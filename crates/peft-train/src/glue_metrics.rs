//! The classification metrics GLUE reports besides accuracy: F1 of the positive class (MRPC,
//! QQP; scikit-learn's `f1_score` default, as the GLUE baselines and `evaluate`'s `glue`
//! metric use it) and the Matthews correlation coefficient (CoLA; `matthews_corrcoef`).
//! Both are for two-class heads, label 1 being the positive class.

use serde::Serialize;

/// Confusion counts of a two-class prediction, class 1 positive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BinaryCounts {
    /// Predicted 1, label 1.
    pub true_pos: usize,
    /// Predicted 1, label 0.
    pub false_pos: usize,
    /// Predicted 0, label 1.
    pub false_neg: usize,
    /// Predicted 0, label 0.
    pub true_neg: usize,
}

impl BinaryCounts {
    /// Counts over `(prediction, label)` pairs; `None` if any value is not 0 or 1.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (usize, usize)>) -> Option<Self> {
        let mut c = Self::default();
        for (pred, label) in pairs {
            match (pred, label) {
                (1, 1) => c.true_pos += 1,
                (1, 0) => c.false_pos += 1,
                (0, 1) => c.false_neg += 1,
                (0, 0) => c.true_neg += 1,
                _ => return None,
            }
        }
        Some(c)
    }

    /// F1 of class 1: `2·TP / (2·TP + FP + FN)`; 0 when there is no positive at all (the
    /// value scikit-learn returns there, with a warning).
    pub fn f1(&self) -> f64 {
        let denom = 2 * self.true_pos + self.false_pos + self.false_neg;
        if denom == 0 {
            0.0
        } else {
            2.0 * self.true_pos as f64 / denom as f64
        }
    }

    /// Matthews correlation coefficient: `(TP·TN − FP·FN) / √((TP+FP)(TP+FN)(TN+FP)(TN+FN))`,
    /// 0 when a factor of the denominator is 0 (scikit-learn's convention).
    pub fn matthews(&self) -> f64 {
        let (tp, fp, fn_, tn) = (
            self.true_pos as f64,
            self.false_pos as f64,
            self.false_neg as f64,
            self.true_neg as f64,
        );
        let denom = ((tp + fp) * (tp + fn_) * (tn + fp) * (tn + fn_)).sqrt();
        if denom == 0.0 {
            0.0
        } else {
            (tp * tn - fp * fn_) / denom
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Golden values computed with numpy 2.4 in the fixture venv: F1 from its definition on the
    /// counts, MCC as `np.corrcoef(preds, labels)[0, 1]` (for two classes the Matthews
    /// coefficient is the Pearson correlation of the 0/1 vectors).
    #[test]
    fn f1_and_matthews_match_numpy() {
        let preds = [1, 0, 1, 1, 0, 0, 1, 0, 1, 1];
        let labels = [1, 0, 0, 1, 0, 1, 1, 0, 1, 0];
        let c = BinaryCounts::from_pairs(preds.into_iter().zip(labels))
            .unwrap_or_else(|| panic!("binary"));
        assert_eq!(
            (c.true_pos, c.false_pos, c.false_neg, c.true_neg),
            (4, 2, 1, 3)
        );
        assert!(
            (c.f1() - 0.727_272_727_272_727_3).abs() < 1e-12,
            "{}",
            c.f1()
        );
        assert!(
            (c.matthews() - 0.408_248_290_463_863).abs() < 1e-12,
            "{}",
            c.matthews()
        );
    }

    #[test]
    fn degenerate_cases_follow_scikit_learn_and_non_binary_is_none() {
        let all_neg = BinaryCounts::from_pairs([(0, 0), (0, 0)]).unwrap_or_else(|| panic!());
        assert_eq!((all_neg.f1(), all_neg.matthews()), (0.0, 0.0));
        let perfect = BinaryCounts::from_pairs([(1, 1), (0, 0)]).unwrap_or_else(|| panic!());
        assert_eq!((perfect.f1(), perfect.matthews()), (1.0, 1.0));
        let inverse = BinaryCounts::from_pairs([(1, 0), (0, 1)]).unwrap_or_else(|| panic!());
        assert_eq!(inverse.matthews(), -1.0);
        assert_eq!(BinaryCounts::from_pairs([(2, 1)]), None);
    }
}

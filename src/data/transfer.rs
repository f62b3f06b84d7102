//! Transfer sets: which part of the training set a student learns from (a fraction of each
//! class, classes left out, or only some classes).

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::split::Split;
use crate::error::{Error, Result, Setting};

/// Which part of the training set a student may learn from (its transfer set), as a user
/// gives it. The teacher is never affected.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TransferParams {
    /// Keep this fraction of each class (seeded, class-stratified), in (0, 1].
    pub fraction: Option<f64>,
    /// Classes removed entirely.
    pub omit_classes: Vec<usize>,
    /// If non-empty, only these classes are kept.
    pub only_classes: Vec<usize>,
}

/// Checked transfer-set selection for a dataset with a known class count.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransferConfig {
    settings: TransferParams,
    kept: Vec<bool>,
}

impl TransferParams {
    /// Validates the settings against `classes`.
    pub fn check(self, classes: usize) -> Result<TransferConfig> {
        if let Some(f) = self.fraction.filter(|f| !(*f > 0.0 && *f <= 1.0)) {
            return Err(Error::setting(
                Setting::TransferFraction,
                format!("must be in (0, 1], got {f}"),
            ));
        }
        if !self.omit_classes.is_empty() && !self.only_classes.is_empty() {
            return Err(Error::config(format!(
                "give {} or {}, not both",
                Setting::OmitClasses,
                Setting::OnlyClasses
            )));
        }
        for &c in self.omit_classes.iter().chain(&self.only_classes) {
            if c >= classes {
                return Err(Error::config(format!(
                    "class {c} does not exist: the dataset has classes 0..{}",
                    classes - 1
                )));
            }
        }
        let kept: Vec<bool> = (0..classes)
            .map(|c| {
                !self.omit_classes.contains(&c)
                    && (self.only_classes.is_empty() || self.only_classes.contains(&c))
            })
            .collect();
        if !kept.contains(&true) {
            return Err(Error::config(
                "every class is omitted: the transfer set would be empty",
            ));
        }
        Ok(TransferConfig {
            settings: self,
            kept,
        })
    }
}

impl TransferConfig {
    /// The settings this was built from.
    pub fn settings(&self) -> &TransferParams {
        &self.settings
    }

    /// Classes that the transfer set lacks.
    pub fn missing_classes(&self) -> Vec<usize> {
        (0..self.kept.len()).filter(|&c| !self.kept[c]).collect()
    }

    /// True when the selection keeps everything.
    pub fn is_everything(&self) -> bool {
        self.missing_classes().is_empty() && self.settings.fraction.is_none_or(|f| f >= 1.0)
    }

    /// Positions (into `split`) of the examples kept: for each kept class, a seeded random
    /// `fraction` of its examples (at least one), in their original order.
    pub fn indices(&self, split: &Split, seed: u64) -> Vec<usize> {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x07a1_15e7);
        let mut keep = Vec::new();
        for c in 0..self.kept.len() {
            if !self.kept[c] {
                continue;
            }
            let mut of_class: Vec<usize> = (0..split.len())
                .filter(|&i| split.labels[i] as usize == c)
                .collect();
            if let Some(f) = self.settings.fraction {
                of_class.shuffle(&mut rng);
                let n = ((of_class.len() as f64 * f).round() as usize)
                    .max(1)
                    .min(of_class.len());
                of_class.truncate(n);
            }
            keep.extend(of_class);
        }
        keep.sort_unstable();
        keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(n: usize, classes: u8) -> Split {
        Split::new(
            (0..n).map(|i| i as u8).collect(),
            (0..n).map(|i| (i % classes as usize) as u32).collect(),
            1,
        )
    }

    #[test]
    fn fraction_is_stratified_seeded_and_within_the_split() {
        let s = split(1000, 10);
        let sel = TransferParams {
            fraction: Some(0.03),
            ..Default::default()
        }
        .check(10)
        .unwrap();
        let idx = sel.indices(&s, 1);
        assert_eq!(idx.len(), 30);
        assert_eq!(s.subset(&idx).class_counts(10), vec![3; 10]);
        assert_eq!(idx, sel.indices(&s, 1));
        assert_ne!(idx, sel.indices(&s, 2));
        assert!(idx.iter().all(|&i| i < s.len()));
    }

    #[test]
    fn omitted_classes_are_absent_and_only_classes_alone_remain() {
        let s = split(200, 10);
        let omit = TransferParams {
            omit_classes: vec![3],
            ..Default::default()
        }
        .check(10)
        .unwrap();
        let sub = s.subset(&omit.indices(&s, 1));
        assert_eq!(sub.class_counts(10)[3], 0);
        assert_eq!(sub.len(), 180);
        assert_eq!(omit.missing_classes(), vec![3]);
        let only = TransferParams {
            only_classes: vec![7, 8],
            ..Default::default()
        }
        .check(10)
        .unwrap();
        let sub = s.subset(&only.indices(&s, 1));
        assert!(sub.labels.iter().all(|&l| l == 7 || l == 8));
        assert_eq!(only.missing_classes().len(), 8);
    }

    #[test]
    fn bad_selections_are_refused() {
        for f in [0.0, -0.1, 1.5, f64::NAN] {
            assert!(
                TransferParams {
                    fraction: Some(f),
                    ..Default::default()
                }
                .check(10)
                .is_err(),
                "{f}"
            );
        }
        let e = TransferParams {
            omit_classes: vec![12],
            ..Default::default()
        }
        .check(10)
        .unwrap_err();
        assert!(e.to_string().contains("does not exist"));
        let e = TransferParams {
            omit_classes: (0..10).collect(),
            ..Default::default()
        }
        .check(10)
        .unwrap_err();
        assert!(e.to_string().contains("every class"));
    }
}

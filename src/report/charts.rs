//! The charts every `reproduce` report carries: learning curves, what the teacher knows beyond
//! its answer (softened probabilities, class similarity), confusion matrices, and how closely
//! each student follows the teacher.

use std::path::Path;

use burn::tensor::Device;

use super::DarkKnowledge;
use crate::data::Splits;
use crate::error::Result;
use crate::eval::{
    agreement, class_similarity, logits, ranking_without, score, similar_pairs, soften,
};
use crate::model::Predictor;
use crate::train::EpochMetrics;

/// A named trained model with its training history, as charts take them.
pub type ChartModel<'a> = (&'a str, &'a dyn Predictor, &'a [EpochMetrics]);

/// Draws the report's charts (PNG and SVG) into `out` and returns what they show: learning
/// curves, the teacher's softened probabilities for the first test image,
/// the teacher's class-similarity heatmap, each model's confusion matrix, and how closely each
/// other model follows the first (the teacher).
pub fn write_charts(
    out: &Path,
    splits: &Splits,
    device: &Device,
    models: &[ChartModel<'_>],
    temperature: f64,
) -> Result<DarkKnowledge> {
    let classes = splits.dataset.classes;
    let shape = splits.dataset.shape;
    let histories: Vec<(&str, &[EpochMetrics])> = models.iter().map(|(n, _, h)| (*n, *h)).collect();
    let mut files = Vec::new();
    let mut both = |stem: &str, draw: &dyn Fn(&Path) -> Result<()>| -> Result<()> {
        for ext in ["png", "svg"] {
            let p = out.join(format!("{stem}.{ext}"));
            draw(&p)?;
            files.push(
                p.file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            );
        }
        Ok(())
    };
    both("learning_curves", &|p| {
        super::plot::learning_curves(p, &histories)
    })?;

    let (teacher_name, teacher, _) = models[0];
    // The first test image: every dataset has one (on MNIST it is a 7, the paper's example).
    let index = 0;
    let one = splits.test.subset(&[index]);
    let temperatures = [1.0, 5.0, temperature.max(1.0)];
    let probs = soften(&logits(teacher, &one, device)?, &temperatures);
    let label = one.labels[0] as usize;
    both("soften", &|p| {
        super::plot::soften_chart(
            p,
            &super::plot::SoftenChart {
                image: &one.images,
                shape,
                label,
                temperatures: &temperatures,
                probs: &probs,
                log_scale: true,
                title: format!(
                    "{teacher_name}: test image {index} (a {label}) at T = 1, 5, {}",
                    temperatures[2]
                ),
            },
        )
    })?;

    let teacher_logits = logits(teacher, &splits.test, device)?;
    let similarity = class_similarity(&teacher_logits, &splits.test.labels, classes, 4.0);
    both("similarity_teacher", &|p| {
        super::plot::heatmap(
            p,
            &similarity,
            &format!("{teacher_name}: mean soft targets at T = 4 per true class"),
            "soft-target class",
            false,
        )
    })?;

    let mut agreements = std::collections::BTreeMap::new();
    for (i, (name, net, _)) in models.iter().enumerate() {
        let l = if i == 0 {
            teacher_logits.clone()
        } else {
            logits(*net, &splits.test, device)?
        };
        let e = score(&l, &splits.test.labels, classes);
        let norm: Vec<Vec<f64>> = e
            .confusion
            .iter()
            .map(|r| {
                let n = r.iter().sum::<usize>().max(1) as f64;
                r.iter().map(|&v| v as f64 / n).collect()
            })
            .collect();
        both(&format!("confusion_{name}"), &|p| {
            super::plot::heatmap(
                p,
                &norm,
                &format!("{name}: confusion (row-normalized), {} errors", e.errors),
                "predicted class",
                true,
            )
        })?;
        if i > 0 {
            agreements.insert(
                name.to_string(),
                agreement(&teacher_logits, &l, classes, temperature),
            );
        }
    }
    Ok(DarkKnowledge {
        soften_index: index,
        soften_label: label,
        soften_temperatures: temperatures.to_vec(),
        soften_probs: probs.clone(),
        soften_ranking: probs.iter().map(|p| ranking_without(p, label)).collect(),
        similarity_temperature: 4.0,
        similarity,
        similar_pairs: similar_pairs(
            &class_similarity(&teacher_logits, &splits.test.labels, classes, 4.0),
            5,
        ),
        agreement_temperature: temperature,
        agreement_with_teacher: agreements,
        charts: files,
    })
}

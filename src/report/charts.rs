//! The charts every `reproduce` report carries: what distillation changed (images fixed and
//! broken per class, a gallery of them, where the errors moved), test errors per class,
//! learning curves, what the teacher knows beyond its answer (softened probabilities, class
//! similarity), confusion counts, and how closely each student follows the teacher.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::Device;

use super::DarkKnowledge;
use super::changed::{Changed, ChangedImage};
use super::plot::{self, GalleryImage, GroupedChart, GroupedSeries};
use crate::data::Splits;
use crate::error::Result;
use crate::eval::{
    Agreement, agreement, class_similarity, logits, ranking_without, score, similar_pairs, soften,
};
use crate::model::Predictor;
use crate::train::EpochMetrics;

/// A named trained model with its training history, as charts take them.
pub type ChartModel<'a> = (&'a str, &'a dyn Predictor, &'a [EpochMetrics]);

/// The chart files written so far, each drawn as a PNG (for Markdown) and an SVG (inlined in
/// the HTML page).
struct Files<'a> {
    out: &'a Path,
    names: Vec<String>,
    values: BTreeMap<String, usize>,
}

impl Files<'_> {
    /// Draws the chart `stem` if it has any of the `values` it would show: a chart without
    /// data is left out, and the report says so in words instead.
    fn both(
        &mut self,
        stem: &str,
        values: usize,
        draw: &dyn Fn(&Path) -> Result<()>,
    ) -> Result<()> {
        if values == 0 {
            return Ok(());
        }
        self.values.insert(stem.to_string(), values);
        for ext in ["png", "svg"] {
            let name = format!("{stem}.{ext}");
            draw(&self.out.join(&name))?;
            self.names.push(name);
        }
        Ok(())
    }
}

/// Draws the report's charts (PNG and SVG) into `out` and returns what they show. The first
/// model is the teacher; a `student` and a `distilled` among the others are compared image by
/// image.
pub fn write_charts(
    out: &Path,
    splits: &Splits,
    device: &Device,
    models: &[ChartModel<'_>],
    temperature: f64,
) -> Result<(DarkKnowledge, Option<Changed>)> {
    let mut files = Files {
        out,
        names: Vec::new(),
        values: BTreeMap::new(),
    };
    let histories: Vec<(&str, &[EpochMetrics])> = models
        .iter()
        .filter(|(_, _, h)| !h.is_empty())
        .map(|(n, _, h)| (*n, *h))
        .collect();
    let points = histories.iter().map(|(_, h)| h.len()).sum();
    files.both("learning_curves", points, &|p| {
        plot::learning_curves(p, &histories)
    })?;
    let mut all_logits = Vec::new();
    for (name, net, _) in models {
        all_logits.push((*name, logits(*net, &splits.test, device)?));
    }
    let changed = match (find(&all_logits, "student"), find(&all_logits, "distilled")) {
        (Some(a), Some(d)) => {
            let c = Changed::of(&splits.test.labels, a, d, splits.dataset.classes);
            changed_charts(&mut files, splits, &c)?;
            Some(c)
        }
        _ => None,
    };
    let agreements = per_model(&mut files, splits, &all_logits, temperature)?;
    let teacher = (models[0], all_logits[0].1.as_slice());
    let mut dk = dark_knowledge(&mut files, splits, device, teacher, temperature)?;
    dk.agreement_with_teacher = agreements;
    dk.charts = files.names;
    dk.chart_values = files.values;
    Ok((dk, changed))
}

fn find<'a>(all: &'a [(&str, Vec<f32>)], name: &str) -> Option<&'a [f32]> {
    all.iter()
        .find(|(n, _)| *n == name)
        .map(|(_, l)| l.as_slice())
}

/// Test errors per class of every model as one grouped bar chart, each model's confusion
/// counts, and each model's agreement with the teacher.
fn per_model(
    files: &mut Files<'_>,
    splits: &Splits,
    all: &[(&str, Vec<f32>)],
    temperature: f64,
) -> Result<BTreeMap<String, Agreement>> {
    let classes = splits.dataset.classes;
    let mut series = Vec::new();
    let mut agreements = BTreeMap::new();
    for (i, (name, l)) in all.iter().enumerate() {
        let e = score(l, &splits.test.labels, classes);
        let title = format!("{name}: confusion counts, {} errors", e.errors);
        files.both(&format!("confusion_{name}"), e.examples, &|p| {
            plot::count_matrix(p, &e.confusion, &title, "predicted class")
        })?;
        series.push(GroupedSeries {
            name: format!("{name} ({} errors)", e.errors),
            values: e.class_errors.iter().map(|&v| vec![v as f64]).collect(),
        });
        if i > 0 {
            let a = agreement(&all[0].1, l, classes, temperature);
            agreements.insert(name.to_string(), a);
        }
    }
    let chart = GroupedChart {
        title: "Test errors per true class".into(),
        y_label: "test errors".into(),
        groups: (0..classes).map(|c| c.to_string()).collect(),
        series,
        reference: None,
        first_colour: 0,
    };
    let errors = chart.series.iter().flat_map(|s| s.values.iter()).count();
    files.both("class_errors", errors, &|p| plot::grouped_chart(p, &chart))?;
    Ok(agreements)
}

/// The images fixed and broken per class, a gallery of them (for images), and the errors moved.
fn changed_charts(files: &mut Files<'_>, splits: &Splits, c: &Changed) -> Result<()> {
    let classes = splits.dataset.classes;
    let chart = GroupedChart {
        title: "What distillation changed, per true class".into(),
        y_label: "test images".into(),
        groups: (0..classes).map(|k| k.to_string()).collect(),
        series: vec![
            GroupedSeries {
                name: format!("fixed: alone wrong, distilled right ({})", c.total_fixed()),
                values: c.fixed.iter().map(|&v| vec![v as f64]).collect(),
            },
            GroupedSeries {
                name: format!(
                    "broken: alone right, distilled wrong ({})",
                    c.total_broken()
                ),
                values: c.broken.iter().map(|&v| vec![v as f64]).collect(),
            },
        ],
        reference: None,
        first_colour: 2,
    };
    let changes = c.total_fixed() + c.total_broken();
    files.both("changed", changes, &|p| plot::grouped_chart(p, &chart))?;
    let moved = c.moved.iter().flatten().filter(|v| **v != 0).count();
    files.both("errors_moved", moved, &|p| {
        plot::change_matrix(
            p,
            &c.moved,
            "Errors moved: distilled minus alone (green: fewer)",
            "predicted class",
        )
    })?;
    let shape = splits.dataset.shape;
    if shape.height < 2 || shape.width < 2 {
        return Ok(());
    }
    let test = &splits.test;
    let Some(pixels) = test.bytes() else {
        return Ok(());
    };
    let row = |title: &str, images: &[ChangedImage]| {
        let images: Vec<_> = images
            .iter()
            .map(|i| GalleryImage {
                pixels: &pixels[i.index * test.pixels..(i.index + 1) * test.pixels],
                caption: format!("{}: {} \u{2192} {}", i.label, i.alone, i.distilled),
            })
            .collect();
        (title.to_string(), images)
    };
    let rows = vec![
        row(
            "Fixed (true class: alone \u{2192} distilled)",
            &c.fixed_images,
        ),
        row(
            "Broken (true class: alone \u{2192} distilled)",
            &c.broken_images,
        ),
    ];
    let rows: Vec<_> = rows.into_iter().filter(|(_, i)| !i.is_empty()).collect();
    let images = rows.iter().map(|(_, i)| i.len()).sum();
    files.both("changed_gallery", images, &|p| {
        plot::gallery(p, shape, &rows)
    })
}

/// The teacher's softened probabilities for the first test image and its class similarity.
fn dark_knowledge(
    files: &mut Files<'_>,
    splits: &Splits,
    device: &Device,
    (teacher, teacher_logits): (ChartModel<'_>, &[f32]),
    temperature: f64,
) -> Result<DarkKnowledge> {
    let (teacher_name, teacher, _) = teacher;
    let (classes, shape) = (splits.dataset.classes, splits.dataset.shape);
    // The first test image: every dataset has one (on MNIST it is a 7, the paper's example).
    let index = 0;
    let one = splits.test.subset(&[index]);
    let temperatures = [1.0, 5.0, temperature.max(1.0)];
    let probs = soften(&logits(teacher, &one, device)?, &temperatures);
    let label = one.labels[0] as usize;
    let chart = plot::SoftenChart {
        image: one.bytes().unwrap_or_default(),
        shape,
        label,
        temperatures: &temperatures,
        probs: &probs,
        log_scale: true,
        title: format!(
            "{teacher_name}: test image {index} (a {label}) at T = 1, 5, {}",
            temperatures[2]
        ),
    };
    files.both("soften", classes * temperatures.len(), &|p| {
        plot::soften_chart(p, &chart)
    })?;
    let similarity = class_similarity(teacher_logits, &splits.test.labels, classes, 4.0);
    let title = format!("{teacher_name}: mean soft targets at T = 4 per true class");
    files.both("similarity_teacher", classes * classes, &|p| {
        plot::heatmap(p, &similarity, &title, "soft-target class", true)
    })?;
    Ok(DarkKnowledge {
        soften_index: index,
        soften_label: label,
        soften_temperatures: temperatures.to_vec(),
        soften_probs: probs.clone(),
        soften_ranking: probs.iter().map(|p| ranking_without(p, label)).collect(),
        similarity_temperature: 4.0,
        similar_pairs: similar_pairs(&similarity, 5),
        similarity,
        agreement_temperature: temperature,
        agreement_with_teacher: BTreeMap::new(),
        charts: Vec::new(),
        chart_values: BTreeMap::new(),
    })
}

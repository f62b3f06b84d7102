//! The seed-summary chart: each model's errors per seed and per true class.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{DrawResult, PALETTE, WIDTH, draw_legend, err, render};
use crate::error::Result;

/// One model of a [`SummaryChart`].
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryModel {
    /// Role name (`teacher`, `distilled`, ...).
    pub name: String,
    /// Test error % of each seed's run.
    pub error_percent: Vec<f64>,
    /// Mean test error % per true class.
    pub class_error_percent: Vec<f64>,
}

/// Inputs of the chart of an experiment over several seeds.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryChart {
    /// Chart title.
    pub title: String,
    /// Models in display order.
    pub models: Vec<SummaryModel>,
}

/// Writes the several-seed chart: on the left each model's mean test error % as a bar with
/// every seed as a dot; on the right the mean error % per true class, one colour per model.
pub fn summary_chart(path: &Path, c: &SummaryChart) -> Result<()> {
    render(
        path,
        (WIDTH + 200, 500),
        |r| draw_summary(r, c),
        |r| draw_summary(r, c),
    )
}

fn largest<'a>(values: impl Iterator<Item = &'a f64>) -> f64 {
    values.fold(0f64, |a, &b| a.max(b))
}

/// Axes with `slots` categories centred on 0, 1, ... and a linear y axis from 0 to `top`.
fn slot_axes<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    slots: usize,
    top: f64,
) -> std::result::Result<
    ChartContext<
        'a,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    String,
>
where
    DB::ErrorType: 'static,
{
    ChartBuilder::on(area)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(-0.5f64..slots as f64 - 0.5, 0f64..top + 0.01)
        .map_err(err)
}

fn draw_summary<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, c: &SummaryChart) -> DrawResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(err)?;
    let root = root.titled(&c.title, ("sans-serif", 22)).map_err(err)?;
    let (left, right) = root.split_horizontally(420);
    let n = c.models.len();
    let top = largest(c.models.iter().flat_map(|m| &m.error_percent));
    let names: Vec<String> = c.models.iter().map(|m| m.name.clone()).collect();
    let mut chart = slot_axes(&left, n, top * 1.12)?;
    chart
        .configure_mesh()
        .y_desc("test error % (bar: mean; dots: one per seed)")
        .x_labels(n)
        .x_label_formatter(&|x| {
            let i = x.round();
            if i >= 0.0 && (i as usize) < names.len() && (x - i).abs() < 1e-6 {
                names[i as usize].clone()
            } else {
                String::new()
            }
        })
        .disable_x_mesh()
        .draw()
        .map_err(err)?;
    for (i, m) in c.models.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let x = i as f64;
        let mean = m.error_percent.iter().sum::<f64>() / m.error_percent.len().max(1) as f64;
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(x - 0.35, 0.0), (x + 0.35, mean)],
                colour.mix(0.6).filled(),
            )))
            .map_err(err)?;
        let k = m.error_percent.len().max(1) as f64;
        chart
            .draw_series(m.error_percent.iter().enumerate().map(|(s, &e)| {
                let dx = if k > 1.0 {
                    -0.2 + 0.4 * s as f64 / (k - 1.0)
                } else {
                    0.0
                };
                Circle::new((x + dx, e), 4, BLACK.filled())
            }))
            .map_err(err)?;
    }
    let classes = c
        .models
        .iter()
        .map(|m| m.class_error_percent.len())
        .max()
        .unwrap_or(0);
    let ctop = largest(c.models.iter().flat_map(|m| &m.class_error_percent));
    let mut chart = slot_axes(&right, classes, ctop * 1.3)?;
    chart
        .configure_mesh()
        .x_desc("true class")
        .y_desc("mean test error % of the class")
        .x_labels(classes)
        .x_label_formatter(&|x| format!("{}", x.round() as i64))
        .disable_x_mesh()
        .draw()
        .map_err(err)?;
    let k = n.max(1) as f64;
    for (i, m) in c.models.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(m.class_error_percent.iter().enumerate().map(|(cls, &v)| {
                let x0 = cls as f64 - 0.4 + 0.8 * i as f64 / k;
                Rectangle::new([(x0, 0.0), (x0 + 0.8 / k, v)], colour.filled())
            }))
            .map_err(err)?
            .label(m.name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled()));
    }
    draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    Ok(())
}

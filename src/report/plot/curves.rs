//! Line charts: learning curves per model, and test errors against temperature in a sweep.

use std::path::Path;

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::{DrawResult, PALETTE, WIDTH, draw_legend, err, render};
use crate::error::Result;
use crate::train::EpochMetrics;

/// Writes learning curves: training loss per epoch for each named run on a log axis (a
/// distilled student's loss, scaled by T², is tens of times a hard-label loss and would flatten
/// the others on a linear one), and validation error beside it when any run had a validation
/// split. Without one there is no second panel, not an empty frame.
pub fn learning_curves(path: &Path, runs: &[(&str, &[EpochMetrics])]) -> Result<()> {
    render(
        path,
        (WIDTH, 440),
        |r| draw_curves(r, runs),
        |r| draw_curves(r, runs),
    )
}

/// Whether any epoch of any run was scored on a validation split.
pub fn validated(runs: &[(&str, &[EpochMetrics])]) -> bool {
    runs.iter()
        .any(|(_, h)| h.iter().any(|m| m.validation().is_some()))
}

/// Validation error in percent, for epochs that had a validation split.
fn validation_percent(m: &EpochMetrics) -> Option<f64> {
    m.validation()
        .map(|e| 100.0 * e as f64 / m.validation_examples as f64)
}

/// Each run's `(epoch, value)` points, dropping epochs without a value.
fn points(
    runs: &[(&str, &[EpochMetrics])],
    pick: fn(&EpochMetrics) -> Option<f64>,
) -> Vec<Vec<(f64, f64)>> {
    runs.iter()
        .map(|(_, h)| {
            h.iter()
                .filter_map(|m| pick(m).map(|y| (m.epoch as f64, y)))
                .collect()
        })
        .collect()
}

fn draw_curves<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    runs: &[(&str, &[EpochMetrics])],
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(err)?;
    let epochs = runs
        .iter()
        .flat_map(|(_, h)| h.iter().map(|m| m.epoch))
        .max()
        .unwrap_or(1) as f64;
    let x = 1f64..epochs.max(2.0);
    let names: Vec<&str> = runs.iter().map(|(n, _)| *n).collect();
    // Losses are drawn as their base-10 logarithm on a linear axis labelled with the losses
    // themselves: plotters' own log axis labels one value or none over less than a decade.
    let losses = points(runs, |m| (m.train_loss > 0.0).then(|| m.train_loss.log10()));
    let (lo, hi) = losses
        .iter()
        .flatten()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let (lo, hi) = if lo <= hi { (lo, hi) } else { (-1.0, 1.0) };
    let loss_area = if validated(runs) {
        let (left, right) = root.split_horizontally(WIDTH / 2);
        let errors = points(runs, validation_percent);
        let top = errors.iter().flatten().fold(0.1f64, |a, p| a.max(p.1));
        let chart = ChartBuilder::on(&right)
            .caption("validation error", ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d(x.clone(), 0f64..top * 1.05)
            .map_err(err)?;
        draw_lines(chart, "error %", &names, &errors)?;
        left
    } else {
        root.clone()
    };
    let chart = ChartBuilder::on(&loss_area)
        .caption("training loss (log scale)", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(65)
        .build_cartesian_2d(x, lo - 0.1..hi + 0.1)
        .map_err(err)?;
    draw_lines(chart, "loss (log scale)", &names, &losses)
}

/// Draws one line per run onto `chart`, with the axes and a legend.
fn draw_lines<'a, DB>(
    mut chart: ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    y_desc: &str,
    names: &[&str],
    lines: &[Vec<(f64, f64)>],
) -> DrawResult
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
{
    // Epochs are whole numbers, and the fine mesh is noise at this size.
    let epochs = chart.x_range().end.round() as usize;
    let log = y_desc.contains("log");
    let mut mesh = chart.configure_mesh();
    mesh.x_desc("epoch")
        .y_desc(y_desc)
        .x_labels(epochs.min(12))
        .x_label_formatter(&|x| match (x - x.round()).abs() < 1e-6 {
            true => format!("{x:.0}"),
            false => String::new(),
        })
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 16))
        .light_line_style(TRANSPARENT);
    if !log {
        mesh.y_label_formatter(&|v| match (v - v.round()).abs() < 1e-9 {
            true => format!("{v:.0}"),
            false => format!("{v:.1}"),
        });
    }
    if log {
        mesh.y_label_formatter(&|v| {
            let x = 10f64.powf(*v);
            let decimals = (1.0 - x.log10().floor()).max(0.0) as usize;
            let s = format!("{x:.decimals$}");
            match s.contains('.') {
                true => s.trim_end_matches('0').trim_end_matches('.').to_string(),
                false => s,
            }
        });
    }
    mesh.draw().map_err(err)?;
    for (i, (name, pts)) in names.iter().zip(lines).enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(pts.clone(), colour.stroke_width(2)))
            .map_err(err)?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 15, y)], colour.stroke_width(2))
            });
    }
    draw_legend(&mut chart, SeriesLabelPosition::UpperRight)
}

/// One line of a sweep chart: a label and `(temperature, error %)` points.
pub type SweepSeries = (String, Vec<(f64, f64)>);

/// Writes test error against temperature (log axis), one line per student and alpha.
pub fn sweep_chart(path: &Path, title: &str, series: &[SweepSeries]) -> Result<()> {
    render(
        path,
        (WIDTH, 520),
        |r| draw_sweep(r, title, series),
        |r| draw_sweep(r, title, series),
    )
}

fn draw_sweep<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    series: &[SweepSeries],
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(err)?;
    let pts = series.iter().flat_map(|(_, p)| p.iter());
    let (tmin, tmax, emax) = pts.fold((f64::MAX, 0f64, 0f64), |(a, b, c), &(t, e)| {
        (a.min(t), b.max(t), c.max(e))
    });
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(
            (tmin.max(0.1) / 1.3..tmax * 1.3).log_scale(),
            0f64..emax * 1.15 + 0.01,
        )
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("temperature T (log scale)")
        .y_desc("test error %")
        .draw()
        .map_err(err)?;
    for (i, (name, p)) in series.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(p.clone(), colour.stroke_width(2)))
            .map_err(err)?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 15, y)], colour.stroke_width(2))
            });
        chart
            .draw_series(p.iter().map(|&pt| Circle::new(pt, 4, colour.filled())))
            .map_err(err)?;
    }
    draw_legend(&mut chart, SeriesLabelPosition::MiddleRight)?;
    Ok(())
}

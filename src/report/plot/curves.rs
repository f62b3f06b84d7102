//! Line charts: learning curves per model, and test errors against temperature in a sweep.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{DrawResult, PALETTE, WIDTH, draw_legend, err, render};
use crate::error::Result;
use crate::train::EpochMetrics;

/// Writes learning curves: training loss and validation error per epoch for each named run.
pub fn learning_curves(path: &Path, runs: &[(&str, &[EpochMetrics])]) -> Result<()> {
    render(
        path,
        (WIDTH, 440),
        |r| draw_curves(r, runs),
        |r| draw_curves(r, runs),
    )
}

/// Validation error in percent, for epochs that had a validation split.
fn validation_percent(m: &EpochMetrics) -> Option<f64> {
    m.validation()
        .map(|e| 100.0 * e as f64 / m.validation_examples as f64)
}

fn draw_curves<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    runs: &[(&str, &[EpochMetrics])],
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(err)?;
    let (left, right) = root.split_horizontally(WIDTH / 2);
    let epochs = runs
        .iter()
        .flat_map(|(_, h)| h.iter().map(|m| m.epoch))
        .max()
        .unwrap_or(1) as f64;
    let max_loss = runs
        .iter()
        .flat_map(|(_, h)| h.iter().map(|m| m.train_loss))
        .fold(1e-3, f64::max);
    let max_err = runs
        .iter()
        .flat_map(|(_, h)| h.iter().filter_map(validation_percent))
        .fold(0.1, f64::max);
    let validated = runs
        .iter()
        .any(|(_, h)| h.iter().any(|m| m.validation().is_some()));
    let right_title = if validated {
        "validation error"
    } else {
        "validation error (no validation split)"
    };
    for (area, title, ymax, ylabel, pick) in [
        (&left, "training loss", max_loss * 1.05, "loss", 0),
        (&right, right_title, max_err * 1.05, "error %", 1),
    ] {
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d(1f64..epochs.max(2.0), 0f64..ymax)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc(ylabel)
            .draw()
            .map_err(err)?;
        for (i, (name, h)) in runs.iter().enumerate() {
            let colour = PALETTE[i % PALETTE.len()];
            let pts: Vec<(f64, f64)> = h
                .iter()
                .filter_map(|m| {
                    let y = if pick == 0 {
                        Some(m.train_loss)
                    } else {
                        validation_percent(m)
                    };
                    y.map(|y| (m.epoch as f64, y))
                })
                .collect();
            chart
                .draw_series(LineSeries::new(pts, colour.stroke_width(2)))
                .map_err(err)?
                .label(*name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 15, y)], colour.stroke_width(2))
                });
        }
        draw_legend(&mut chart, SeriesLabelPosition::MiddleRight)?;
    }
    Ok(())
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

//! Heatmaps of square class-by-class matrices.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{DrawResult, err, render};
use crate::error::Result;

/// Writes a heatmap of a square matrix: rows are true classes, columns are what `columns`
/// names (a confusion matrix's predicted class, a similarity map's soft-target class).
pub fn heatmap(
    path: &Path,
    m: &[Vec<f64>],
    title: &str,
    columns: &str,
    log_colour: bool,
) -> Result<()> {
    render(
        path,
        (820, 760),
        |r| draw_heatmap(r, m, title, columns, log_colour),
        |r| draw_heatmap(r, m, title, columns, log_colour),
    )
}

fn draw_heatmap<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    m: &[Vec<f64>],
    title: &str,
    columns: &str,
    log_colour: bool,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(err)?;
    let n = m.len();
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d(-0.5f64..n as f64 - 0.5, -0.5f64..n as f64 - 0.5)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(columns)
        .y_desc("true class (top row = 0)")
        .x_labels(n)
        .y_labels(n)
        .x_label_formatter(&|x| format!("{}", x.round() as i64))
        .y_label_formatter(&|y| format!("{}", (n as f64 - 1.0 - y).round() as i64))
        .draw()
        .map_err(err)?;
    // Linear colours are scaled to the largest off-diagonal value: the diagonal (a class with
    // itself) would otherwise wash out the similarities between classes, which are the point.
    let vmax = m
        .iter()
        .enumerate()
        .flat_map(|(i, r)| {
            r.iter()
                .enumerate()
                .filter(move |(j, _)| *j != i)
                .map(|(_, v)| *v)
        })
        .fold(1e-12f64, f64::max);
    let scale = |v: f64| {
        if log_colour {
            ((v.max(1e-5).log10() + 5.0) / 5.0).clamp(0.0, 1.0)
        } else {
            (v / vmax).clamp(0.0, 1.0)
        }
    };
    chart
        .draw_series(m.iter().enumerate().flat_map(|(i, row)| {
            row.iter().enumerate().map(move |(j, &v)| {
                let s = scale(v);
                let colour = RGBColor(
                    (255.0 * (1.0 - s)) as u8,
                    (255.0 * (1.0 - 0.6 * s)) as u8,
                    255,
                );
                let y = (n - 1 - i) as f64;
                Rectangle::new(
                    [(j as f64 - 0.5, y - 0.5), (j as f64 + 0.5, y + 0.5)],
                    colour.filled(),
                )
            })
        }))
        .map_err(err)?;
    chart
        .draw_series(m.iter().enumerate().flat_map(|(i, row)| {
            row.iter().enumerate().map(move |(j, &v)| {
                let y = (n - 1 - i) as f64;
                let txt = if v >= 0.01 {
                    format!("{v:.2}")
                } else {
                    format!("{v:.0e}")
                };
                Text::new(
                    txt,
                    (j as f64 - 0.3, y + 0.1),
                    ("sans-serif", 11).into_font().color(&BLACK),
                )
            })
        }))
        .map_err(err)?;
    Ok(())
}

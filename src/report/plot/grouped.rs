//! A grouped bar chart: for each group (a loss, a class), one bar per series (a student) at its
//! mean over seeds, every seed as a dot when there are several, and a reference level (the
//! teacher) as a dashed line.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{DrawResult, PALETTE, WIDTH, draw_legend, err, render};
use crate::error::Result;

/// One series of a [`GroupedChart`].
#[derive(Debug, Clone, PartialEq)]
pub struct GroupedSeries {
    /// Legend label.
    pub name: String,
    /// Per group, the value of each seed (empty where the series lacks the group).
    pub values: Vec<Vec<f64>>,
}

/// Inputs of a grouped bar chart.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupedChart {
    /// Chart title.
    pub title: String,
    /// Y-axis label.
    pub y_label: String,
    /// Group labels along the x axis.
    pub groups: Vec<String>,
    /// The series, one bar per group each.
    pub series: Vec<GroupedSeries>,
    /// A level drawn across the chart, with its label.
    pub reference: Option<(String, f64)>,
    /// Index in the palette of the first series' colour.
    pub first_colour: usize,
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Writes the grouped bar chart to `path` (PNG or SVG by extension).
pub fn grouped_chart(path: &Path, c: &GroupedChart) -> Result<()> {
    render(
        path,
        (WIDTH, 480),
        |r| draw_grouped(r, c),
        |r| draw_grouped(r, c),
    )
}

fn draw_grouped<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, c: &GroupedChart) -> DrawResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(err)?;
    let root = root.titled(&c.title, ("sans-serif", 22)).map_err(err)?;
    let values = c.series.iter().flat_map(|s| s.values.iter().flatten());
    let top = values
        .chain(c.reference.iter().map(|r| &r.1))
        .fold(0f64, |a, &b| a.max(b));
    let groups = c.groups.len();
    let mut chart = ChartBuilder::on(&root)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5f64..groups as f64 - 0.5, 0f64..top * 1.25 + 0.01)
        .map_err(err)?;
    let labels = c.groups.clone();
    chart
        .configure_mesh()
        .y_desc(c.y_label.as_str())
        // Read at a glance: type the size of the page's, and no fine mesh.
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 16))
        .light_line_style(TRANSPARENT)
        .y_label_formatter(&|v| match (v - v.round()).abs() < 1e-9 {
            true => format!("{v:.0}"),
            false => format!("{v:.1}"),
        })
        .x_labels(groups)
        .x_label_formatter(&|x| {
            let i = x.round();
            match (i >= 0.0 && (x - i).abs() < 1e-6).then(|| labels.get(i as usize)) {
                Some(Some(l)) => l.clone(),
                _ => String::new(),
            }
        })
        .disable_x_mesh()
        .draw()
        .map_err(err)?;
    let width = 0.8 / c.series.len().max(1) as f64;
    for (k, s) in c.series.iter().enumerate() {
        let colour = PALETTE[(c.first_colour + k) % PALETTE.len()];
        let left = |g: usize| g as f64 - 0.4 + width * k as f64;
        let bars = s.values.iter().enumerate().filter(|(_, v)| !v.is_empty());
        chart
            .draw_series(bars.clone().map(|(g, v)| {
                let x = left(g);
                Rectangle::new(
                    [(x + 0.05 * width, 0.0), (x + 0.95 * width, mean(v))],
                    colour.mix(0.7).filled(),
                )
            }))
            .map_err(err)?
            .label(s.name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled()));
        // One value is the bar itself; a dot on its top would say nothing.
        chart
            .draw_series(bars.filter(|(_, v)| v.len() > 1).flat_map(|(g, v)| {
                let n = v.len();
                v.iter().enumerate().map(move |(i, &e)| {
                    let dx = width * (0.3 + 0.4 * i as f64 / (n.max(2) - 1) as f64);
                    Circle::new((left(g) + dx, e), 4, BLACK.filled())
                })
            }))
            .map_err(err)?;
    }
    if let Some((label, level)) = &c.reference {
        let line = [(-0.5, *level), (groups as f64 - 0.5, *level)];
        chart
            .draw_series(DashedLineSeries::new(line, 8, 5, BLACK.stroke_width(2)))
            .map_err(err)?
            .label(label.as_str())
            .legend(|(x, y)| PathElement::new([(x, y), (x + 14, y)], BLACK.stroke_width(2)));
    }
    draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    Ok(())
}

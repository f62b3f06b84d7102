//! Charts for reports and the inspection commands: softened probabilities beside the image,
//! class-similarity heatmaps and learning curves. PNG or SVG by the file's extension; each is
//! drawn to a temporary file and renamed into place.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::train::EpochMetrics;

const WIDTH: u32 = 1000;
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

type DrawResult = std::result::Result<(), String>;

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// The legend every chart uses: black border, translucent white box, at `position`.
fn draw_legend<'a, DB, CT>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> DrawResult
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
    CT: plotters::coord::CoordTranslate,
{
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.85))
        // At the default size the bitmap backend drops a descender-left glyph like `j`.
        .label_font(("sans-serif", 14))
        .position(position)
        .draw()
        .map_err(err)
}

/// Draws with `draw` onto a PNG or SVG at `path` (by extension), atomically.
fn render(
    path: &Path,
    size: (u32, u32),
    draw: impl Fn(&DrawingArea<SVGBackend, Shift>) -> DrawResult,
    draw_png: impl Fn(&DrawingArea<BitMapBackend, Shift>) -> DrawResult,
) -> Result<()> {
    let plot_err = |reason: String| Error::Plot {
        path: path.to_path_buf(),
        reason,
    };
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("svg") => {
            let mut s = String::new();
            {
                let root = SVGBackend::with_string(&mut s, size).into_drawing_area();
                draw(&root).map_err(plot_err)?;
                root.present().map_err(|e| plot_err(e.to_string()))?;
            }
            crate::fsutil::write_atomic(path, s.as_bytes())
        }
        Some("png") => {
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            if !dir.is_dir() {
                return Err(plot_err(format!(
                    "directory {} does not exist",
                    dir.display()
                )));
            }
            let tmp: PathBuf = dir.join(format!(".plot-{}.png", std::process::id()));
            let result = (|| {
                let root = BitMapBackend::new(&tmp, size).into_drawing_area();
                draw_png(&root)?;
                root.present().map_err(err)
            })();
            if let Err(e) = result {
                let _ = std::fs::remove_file(&tmp);
                return Err(plot_err(e));
            }
            std::fs::rename(&tmp, path).map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                Error::io("renaming into place", path, e)
            })
        }
        _ => Err(plot_err("the file name must end in .png or .svg".into())),
    }
}

/// Inputs of a softened-probabilities chart.
#[derive(Debug, Clone)]
pub struct SoftenChart<'a> {
    /// The image's pixels, row-major.
    pub image: &'a [u8],
    /// Image height and width.
    pub shape: [usize; 2],
    /// True class.
    pub label: usize,
    /// Temperatures, one bar group colour each.
    pub temperatures: &'a [f64],
    /// `probs[k][c]`: probability of class `c` at temperature `k`.
    pub probs: &'a [Vec<f64>],
    /// Logarithmic probability axis (shows the small "dark knowledge" probabilities).
    pub log_scale: bool,
    /// Chart title.
    pub title: String,
}

/// Writes a softened-probabilities chart (bars per class, one colour per T) with the image.
pub fn soften_chart(path: &Path, c: &SoftenChart<'_>) -> Result<()> {
    render(
        path,
        (WIDTH, 480),
        |r| draw_soften(r, c),
        |r| draw_soften(r, c),
    )
}

fn draw_soften<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, c: &SoftenChart<'_>) -> DrawResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(err)?;
    let (left, right) = root.split_horizontally(260);
    draw_image(&left, c.image, c.shape, &format!("true class {}", c.label))?;
    let classes = c.probs.first().map_or(0, Vec::len);
    let k = c.temperatures.len().max(1) as f64;
    let mut chart_builder = ChartBuilder::on(&right);
    chart_builder
        .caption(&c.title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70);
    // The linear and log axes are different coordinate types, so the drawing is written once
    // as a macro and expanded for each.
    macro_rules! bars {
        ($y:expr, $floor:expr, $desc:expr) => {{
            let mut chart = chart_builder
                .build_cartesian_2d(-0.5f64..classes as f64 - 0.5, $y)
                .map_err(err)?;
            chart
                .configure_mesh()
                .x_desc("class")
                .y_desc($desc)
                .x_labels(classes)
                .x_label_formatter(&|x| format!("{}", x.round() as i64))
                .disable_x_mesh()
                .draw()
                .map_err(err)?;
            for (ti, (t, p)) in c.temperatures.iter().zip(c.probs).enumerate() {
                let color = PALETTE[ti % PALETTE.len()];
                chart
                    .draw_series(p.iter().enumerate().map(|(cls, &v)| {
                        let x0 = cls as f64 - 0.4 + 0.8 * ti as f64 / k;
                        Rectangle::new(
                            [(x0, $floor), (x0 + 0.8 / k, v.max($floor))],
                            color.filled(),
                        )
                    }))
                    .map_err(err)?
                    .label(format!("T = {t}"))
                    .legend(move |(x, y)| {
                        Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
                    });
            }
            draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        }};
    }
    if c.log_scale {
        bars!((1e-6f64..1.0).log_scale(), 1e-6, "probability (log scale)");
    } else {
        bars!(0f64..1.0, 0.0, "probability");
    }
    Ok(())
}

fn draw_image<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    image: &[u8],
    shape: [usize; 2],
    caption: &str,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let (w, h) = area.dim_in_pixel();
    let cell = ((w.min(h) as usize - 40) / shape[0].max(shape[1]).max(1)).max(1) as i32;
    let (ox, oy) = (10i32, 40i32);
    area.draw(&Text::new(
        caption.to_string(),
        (ox, 12),
        ("sans-serif", 18),
    ))
    .map_err(err)?;
    for r in 0..shape[0] {
        for col in 0..shape[1] {
            let v = 255 - image[r * shape[1] + col];
            let (x, y) = (ox + col as i32 * cell, oy + r as i32 * cell);
            area.draw(&Rectangle::new(
                [(x, y), (x + cell, y + cell)],
                RGBColor(v, v, v).filled(),
            ))
            .map_err(err)?;
        }
    }
    Ok(())
}

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

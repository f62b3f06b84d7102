//! Softened probabilities of one image at several temperatures, with the image beside them.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{DrawResult, PALETTE, WIDTH, draw_legend, err, render};
use crate::data::ImageShape;
use crate::error::Result;

/// Inputs of a softened-probabilities chart.
#[derive(Debug, Clone)]
pub struct SoftenChart<'a> {
    /// The image's pixels, channel-major then row-major.
    pub image: &'a [u8],
    /// The image's shape (grayscale when it has one channel, RGB when three).
    pub shape: ImageShape,
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
    // A row of a table has no picture; the bars still show what the teacher knows.
    if !c.image.is_empty() {
        draw_image(&left, c.image, c.shape, &format!("true class {}", c.label))?;
    }
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

/// Draws `image` as a grid of cells: dark ink on white for one channel (as MNIST digits are
/// usually shown), its own colours for three, the first channel's gray otherwise.
fn draw_image<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    image: &[u8],
    shape: ImageShape,
    caption: &str,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let (w, h) = area.dim_in_pixel();
    let cell = ((w.min(h) as usize - 40) / shape.height.max(shape.width).max(1)).max(1) as i32;
    let (ox, oy) = (10i32, 40i32);
    area.draw(&Text::new(
        caption.to_string(),
        (ox, 12),
        ("sans-serif", 18),
    ))
    .map_err(err)?;
    let plane = shape.height * shape.width;
    for r in 0..shape.height {
        for col in 0..shape.width {
            let at = |c: usize| image[c * plane + r * shape.width + col];
            let color = if shape.channels == 3 {
                RGBColor(at(0), at(1), at(2))
            } else {
                let v = 255 - at(0);
                RGBColor(v, v, v)
            };
            let (x, y) = (ox + col as i32 * cell, oy + r as i32 * cell);
            area.draw(&Rectangle::new(
                [(x, y), (x + cell, y + cell)],
                color.filled(),
            ))
            .map_err(err)?;
        }
    }
    Ok(())
}

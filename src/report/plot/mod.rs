//! Charts for reports and the inspection commands: softened probabilities beside the image,
//! heatmaps (class similarity, confusion), learning curves, sweeps and seed summaries. PNG or
//! SVG by the file's extension; each is drawn to a temporary file and renamed into place.

mod curves;
mod gallery;
mod grouped;
mod heatmap;
mod soften;
mod summary;

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{Error, Result};

pub use curves::{SweepSeries, learning_curves, sweep_chart, validated};
pub use gallery::{GalleryImage, GalleryRow, gallery};
pub use grouped::{GroupedChart, GroupedSeries, grouped_chart};
pub use heatmap::{change_matrix, count_matrix, heatmap};
pub use soften::{SoftenChart, soften_chart};
pub use summary::{SummaryChart, SummaryModel, summary_chart};

pub(super) const WIDTH: u32 = 1000;
pub(super) const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

pub(super) type DrawResult = std::result::Result<(), String>;

pub(super) fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// The legend every chart uses: black border, translucent white box, at `position`.
pub(super) fn draw_legend<'a, DB, CT>(
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
pub(super) fn render(
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

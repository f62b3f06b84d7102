//! A gallery of test images in labelled rows, each image captioned with its true class and
//! two models' answers: what distillation fixed, and what it broke.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{DrawResult, WIDTH, err, render};
use crate::data::ImageShape;
use crate::error::Result;

/// One image of a gallery row.
#[derive(Debug, Clone)]
pub struct GalleryImage<'a> {
    /// Pixels, channel-major then row-major.
    pub pixels: &'a [u8],
    /// Caption under the image.
    pub caption: String,
}

/// One row of a gallery: a title and its images.
pub type GalleryRow<'a> = (String, Vec<GalleryImage<'a>>);

const CELL: i32 = 82;
const ROW: i32 = 150;

/// Writes the gallery: one band per row, up to twelve images a band.
pub fn gallery(path: &Path, shape: ImageShape, rows: &[GalleryRow<'_>]) -> Result<()> {
    let height = ROW as u32 * rows.len().max(1) as u32 + 10;
    render(
        path,
        (WIDTH, height),
        |r| draw_gallery(r, shape, rows),
        |r| draw_gallery(r, shape, rows),
    )
}

fn draw_gallery<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    shape: ImageShape,
    rows: &[GalleryRow<'_>],
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(err)?;
    // Images larger than a cell are shown every `step`-th pixel, so that they stay in theirs.
    let side = shape.height.max(shape.width).max(1) as i32;
    let step = ((side + CELL - 13) / (CELL - 12)).max(1) as usize;
    let scale = ((CELL - 12) / side).max(1);
    let shown = ImageShape {
        height: shape.height.div_ceil(step),
        width: shape.width.div_ceil(step),
        ..shape
    };
    for (k, (title, images)) in rows.iter().enumerate() {
        let top = 10 + k as i32 * ROW;
        root.draw(&Text::new(title.clone(), (10, top), ("sans-serif", 18)))
            .map_err(err)?;
        for (i, img) in images.iter().enumerate() {
            let (x, y) = (10 + i as i32 * CELL, top + 28);
            draw_pixels(root, (img.pixels, shape, step), (x, y), scale)?;
            let under = y + shown.height as i32 * scale + 6;
            root.draw(&Text::new(
                img.caption.clone(),
                (x, under),
                ("sans-serif", 15),
            ))
            .map_err(err)?;
        }
    }
    Ok(())
}

/// Draws an image at `at`, `scale` pixels a pixel: dark ink on white for one channel, its own
/// colours for three. Runs of one colour along a row are one rectangle, which keeps an SVG of
/// mostly blank digits small.
fn draw_pixels<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    (image, full, step): (&[u8], ImageShape, usize),
    at: (i32, i32),
    scale: i32,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let plane = full.height * full.width;
    let shape = ImageShape {
        height: full.height.div_ceil(step),
        width: full.width.div_ceil(step),
        ..full
    };
    let colour = |r: usize, c: usize| {
        let px = |ch: usize| image[ch * plane + r * step * full.width + c * step];
        if shape.channels == 3 {
            RGBColor(px(0), px(1), px(2))
        } else {
            let v = 255 - px(0);
            RGBColor(v, v, v)
        }
    };
    let (w, h) = (shape.width as i32 * scale, shape.height as i32 * scale);
    area.draw(&Rectangle::new(
        [(at.0 - 1, at.1 - 1), (at.0 + w, at.1 + h)],
        RGBColor(190, 190, 190),
    ))
    .map_err(err)?;
    for r in 0..shape.height {
        let mut c = 0;
        while c < shape.width {
            let start = c;
            let here = colour(r, c);
            while c < shape.width && colour(r, c) == here {
                c += 1;
            }
            if here == WHITE {
                continue;
            }
            let (x, y) = (at.0 + start as i32 * scale, at.1 + r as i32 * scale);
            area.draw(&Rectangle::new(
                [(x, y), (x + (c - start) as i32 * scale, y + scale)],
                here.filled(),
            ))
            .map_err(err)?;
        }
    }
    Ok(())
}

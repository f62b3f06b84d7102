//! Heatmaps of square class-by-class matrices: the teacher's class similarity, and count
//! matrices (confusion, errors moved by distillation) labelled with whole numbers.
//!
//! In every one the diagonal (a class with itself) is drawn in gray outside the colour scale:
//! it is tens of times larger than any other cell and would leave the rest, which is what these
//! charts are for, a few shades of pale.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{DrawResult, err, render};
use crate::error::Result;

const DIAGONAL: RGBColor = RGBColor(225, 225, 225);
const INK: RGBColor = RGBColor(20, 20, 20);
const PALE_INK: RGBColor = RGBColor(110, 110, 110);

/// One cell as drawn: its fill, its label and the label's colour.
struct Cell {
    fill: RGBColor,
    text: String,
    ink: RGBColor,
}

/// White to dark blue as `s` goes from 0 to 1.
fn blue(s: f64) -> RGBColor {
    let s = s.clamp(0.0, 1.0);
    RGBColor(
        (255.0 - 247.0 * s) as u8,
        (255.0 - 207.0 * s) as u8,
        (255.0 - 148.0 * s) as u8,
    )
}

/// White to `to` as `s` goes from 0 to 1.
fn towards(to: RGBColor, s: f64) -> RGBColor {
    let s = s.clamp(0.0, 1.0);
    let mix = |c: u8| (255.0 - (255.0 - c as f64) * s) as u8;
    RGBColor(mix(to.0), mix(to.1), mix(to.2))
}

fn ink_on(s: f64) -> RGBColor {
    if s > 0.6 { WHITE } else { INK }
}

fn off_diagonal<T: Copy>(m: &[Vec<T>]) -> impl Iterator<Item = T> + '_ {
    m.iter().enumerate().flat_map(|(i, r)| {
        r.iter()
            .enumerate()
            .filter(move |(j, _)| *j != i)
            .map(|(_, v)| *v)
    })
}

/// `0.0123` as `1.2` (percent), small values as `<0.1`.
fn percent_label(v: f64) -> String {
    let p = 100.0 * v;
    match p {
        p if p >= 9.95 => format!("{p:.0}"),
        p if p >= 0.05 => format!("{p:.1}"),
        _ => "<0.1".into(),
    }
}

/// Writes the heatmap of a similarity matrix whose rows are true classes and columns what
/// `columns` names, with each cell's value in percent. With `log_colour` the colour follows
/// the logarithm of the off-diagonal values (their smallest shown at a thousandth of the
/// largest), else the values themselves.
pub fn heatmap(
    path: &Path,
    m: &[Vec<f64>],
    title: &str,
    columns: &str,
    log_colour: bool,
) -> Result<()> {
    let hi = off_diagonal(m).fold(1e-12f64, f64::max);
    let lo = off_diagonal(m)
        .filter(|v| *v > 0.0)
        .fold(hi, f64::min)
        .max(hi / 1000.0);
    let scale = move |v: f64| match log_colour {
        true if hi > lo => (v.max(lo).ln() - lo.ln()) / (hi.ln() - lo.ln()),
        true => 1.0,
        false => v / hi,
    };
    let cell = move |i: usize, j: usize| {
        let v = m[i][j];
        if i == j {
            return Cell {
                fill: DIAGONAL,
                text: percent_label(v),
                ink: PALE_INK,
            };
        }
        let s = scale(v);
        Cell {
            fill: blue(s),
            text: percent_label(v),
            ink: ink_on(s),
        }
    };
    let scale_note = match log_colour {
        true => "log colour",
        false => "linear colour",
    };
    let title = format!("{title} (%; {scale_note}, diagonal in gray)");
    draw_matrix(path, m.len(), &title, columns, &cell)
}

/// Writes a matrix of counts (`confusion[true][predicted]`) labelled with whole numbers; zero
/// cells are left blank.
pub fn count_matrix(path: &Path, m: &[Vec<usize>], title: &str, columns: &str) -> Result<()> {
    let hi = off_diagonal(m).max().unwrap_or(0).max(1) as f64;
    let cell = move |i: usize, j: usize| {
        let v = m[i][j];
        let s = v as f64 / hi;
        Cell {
            fill: if i == j { DIAGONAL } else { blue(s) },
            text: if v == 0 { String::new() } else { v.to_string() },
            ink: if i == j { PALE_INK } else { ink_on(s) },
        }
    };
    draw_matrix(path, m.len(), title, columns, &cell)
}

/// Writes a matrix of signed changes in counts: green where errors went away (negative),
/// red where they came (positive), labelled `−3` or `+2`; zero cells and the diagonal blank.
pub fn change_matrix(path: &Path, m: &[Vec<i64>], title: &str, columns: &str) -> Result<()> {
    let hi = off_diagonal(m).map(i64::abs).max().unwrap_or(0).max(1) as f64;
    let cell = move |i: usize, j: usize| {
        let v = m[i][j];
        let s = v.abs() as f64 / hi;
        let (fill, text) = match v {
            _ if i == j => (DIAGONAL, String::new()),
            0 => (WHITE, String::new()),
            v if v < 0 => (towards(RGBColor(26, 133, 60), s), format!("\u{2212}{}", -v)),
            v => (towards(RGBColor(200, 40, 40), s), format!("+{v}")),
        };
        Cell {
            fill,
            text,
            ink: ink_on(s),
        }
    };
    draw_matrix(path, m.len(), title, columns, &cell)
}

fn draw_matrix(
    path: &Path,
    n: usize,
    title: &str,
    columns: &str,
    cell: &dyn Fn(usize, usize) -> Cell,
) -> Result<()> {
    render(
        path,
        (820, 760),
        |r| draw_grid(r, n, title, columns, cell),
        |r| draw_grid(r, n, title, columns, cell),
    )
}

fn draw_grid<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    n: usize,
    title: &str,
    columns: &str,
    cell: &dyn Fn(usize, usize) -> Cell,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5f64..n as f64 - 0.5, -0.5f64..n as f64 - 0.5)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(columns)
        .y_desc("true class (top row = 0)")
        .axis_desc_style(("sans-serif", 18))
        .label_style(("sans-serif", 18))
        .x_labels(n)
        .y_labels(n)
        .x_label_formatter(&|x| format!("{}", x.round() as i64))
        .y_label_formatter(&|y| format!("{}", (n as f64 - 1.0 - y).round() as i64))
        .draw()
        .map_err(err)?;
    let cells: Vec<(usize, usize, Cell)> = (0..n)
        .flat_map(|i| (0..n).map(move |j| (i, j)))
        .map(|(i, j)| (i, j, cell(i, j)))
        .collect();
    let at = |i: usize, j: usize| (j as f64, (n - 1 - i) as f64);
    chart
        .draw_series(cells.iter().map(|(i, j, c)| {
            let (x, y) = at(*i, *j);
            Rectangle::new([(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)], c.fill.filled())
        }))
        .map_err(err)?;
    let size = if n <= 12 { 18 } else { 11 };
    let centre = Pos::new(HPos::Center, VPos::Center);
    chart
        .draw_series(
            cells
                .iter()
                .filter(|(_, _, c)| !c.text.is_empty())
                .map(|(i, j, c)| {
                    let style = ("sans-serif", size).into_font().color(&c.ink).pos(centre);
                    Text::new(c.text.clone(), at(*i, *j), style)
                }),
        )
        .map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text of every `<text>` element of an SVG.
    fn svg_texts(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| {
                let body = &t[t.find('>')? + 1..];
                Some(body[..body.find("</text>")?].trim().to_string())
            })
            .collect()
    }

    #[test]
    fn count_matrices_are_labelled_with_whole_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let confusion = vec![vec![960, 0, 3], vec![1, 1120, 0], vec![12, 2, 998]];
        let p = dir.path().join("c.svg");
        count_matrix(&p, &confusion, "confusion", "predicted class").unwrap();
        let svg = std::fs::read_to_string(&p).unwrap();
        let texts = svg_texts(&svg);
        for want in ["960", "3", "1120", "12", "998"] {
            assert!(texts.iter().any(|t| t == want), "{want} not in {texts:?}");
        }
        let moved = vec![vec![0, -4, 2], vec![0, 0, 0], vec![-17, 1, 0]];
        let p = dir.path().join("m.svg");
        change_matrix(&p, &moved, "moved", "predicted class").unwrap();
        let svg2 = std::fs::read_to_string(&p).unwrap();
        let texts2 = svg_texts(&svg2);
        assert!(texts2.iter().any(|t| t == "\u{2212}17"), "{texts2:?}");
        assert!(texts2.iter().any(|t| t == "+2"), "{texts2:?}");
        for t in texts.iter().chain(&texts2) {
            assert!(
                !t.contains("e0") && !t.contains("e-") && !t.contains('.'),
                "{t:?}"
            );
        }
    }
}

//! `curve.svg`: the training curves of a classification run (for a regression run, STS-B:
//! [`regression_curve_svg`], validation MSE in the bottom panel), drawn with plotters' SVG backend
//! (`plotters-svg` through the `plotters-backend` drawing API): the training loss of every
//! batch (top panel) and the validation accuracy of every epoch (bottom panel, one marker per
//! epoch; the last epoch's is the run's final evaluation).
//!
//! The `plotters` crate's chart layer is not used: it needs `num-traits` with default
//! features, which would change the features of burn's `num-traits` and rebuild all of burn.
//! The axes and ticks are laid out here; every SVG element is written by `plotters-svg`.

use plotters_backend::text_anchor::{HPos, Pos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendTextStyle, DrawingBackend, DrawingErrorKind, FontFamily,
};
use plotters_svg::SVGBackend;

use crate::train::render::EpochSummary;
use crate::train::trainer::TrainingReport;

/// Width of the picture in pixels.
const WIDTH: u32 = 800;
/// Height of each of the two panels in pixels.
const PANEL_HEIGHT: u32 = 300;

const BLACK: BackendColor = BackendColor {
    alpha: 1.0,
    rgb: (0, 0, 0),
};
const GREY: BackendColor = BackendColor {
    alpha: 0.25,
    rgb: (0, 0, 0),
};
const BLUE: BackendColor = BackendColor {
    alpha: 1.0,
    rgb: (31, 119, 180),
};
const ORANGE: BackendColor = BackendColor {
    alpha: 1.0,
    rgb: (255, 127, 14),
};

/// A text style for the SVG backend (which writes `<text>` elements: the browser lays them out,
/// so no font is loaded here).
struct Text {
    size: f64,
    anchor: Pos,
}

impl BackendTextStyle for Text {
    type FontError = std::fmt::Error;

    fn color(&self) -> BackendColor {
        BLACK
    }

    fn size(&self) -> f64 {
        self.size
    }

    fn anchor(&self) -> Pos {
        self.anchor
    }

    fn family(&self) -> FontFamily<'_> {
        FontFamily::SansSerif
    }

    fn layout_box(&self, text: &str) -> Result<((i32, i32), (i32, i32)), Self::FontError> {
        let w = (text.chars().count() as f64 * self.size * 0.6) as i32;
        Ok(((0, 0), (w, self.size as i32)))
    }

    fn draw<E, F: FnMut(i32, i32, BackendColor) -> Result<(), E>>(
        &self,
        _text: &str,
        _pos: BackendCoord,
        _draw: F,
    ) -> Result<Result<(), E>, Self::FontError> {
        // Only raster backends draw glyphs pixel by pixel; the SVG backend never calls this.
        Ok(Ok(()))
    }
}

/// One panel: a series of `(x, y)` points in a box, with axes, ticks and a title.
struct Panel<'a> {
    title: &'a str,
    x_label: &'a str,
    points: &'a [Point],
    color: BackendColor,
    markers: bool,
}

/// `[lo, hi]` of `values`, widened when empty or flat so that the mapping is defined.
fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        let pad = (lo.abs() * 0.05).max(0.5);
        return (lo - pad, hi + pad);
    }
    let pad = (hi - lo) * 0.05;
    (lo - pad, hi + pad)
}

/// A tick label: up to 4 significant digits, no trailing zeros.
fn tick(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

type DrawResult = Result<(), DrawingErrorKind<std::io::Error>>;

impl Panel<'_> {
    /// Draw into the box `top`..`top + PANEL_HEIGHT` of `svg`.
    fn draw(&self, svg: &mut SVGBackend<'_>, top: i32) -> DrawResult {
        let (left, right) = (70, WIDTH as i32 - 20);
        let (y0, y1) = (top + 35, top + PANEL_HEIGHT as i32 - 40);
        let title = Text {
            size: 18.0,
            anchor: Pos::new(HPos::Center, VPos::Top),
        };
        svg.draw_text(self.title, &title, ((left + right) / 2, top + 8))?;
        svg.draw_rect((left, y0), (right, y1), &BLACK, false)?;
        let (xmin, xmax) = range(self.points.iter().map(|p| p.0));
        let (ymin, ymax) = range(self.points.iter().map(|p| p.1));
        let px = |x: f64| left + ((x - xmin) / (xmax - xmin) * f64::from(right - left)) as i32;
        let py = |y: f64| y1 - ((y - ymin) / (ymax - ymin) * f64::from(y1 - y0)) as i32;
        let label = |h, v| Text {
            size: 12.0,
            anchor: Pos::new(h, v),
        };
        for i in 0..=4 {
            let y = ymin + (ymax - ymin) * f64::from(i) / 4.0;
            svg.draw_line((left, py(y)), (right, py(y)), &GREY)?;
            svg.draw_text(
                &tick(y),
                &label(HPos::Right, VPos::Center),
                (left - 6, py(y)),
            )?;
        }
        // Whole-number x ticks (batches, epochs): at most 10.
        let (first, last) = (xmin.ceil() as i64, xmax.floor() as i64);
        let every = ((last - first) / 10 + 1).max(1);
        for x in (first..=last).step_by(every as usize) {
            let at = px(x as f64);
            svg.draw_line((at, y1), (at, y1 + 4), &BLACK)?;
            svg.draw_text(
                &x.to_string(),
                &label(HPos::Center, VPos::Top),
                (at, y1 + 6),
            )?;
        }
        svg.draw_text(
            self.x_label,
            &label(HPos::Center, VPos::Top),
            ((left + right) / 2, y1 + 22),
        )?;
        let path: Vec<BackendCoord> = self.points.iter().map(|&(x, y)| (px(x), py(y))).collect();
        if path.len() > 1 {
            svg.draw_path(path.iter().copied(), &self.color)?;
        }
        if self.markers {
            for &p in &path {
                svg.draw_circle(p, 4, &self.color, true)?;
            }
        }
        Ok(())
    }
}

/// A point of a curve: `(x, y)`.
pub type Point = (f64, f64);

/// `(batch number over the run, loss)` for every training batch of `epochs` with a loss.
fn loss_points(epochs: &[EpochSummary]) -> Vec<Point> {
    epochs
        .iter()
        .flat_map(|e| e.steps.iter().filter_map(|s| s.loss))
        .enumerate()
        .map(|(i, l)| ((i + 1) as f64, l))
        .collect()
}

/// The points of the curves of `report`: `(batch number over the run, loss)` for every
/// training batch with a loss, `(epoch, validation accuracy)` for every epoch that has one.
pub fn curve_points(report: &TrainingReport) -> (Vec<Point>, Vec<Point>) {
    let accuracies = report
        .epochs
        .iter()
        .filter_map(|e| e.valid_accuracy.map(|a| (e.epoch as f64, a)))
        .collect();
    (loss_points(&report.epochs), accuracies)
}

/// The SVG document of the run's curves ([`curve_points`]): training loss per batch, a line;
/// validation accuracy per epoch, a line and a marker each.
///
/// # Errors
/// The SVG backend failed to draw (it writes into a string: not expected).
pub fn curve_svg(report: &TrainingReport) -> Result<String, String> {
    let (losses, accuracies) = curve_points(report);
    draw(&losses, "validation accuracy (%) per epoch", &accuracies)
}

/// The SVG document of a regression run's curves: training loss (MSE) per batch, and the
/// validation MSE per epoch (`valid_loss`) in the bottom panel.
///
/// # Errors
/// As [`curve_svg`].
pub fn regression_curve_svg(epochs: &[EpochSummary]) -> Result<String, String> {
    let mse: Vec<Point> = epochs
        .iter()
        .filter_map(|e| e.valid_loss.map(|l| (e.epoch as f64, l)))
        .collect();
    draw(&loss_points(epochs), "validation MSE per epoch", &mse)
}

/// Both panels: `losses` on top, the per-epoch `bottom` points (titled `bottom_title`) below.
fn draw(losses: &[Point], bottom_title: &'static str, bottom: &[Point]) -> Result<String, String> {
    let mut out = String::new();
    {
        let mut svg = SVGBackend::with_string(&mut out, (WIDTH, 2 * PANEL_HEIGHT));
        let drawn = (|| {
            svg.draw_rect(
                (0, 0),
                (WIDTH as i32, 2 * PANEL_HEIGHT as i32),
                &BackendColor {
                    alpha: 1.0,
                    rgb: (255, 255, 255),
                },
                true,
            )?;
            Panel {
                title: "training loss per batch",
                x_label: "batch",
                points: losses,
                color: BLUE,
                markers: false,
            }
            .draw(&mut svg, 0)?;
            Panel {
                title: bottom_title,
                x_label: "epoch",
                points: bottom,
                color: ORANGE,
                markers: true,
            }
            .draw(&mut svg, PANEL_HEIGHT as i32)?;
            svg.present()
        })();
        drawn.map_err(|e| format!("drawing the training curve: {e}"))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_ticks() {
        let (lo, hi) = range([1.0, 3.0].into_iter());
        assert!(
            (lo - 0.9).abs() < 1e-12 && (hi - 3.1).abs() < 1e-12,
            "{lo} {hi}"
        );
        assert_eq!(range(std::iter::empty()), (0.0, 1.0));
        assert_eq!(range([2.0].into_iter()), (1.5, 2.5));
        assert_eq!(tick(0.5), "0.5");
        assert_eq!(tick(100.0), "100");
        assert_eq!(tick(-0.0001), "0");
    }
}

//! The comparison's figure, drawn with `plotters` into an SVG: time per `select` (median)
//! against N, one line per backend, log–log axes, a panel for A = 1 and one for A = N/10.

use std::io;
use std::path::Path;

use plotters::prelude::*;
use tulip_sys::Backend;

use crate::metric::{Measurement, Metric};

/// Figure size in pixels (two panels side by side).
const SIZE: (u32, u32) = (1200, 520);

/// One line of a panel: a backend's (N, µs) points, by increasing N.
type Line = (Backend, Vec<(f64, f64)>);

/// The points of one panel: for each backend, (N, median µs) of the cases `in_panel` keeps.
fn panel_lines(
    measurements: &[Measurement],
    backends: &[Backend],
    in_panel: impl Fn(&Measurement) -> bool,
) -> Vec<Line> {
    backends
        .iter()
        .map(|&backend| {
            let mut points: Vec<(f64, f64)> = measurements
                .iter()
                .filter(|m| m.backend == backend && in_panel(m))
                .filter_map(|m| Some((m.n as f64, m.get(Metric::SelectMedian)? / 1000.0)))
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            (backend, points)
        })
        .filter(|(_, points)| !points.is_empty())
        .collect()
}

/// The two panels: A = 1, and A = N/10 (which is A = 1 too for N < 20, so such a case is in
/// both).
pub fn panels(measurements: &[Measurement], backends: &[Backend]) -> [(String, Vec<Line>); 2] {
    [
        (
            "A = 1 active fd per round".to_string(),
            panel_lines(measurements, backends, |m| m.active == 1),
        ),
        (
            "A = N/10 active fds per round".to_string(),
            panel_lines(measurements, backends, |m| m.active == (m.n / 10).max(1)),
        ),
    ]
}

fn color(backend: Backend) -> RGBColor {
    match backend {
        Backend::Select => RGBColor(214, 39, 40),
        Backend::Poll => RGBColor(31, 119, 180),
        Backend::Epoll => RGBColor(44, 160, 44),
        Backend::Kqueue => RGBColor(148, 103, 189),
        Backend::Uring => RGBColor(255, 127, 14),
    }
}

/// Draw the figure for `measurements` into an SVG file at `path`.
///
/// # Errors
/// `InvalidInput` if there is nothing to plot; otherwise the drawing or file error, as
/// `io::Error`.
pub fn write_svg(
    path: &Path,
    measurements: &[Measurement],
    backends: &[Backend],
) -> io::Result<()> {
    let panels = panels(measurements, backends);
    let all: Vec<(f64, f64)> = panels
        .iter()
        .flat_map(|(_, lines)| lines.iter().flat_map(|(_, p)| p.iter().copied()))
        .collect();
    if all.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no measurement to plot",
        ));
    }
    let bounds = |f: fn(&(f64, f64)) -> f64| {
        let values = all.iter().map(f);
        let lo = values.clone().fold(f64::INFINITY, f64::min);
        let hi = values.fold(0.0, f64::max);
        (lo, hi)
    };
    let (x_lo, x_hi) = bounds(|p| p.0);
    let (y_lo, y_hi) = bounds(|p| p.1);
    let x_range = (x_lo / 1.5)..(x_hi * 1.5);
    let y_range = (y_lo / 2.0)..(y_hi * 2.0);

    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(drawing_error)?;
    for (area, (title, lines)) in root.split_evenly((1, 2)).iter().zip(&panels) {
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(x_range.clone().log_scale(), y_range.clone().log_scale())
            .map_err(drawing_error)?;
        chart
            .configure_mesh()
            .x_desc("N (registered fds, log scale)")
            .y_desc("time per select, median (µs, log scale)")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y}"))
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 16))
            .draw()
            .map_err(drawing_error)?;
        for (backend, points) in lines {
            let style = color(*backend);
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    style.stroke_width(2),
                ))
                .map_err(drawing_error)?
                .label(backend.name())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], style.stroke_width(3))
                });
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 4, style.filled())))
                .map_err(drawing_error)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font(("sans-serif", 16))
            .draw()
            .map_err(drawing_error)?;
    }
    root.present().map_err(drawing_error)
}

fn drawing_error<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> io::Error {
    io::Error::other(format!("drawing the plot: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(backend: Backend, n: usize, active: usize, ns: f64) -> Measurement {
        Measurement {
            backend,
            n,
            active,
            values: vec![(Metric::SelectMedian, ns)],
        }
    }

    #[test]
    fn panels_split_cases_by_active_count_and_sort_by_n() {
        let data = [
            m(Backend::Poll, 100, 1, 2000.0),
            m(Backend::Poll, 10, 1, 1000.0),
            m(Backend::Poll, 100, 10, 3000.0),
        ];
        let [(_, one), (_, tenth)] = panels(&data, &[Backend::Poll, Backend::Epoll]);
        assert_eq!(one, vec![(Backend::Poll, vec![(10.0, 1.0), (100.0, 2.0)])]);
        assert_eq!(
            tenth,
            vec![(Backend::Poll, vec![(10.0, 1.0), (100.0, 3.0)])]
        );
    }

    #[test]
    fn nothing_to_plot_is_an_error_not_an_empty_file() {
        let path = std::env::temp_dir().join("tulip-bench-empty-plot.svg");
        let err = write_svg(&path, &[], &[Backend::Poll]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}

//! The SVG charts: the echo benchmark's bar chart (`cargo xtask bench
//! --plot`, docs/bench-echo.svg) and the soak's time series
//! (docs/soak.svg), written by hand (no plotting crate).

use std::fmt::Write as _;

use super::report::{fixed, samples, size_name, summarize, thousands, Entry, Summary};
use super::run::Transport;

/// A grouped bar chart of median req/s (min-max whiskers): one panel per
/// transport and size, a bar per server.
pub(crate) fn svg(
    entries: &[Entry],
    transports: &[Transport],
    sizes: &[usize],
    conns: usize,
    servers: &[&'static str],
    title: &str,
) -> String {
    const COLORS: &[&str] = &[
        "#1f77b4", "#aec7e8", "#d62728", "#7f7f7f", "#2ca02c", "#ff7f0e",
    ];
    let (pw, ph) = (300.0_f64, 230.0_f64);
    let (left, top) = (60.0, 70.0);
    #[allow(clippy::cast_precision_loss)]
    let (cols, rows) = (sizes.len().max(1) as f64, transports.len().max(1) as f64);
    let width = left + cols * (pw + 20.0) + 10.0;
    let height = top + rows * (ph + 40.0) + 10.0;
    let mut out = svg_start(width, height, left, title);
    // Legend.
    let mut x = left;
    for (i, server) in servers.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let _ = writeln!(
            out,
            r#"<rect x="{x}" y="32" width="12" height="12" fill="{color}"/><text x="{}" y="42">{server}</text>"#,
            x + 16.0
        );
        #[allow(clippy::cast_precision_loss)]
        let step = 30.0 + 7.0 * server.len() as f64;
        x += step;
    }
    for (ri, &t) in transports.iter().enumerate() {
        for (ci, &size) in sizes.iter().enumerate() {
            #[allow(clippy::cast_precision_loss)]
            let (px, py) = (
                left + ci as f64 * (pw + 20.0),
                top + ri as f64 * (ph + 40.0),
            );
            let stats: Vec<Option<Summary>> = servers
                .iter()
                .map(|s| summarize(&samples(entries, t, size, conns, s)))
                .collect();
            let max = stats
                .iter()
                .flatten()
                .map(|s| s.rps_max)
                .fold(0.0_f64, f64::max)
                .max(1.0);
            let scale = nice_ceiling(max);
            let chart_h = ph - 30.0;
            let _ = writeln!(
                out,
                r#"<text x="{}" y="{}" font-weight="bold">{} {} ({conns} conns)</text>"#,
                px,
                py - 6.0,
                t.name(),
                size_name(size)
            );
            for g in 0..=4 {
                let v = scale * f64::from(g) / 4.0;
                let y = py + chart_h - chart_h * f64::from(g) / 4.0;
                let _ = writeln!(
                    out,
                    r##"<line x1="{px}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#555">{}k</text>"##,
                    px + pw,
                    px - 4.0,
                    y + 4.0,
                    fixed(v / 1000.0, 0)
                );
            }
            #[allow(clippy::cast_precision_loss)]
            let bw = pw / (servers.len().max(1) as f64 + 1.0);
            for (i, stat) in stats.iter().enumerate() {
                let Some(s) = stat else { continue };
                #[allow(clippy::cast_precision_loss)]
                let bx = px + bw * (i as f64 + 0.5);
                let h = chart_h * s.rps / scale;
                let y = py + chart_h - h;
                let color = COLORS[i % COLORS.len()];
                let _ = writeln!(
                    out,
                    r#"<rect x="{bx:.1}" y="{y:.1}" width="{:.1}" height="{h:.1}" fill="{color}"><title>{}: {} req/s ({}-{})</title></rect>"#,
                    bw * 0.9,
                    servers[i],
                    thousands(s.rps),
                    thousands(s.rps_min),
                    thousands(s.rps_max)
                );
                if s.runs > 1 {
                    let cx = bx + bw * 0.45;
                    let ylo = py + chart_h - chart_h * s.rps_min / scale;
                    let yhi = py + chart_h - chart_h * s.rps_max / scale;
                    let _ = writeln!(
                        out,
                        r#"<line x1="{cx:.1}" y1="{ylo:.1}" x2="{cx:.1}" y2="{yhi:.1}" stroke="black"/>"#
                    );
                }
                let _ = writeln!(
                    out,
                    r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="9">{}</text>"#,
                    bx + bw * 0.45,
                    py + chart_h + 12.0,
                    fixed(s.rps / 1000.0, 0)
                );
            }
            let _ = writeln!(
                out,
                r#"<line x1="{px}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="black"/>"#,
                py + chart_h,
                px + pw,
                py + chart_h
            );
        }
    }
    let _ = writeln!(
        out,
        r##"<text x="{left}" y="{:.1}" fill="#555">median requests/s (bars, thousands under each), min-max over rounds (whiskers)</text>"##,
        height - 4.0
    );
    out.push_str("</svg>\n");
    out
}

/// One line of a time-series chart: (x, y) points in x order.
pub(crate) struct Series<'a> {
    pub(crate) name: String,
    pub(crate) color: &'static str,
    pub(crate) points: &'a [(f64, f64)],
}

/// One panel of a time-series chart: its heading and its lines.
pub(crate) struct Panel<'a> {
    pub(crate) heading: String,
    pub(crate) series: Vec<Series<'a>>,
}

/// Time-series panels stacked vertically over one x axis (`x_label`),
/// each from 0 to a round ceiling above its largest y; x below `shade_until`
/// is shaded (a warm-up). Used by `cargo xtask soak` (docs/soak.svg).
pub(crate) fn line_chart(
    title: &str,
    panels: &[Panel<'_>],
    x_label: &str,
    shade_until: Option<f64>,
    footer: &str,
) -> String {
    let (pw, ph) = (760.0_f64, 200.0_f64);
    let (left, top) = (70.0, 40.0);
    let width = left + pw + 30.0;
    #[allow(clippy::cast_precision_loss)]
    let height = top + panels.len() as f64 * (ph + 70.0) + 20.0;
    let x_max = panels
        .iter()
        .flat_map(|p| &p.series)
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold(0.0_f64, f64::max)
        .max(1e-9);
    let mut out = svg_start(width, height, left, title);
    for (i, panel) in panels.iter().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let py = top + i as f64 * (ph + 70.0) + 20.0;
        let y_max = panel
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(0.0_f64, f64::max);
        let scale = nice_ceiling(y_max.max(1.0) * 1.1);
        let _ = writeln!(
            out,
            r#"<text x="{left}" y="{:.1}" font-weight="bold">{}</text>"#,
            py - 8.0,
            escape(&panel.heading)
        );
        let mut lx = left + 300.0;
        for s in &panel.series {
            let _ = writeln!(
                out,
                r#"<rect x="{lx:.1}" y="{:.1}" width="12" height="3" fill="{}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
                py - 14.0,
                s.color,
                lx + 16.0,
                py - 9.0,
                escape(&s.name)
            );
            #[allow(clippy::cast_precision_loss)]
            let step = 40.0 + 6.5 * s.name.len() as f64;
            lx += step;
        }
        if let Some(until) = shade_until {
            let w = pw * (until / x_max).clamp(0.0, 1.0);
            let _ = writeln!(
                out,
                r##"<rect x="{left}" y="{py:.1}" width="{w:.1}" height="{ph}" fill="#f0f0f0"/>"##
            );
        }
        for g in 0..=4 {
            let v = scale * f64::from(g) / 4.0;
            let y = py + ph - ph * f64::from(g) / 4.0;
            let _ = writeln!(
                out,
                r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#555">{}</text>"##,
                left + pw,
                left - 4.0,
                y + 4.0,
                fixed(v, if (scale / 4.0).fract() == 0.0 { 0 } else { 1 })
            );
        }
        for g in 0..=6 {
            let v = x_max * f64::from(g) / 6.0;
            let x = left + pw * f64::from(g) / 6.0;
            let _ = writeln!(
                out,
                r##"<text x="{x:.1}" y="{:.1}" text-anchor="middle" fill="#555">{}</text>"##,
                py + ph + 14.0,
                fixed(v, if x_max < 10.0 { 1 } else { 0 })
            );
        }
        let _ = writeln!(
            out,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#555">{}</text>"##,
            left + pw / 2.0,
            py + ph + 28.0,
            escape(x_label)
        );
        for s in &panel.series {
            let mut points = String::new();
            for &(x, y) in s.points {
                let _ = write!(
                    points,
                    "{:.1},{:.1} ",
                    left + pw * x / x_max,
                    py + ph - ph * (y / scale).clamp(0.0, 1.0)
                );
            }
            let _ = writeln!(
                out,
                r#"<polyline fill="none" stroke="{}" stroke-width="1" points="{}"/>"#,
                s.color,
                points.trim_end()
            );
        }
        let _ = writeln!(
            out,
            r#"<rect x="{left}" y="{py:.1}" width="{pw}" height="{ph}" fill="none" stroke="black"/>"#
        );
    }
    let _ = writeln!(
        out,
        r##"<text x="{left}" y="{:.1}" fill="#555">{}</text>"##,
        height - 6.0,
        escape(footer)
    );
    out.push_str("</svg>\n");
    out
}

/// The opening of both charts: the `<svg>` element, a white background
/// and `title` at the top, from `left`.
fn svg_start(width: f64, height: f64, left: f64, title: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{left}" y="20" font-size="14" font-weight="bold">{}</text>"#,
        escape(title)
    );
    out
}

/// The smallest 1, 2 or 5 times a power of ten that is at least `v`.
fn nice_ceiling(v: f64) -> f64 {
    let mut base = 1.0;
    while base * 10.0 < v {
        base *= 10.0;
    }
    for m in [1.0, 2.0, 5.0, 10.0] {
        if base * m >= v {
            return base * m;
        }
    }
    base * 10.0
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_end_at_a_round_ceiling() {
        assert!((nice_ceiling(150_000.0) - 200_000.0).abs() < 1e-9);
    }

    #[test]
    fn a_line_chart_draws_every_series_of_every_panel() {
        let a = [(0.0, 1.0), (30.0, 2.0), (60.0, 2.5)];
        let b = [(0.0, 10.0), (60.0, 12.0)];
        let panels = [
            Panel {
                heading: "RSS (MiB)".into(),
                series: vec![Series {
                    name: "plain".into(),
                    color: "#1f77b4",
                    points: &a,
                }],
            },
            Panel {
                heading: "fds".into(),
                series: vec![Series {
                    name: "plain <fds>".into(),
                    color: "#d62728",
                    points: &b,
                }],
            },
        ];
        let svg = line_chart("soak & co", &panels, "seconds", Some(6.0), "footer");
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("soak &amp; co") && svg.contains("plain &lt;fds&gt;"));
        // The last point of `a` sits at the right edge (x = 70 + 760).
        assert!(svg.contains("830.0,"), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"));
    }
}

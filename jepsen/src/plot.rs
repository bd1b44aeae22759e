//! Small line plots as inline SVG for the report: axes with round ticks, a linear or
//! log-10 y axis, shaded intervals (faults) behind the lines, and a legend. No scripts.

use std::fmt::Write;

use crate::report::escape;

const WIDTH_PX: f64 = 960.0;
const HEIGHT_PX: f64 = 320.0;
const MARGIN_LEFT_PX: f64 = 64.0;
const MARGIN_RIGHT_PX: f64 = 170.0;
const MARGIN_TOP_PX: f64 = 28.0;
const MARGIN_BOTTOM_PX: f64 = 44.0;
/// About this many ticks on a linear axis.
const TICKS_TARGET: f64 = 8.0;
/// Points are marked with dots up to this many points per plot (beyond, lines only).
const DOTS_MAX: usize = 600;
/// Smallest value a log axis shows; smaller values are drawn at it.
const LOG_FLOOR: f64 = 1e-3;

/// One line.
#[derive(Clone, Debug)]
pub struct Series {
    pub label: String,
    pub color: &'static str,
    pub dashed: bool,
    /// (x, y) in data units, in x order.
    pub points: Vec<(f64, f64)>,
}

/// A shaded x interval.
#[derive(Clone, Debug)]
pub struct Band {
    pub start: f64,
    pub end: f64,
    /// Shown as the band's tooltip.
    pub label: String,
    pub color: &'static str,
}

#[derive(Clone, Debug)]
pub struct Plot {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub log_y: bool,
    /// x axis runs from 0 to this (at least the last point).
    pub x_max: f64,
    pub series: Vec<Series>,
    pub bands: Vec<Band>,
}

/// A tick step of 1, 2 or 5 times a power of ten giving about [`TICKS_TARGET`] ticks.
fn nice_step(range: f64) -> f64 {
    if !(range.is_finite() && range > 0.0) {
        return 1.0;
    }
    let raw = range / TICKS_TARGET;
    let magnitude = 10f64.powf(raw.log10().floor());
    let norm = raw / magnitude;
    let factor = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    factor * magnitude
}

/// A number as a tick label: no trailing zeros, SI-ish for big ones.
fn tick_label(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if a >= 1e4 {
        format!("{}k", trim(v / 1e3))
    } else {
        trim(v)
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

impl Plot {
    /// The plot as an `<svg>` element.
    pub fn render(&self) -> String {
        let plot_w = WIDTH_PX - MARGIN_LEFT_PX - MARGIN_RIGHT_PX;
        let plot_h = HEIGHT_PX - MARGIN_TOP_PX - MARGIN_BOTTOM_PX;
        let points = self.series.iter().flat_map(|s| s.points.iter());
        let x_max = points
            .clone()
            .map(|p| p.0)
            .chain(self.bands.iter().map(|b| b.end))
            .fold(self.x_max, f64::max)
            .max(1.0);
        let ys: Vec<f64> = points.map(|p| p.1).filter(|y| y.is_finite()).collect();

        // y axis: data → [0, 1]
        let (y_ticks, y_to_unit): (Vec<f64>, Box<dyn Fn(f64) -> f64>) = if self.log_y {
            let lo = ys
                .iter()
                .copied()
                .fold(f64::INFINITY, f64::min)
                .max(LOG_FLOOR);
            let hi = ys.iter().copied().fold(0.0, f64::max).max(lo);
            let (lo_exp, mut hi_exp) = (lo.log10().floor(), hi.log10().ceil());
            if !(lo_exp.is_finite() && hi_exp.is_finite()) {
                return self.render_empty();
            }
            if hi_exp <= lo_exp {
                hi_exp = lo_exp + 1.0;
            }
            let ticks = (lo_exp as i32..=hi_exp as i32)
                .map(|e| 10f64.powi(e))
                .collect();
            let f = move |y: f64| (y.max(LOG_FLOOR).log10() - lo_exp) / (hi_exp - lo_exp);
            (ticks, Box::new(f))
        } else {
            let hi = ys.iter().copied().fold(0.0, f64::max);
            let step = nice_step(hi);
            let top = ((hi / step).ceil() * step).max(step);
            let ticks = (0..=((top / step).round() as usize))
                .map(|i| i as f64 * step)
                .collect();
            (ticks, Box::new(move |y: f64| y / top))
        };
        let px = |x: f64| MARGIN_LEFT_PX + (x / x_max).clamp(0.0, 1.0) * plot_w;
        let py = |y: f64| MARGIN_TOP_PX + plot_h - y_to_unit(y).clamp(0.0, 1.0) * plot_h;

        let mut svg = String::new();
        let _ = write!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{WIDTH_PX}" height="{HEIGHT_PX}" viewBox="0 0 {WIDTH_PX} {HEIGHT_PX}" role="img" aria-label="{title}"><title>{title}</title>"#,
            title = escape(&self.title)
        );
        let _ = write!(
            svg,
            r##"<rect x="{MARGIN_LEFT_PX}" y="{MARGIN_TOP_PX}" width="{plot_w}" height="{plot_h}" fill="#fff" stroke="#999"/>"##
        );
        let _ = write!(
            svg,
            r#"<text x="{}" y="18" font-size="14" font-weight="bold">{}</text>"#,
            MARGIN_LEFT_PX,
            escape(&self.title)
        );
        // Faults behind everything else.
        for band in &self.bands {
            let (x0, x1) = (px(band.start), px(band.end));
            let _ = write!(
                svg,
                r#"<rect class="nemesis" x="{x0:.1}" y="{MARGIN_TOP_PX}" width="{:.1}" height="{plot_h}" fill="{}" fill-opacity="0.18"><title>{}</title></rect>"#,
                (x1 - x0).max(1.0),
                band.color,
                escape(&band.label)
            );
        }
        // Grid and tick labels.
        for &t in &y_ticks {
            let y = py(t);
            let _ = write!(
                svg,
                r##"<line x1="{MARGIN_LEFT_PX}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
                MARGIN_LEFT_PX + plot_w,
                MARGIN_LEFT_PX - 6.0,
                y + 4.0,
                tick_label(t)
            );
        }
        let x_step = nice_step(x_max);
        let mut t = 0.0;
        while t <= x_max + x_step * 1e-9 {
            let x = px(t);
            let _ = write!(
                svg,
                r##"<line x1="{x:.1}" x2="{x:.1}" y1="{:.1}" y2="{:.1}" stroke="#999"/><text x="{x:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"##,
                MARGIN_TOP_PX + plot_h,
                MARGIN_TOP_PX + plot_h + 5.0,
                MARGIN_TOP_PX + plot_h + 18.0,
                tick_label(t)
            );
            t += x_step;
        }
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle">{}</text>"#,
            MARGIN_LEFT_PX + plot_w / 2.0,
            HEIGHT_PX - 6.0,
            escape(&self.x_label)
        );
        let _ = write!(
            svg,
            r#"<text transform="translate(14 {:.1}) rotate(-90)" font-size="12" text-anchor="middle">{}</text>"#,
            MARGIN_TOP_PX + plot_h / 2.0,
            escape(&self.y_label)
        );
        // Lines.
        let total_points: usize = self.series.iter().map(|s| s.points.len()).sum();
        for s in &self.series {
            let coords: Vec<String> = s
                .points
                .iter()
                .filter(|p| p.0.is_finite() && p.1.is_finite())
                .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
                .collect();
            let dash = if s.dashed {
                r#" stroke-dasharray="5 3""#
            } else {
                ""
            };
            let _ = write!(
                svg,
                r#"<polyline fill="none" stroke="{}" stroke-width="1.5"{dash} points="{}"><title>{}</title></polyline>"#,
                s.color,
                coords.join(" "),
                escape(&s.label)
            );
            if total_points <= DOTS_MAX {
                for c in &coords {
                    let (x, y) = c.split_once(',').unwrap_or(("0", "0"));
                    let _ = write!(
                        svg,
                        r#"<circle cx="{x}" cy="{y}" r="2" fill="{}"/>"#,
                        s.color
                    );
                }
            }
        }
        // Legend.
        let lx = MARGIN_LEFT_PX + plot_w + 12.0;
        let mut ly = MARGIN_TOP_PX + 10.0;
        for s in &self.series {
            let dash = if s.dashed {
                r#" stroke-dasharray="5 3""#
            } else {
                ""
            };
            let _ = write!(
                svg,
                r#"<line x1="{lx:.1}" x2="{:.1}" y1="{ly:.1}" y2="{ly:.1}" stroke="{}" stroke-width="2"{dash}/><text x="{:.1}" y="{:.1}" font-size="11">{}</text>"#,
                lx + 22.0,
                s.color,
                lx + 28.0,
                ly + 4.0,
                escape(&s.label)
            );
            ly += 16.0;
        }
        if !self.bands.is_empty() {
            let _ = write!(
                svg,
                r##"<rect x="{lx:.1}" y="{:.1}" width="22" height="10" fill="#d62728" fill-opacity="0.18"/><text x="{:.1}" y="{:.1}" font-size="11">fault active</text>"##,
                ly - 5.0,
                lx + 28.0,
                ly + 4.0
            );
        }
        svg.push_str("</svg>");
        svg
    }

    fn render_empty(&self) -> String {
        format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{WIDTH_PX}" height="40"><text x="10" y="24" font-size="13">{}: no data</text></svg>"#,
            escape(&self.title)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_round() {
        assert_eq!(nice_step(10.0), 2.0);
        assert_eq!(nice_step(60.0), 10.0);
        assert_eq!(nice_step(0.0), 1.0);
        assert_eq!(nice_step(7.0), 1.0);
        assert_eq!(tick_label(25_000.0), "25k");
        assert_eq!(tick_label(0.5), "0.5");
        assert_eq!(tick_label(3.0), "3");
    }

    #[test]
    fn renders_lines_bands_and_escapes_labels() {
        let plot = Plot {
            title: "a <b>".into(),
            x_label: "time (s)".into(),
            y_label: "ms".into(),
            log_y: true,
            x_max: 10.0,
            series: vec![Series {
                label: "send p99".into(),
                color: "#1f77b4",
                dashed: true,
                points: vec![(0.5, 1.0), (1.5, 250.0), (2.5, 0.0)],
            }],
            bands: vec![Band {
                start: 1.0,
                end: 2.0,
                label: "kill & <n1>".into(),
                color: "#d62728",
            }],
        };
        let svg = plot.render();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains(r#"class="nemesis""#));
        assert!(svg.contains("kill &amp; &lt;n1&gt;"));
        assert!(svg.contains("a &lt;b&gt;"));
        assert!(svg.contains("<polyline"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    #[test]
    fn empty_plots_render() {
        for log_y in [false, true] {
            let plot = Plot {
                title: "t".into(),
                x_label: String::new(),
                y_label: String::new(),
                log_y,
                x_max: 0.0,
                series: vec![],
                bands: vec![],
            };
            let svg = plot.render();
            assert!(svg.starts_with("<svg") && !svg.contains("NaN"), "{svg}");
        }
    }
}

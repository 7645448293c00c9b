//! Charts drawn on the server as SVG: a line over time with its range,
//! labelled for screen readers, no script needed.

use std::fmt::Write as _;

use super::html::esc;

const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 120.0;

/// A line chart of `points` (unix seconds, value) titled `title`; `unit`
/// follows the minimum and maximum in the caption.
pub fn line(title: &str, unit: &str, points: &[(i64, f64)]) -> String {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return String::new();
    };
    let (min, max) = points
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), (_, v)| {
            (lo.min(*v), hi.max(*v))
        });
    let span_t = (last.0 - first.0).max(1) as f64;
    let span_v = if max > min { max - min } else { 1.0 };
    let mut path = String::new();
    for (t, v) in points {
        let x = (*t - first.0) as f64 / span_t * WIDTH;
        let y = HEIGHT - (v - min) / span_v * (HEIGHT - 10.0) - 5.0;
        let _ = write!(path, "{x:.1},{y:.1} ");
    }
    let caption = format!("{min:.2} – {max:.2} {unit}");
    format!(
        "<figure class=\"chart\"><svg viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{t}: {c}\" preserveAspectRatio=\"none\"><polyline fill=\"none\" stroke=\"currentColor\" stroke-width=\"2\" points=\"{path}\"/></svg><figcaption>{t} <bdi dir=\"ltr\">{c}</bdi></figcaption></figure>",
        t = esc(title),
        c = esc(&caption),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_spans_its_points() {
        let svg = line("Load", "", &[(0, 1.0), (60, 3.0)]);
        assert!(svg.contains("0.0,115.0"));
        assert!(svg.contains("600.0,5.0"));
        assert!(svg.contains("1.00 – 3.00"));
        assert!(line("Load", "", &[]).is_empty());
    }
}

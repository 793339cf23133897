//! The coordinator's charts as inline SVG, drawn on the server.
//!
//! Drawing on the server keeps the pages free of a chart library and a
//! build step, works without JavaScript, and lets a unit test read the
//! output. Every text that came from users is escaped; every chart has a
//! `<title>` so a screen reader says what it is.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use crate::model::Delivered;
use crate::views::HoursUse;

/// Drawing size in SVG user units; the page scales it to the screen width.
const WIDTH: f64 = 320.0;
const HEIGHT: f64 = 160.0;
/// Room for labels left of bars and under axes.
const LABEL_WIDTH: f64 = 96.0;
const MARGIN: f64 = 8.0;
/// Height of a chart that has nothing to draw yet but a line of text.
const EMPTY_HEIGHT: f64 = 40.0;
/// Served as an image, a chart carries its own style: the page's
/// stylesheet does not reach into it.
const CHART_STYLE: &str = "<style>text{font:9px system-ui,sans-serif;fill:#1b1b1f}.bar{fill:#2457c5}.line{fill:none;stroke:#1d7a3a;stroke-width:2}.axis{stroke:#5b5b66}.empty{fill:#5b5b66}</style>";
/// Bars drawn at most; the rest are summed into "other".
pub const BARS_MAX: usize = 8;

/// Escapes text for SVG/HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            _ => escaped.push(character),
        }
    }
    escaped
}

fn open_svg(title: &str, height: f64) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" class=\"chart\"><title>{}</title>{CHART_STYLE}",
        escape(title)
    )
}

/// Horizontal bars, one per `(label, value)`, scaled to the largest.
pub fn bars(title: &str, rows: &[(String, f64)], unit: &str) -> String {
    let mut rows: Vec<(String, f64)> = rows.to_vec();
    rows.sort_by(|one, other| other.1.total_cmp(&one.1));
    if rows.len() > BARS_MAX {
        let other: f64 = rows[BARS_MAX - 1..].iter().map(|(_, value)| value).sum();
        rows.truncate(BARS_MAX - 1);
        rows.push(("other".to_owned(), other));
    }
    let bar_height = 18.0;
    let height = (MARGIN * 2.0 + bar_height * rows.len().max(1) as f64).max(EMPTY_HEIGHT);
    let mut svg = open_svg(title, height);
    if rows.is_empty() {
        let _ = write!(
            svg,
            "<text x=\"{MARGIN}\" y=\"24\" class=\"empty\">nothing yet</text>"
        );
    }
    let largest = rows.iter().map(|(_, value)| *value).fold(0.0, f64::max);
    let span = WIDTH - LABEL_WIDTH - MARGIN * 2.0 - 40.0;
    for (index, (label, value)) in rows.iter().enumerate() {
        let y = MARGIN + index as f64 * bar_height;
        let length = if largest > 0.0 {
            span * value / largest
        } else {
            0.0
        };
        let _ = write!(
            svg,
            "<text x=\"{x}\" y=\"{text_y}\" text-anchor=\"end\">{label}</text>\
             <rect x=\"{bar_x}\" y=\"{y}\" width=\"{length:.1}\" height=\"{bar}\" class=\"bar\"/>\
             <text x=\"{value_x:.1}\" y=\"{text_y}\">{value:.0} {unit}</text>",
            x = LABEL_WIDTH,
            text_y = y + 13.0,
            label = escape(label),
            bar_x = LABEL_WIDTH + MARGIN,
            bar = bar_height - 4.0,
            value_x = LABEL_WIDTH + MARGIN * 2.0 + length,
            unit = escape(unit),
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Cumulative impact of completed tasks over time, as a step line.
pub fn impact_over_time(delivered: &[Delivered], now: DateTime<Utc>) -> String {
    let mut points: Vec<&Delivered> = delivered.iter().collect();
    points.sort_by_key(|done| done.at);
    let total: f64 = points.iter().map(|done| done.impact).sum();
    let Some(first) = points.first() else {
        let mut svg = open_svg("Impact delivered over time", EMPTY_HEIGHT);
        let _ = write!(
            svg,
            "<text x=\"{MARGIN}\" y=\"24\" class=\"empty\">no task completed yet</text></svg>"
        );
        return svg;
    };
    let mut svg = open_svg("Impact delivered over time", HEIGHT);
    let start = first.at;
    let end = now.max(start + chrono::Duration::hours(1));
    let seconds = (end - start).num_seconds().max(1) as f64;
    let (left, right, top, bottom) = (MARGIN + 40.0, WIDTH - MARGIN, MARGIN, HEIGHT - 24.0);
    let x_of =
        |at: DateTime<Utc>| left + (right - left) * (at - start).num_seconds() as f64 / seconds;
    let y_of = |value: f64| bottom - (bottom - top) * value / total.max(f64::MIN_POSITIVE);
    let mut path = format!("M{left:.1},{bottom:.1}");
    let mut cumulative = 0.0;
    for done in &points {
        let x = x_of(done.at);
        let _ = write!(path, " L{x:.1},{:.1}", y_of(cumulative));
        cumulative += done.impact;
        let _ = write!(path, " L{x:.1},{:.1}", y_of(cumulative));
    }
    let _ = write!(path, " L{right:.1},{:.1}", y_of(cumulative));
    let _ = write!(
        svg,
        "<line x1=\"{left}\" y1=\"{bottom}\" x2=\"{right}\" y2=\"{bottom}\" class=\"axis\"/>\
         <line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{bottom}\" class=\"axis\"/>\
         <path d=\"{path}\" class=\"line\"/>\
         <text x=\"{label_x}\" y=\"{top_text}\" text-anchor=\"end\">{total:.0}</text>\
         <text x=\"{label_x}\" y=\"{bottom}\" text-anchor=\"end\">0</text>\
         <text x=\"{left}\" y=\"{axis_text}\">{from}</text>\
         <text x=\"{right}\" y=\"{axis_text}\" text-anchor=\"end\">{to}</text></svg>",
        label_x = left - 4.0,
        top_text = top + 10.0,
        axis_text = HEIGHT - 8.0,
        from = start.format("%b %d %H:%M"),
        to = end.format("%b %d %H:%M"),
    );
    svg
}

/// How the active volunteers' hours are used.
pub fn hours_use(hours: &HoursUse) -> String {
    bars(
        "Use of volunteer hours",
        &[
            ("committed".to_owned(), hours.committed),
            ("proposed".to_owned(), hours.proposed),
            ("idle".to_owned(), hours.idle),
            ("done".to_owned(), hours.completed),
        ],
        "h",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_from_users_are_escaped() {
        let svg = bars("t", &[("<script>".to_owned(), 3.0)], "h");
        assert!(svg.contains("&lt;script&gt;"));
        assert!(!svg.contains("<script>"));
    }

    #[test]
    fn many_bars_are_summed_into_other() {
        let rows: Vec<(String, f64)> = (0..20).map(|index| (format!("s{index}"), 1.0)).collect();
        let svg = bars("t", &rows, "h");
        assert_eq!(svg.matches("<rect").count(), BARS_MAX);
        assert!(svg.contains(">other<"));
    }
}

//! The coordinator's charts as inline SVG, drawn on the server.
//!
//! Drawing on the server keeps the pages free of a chart library and a
//! build step, works without JavaScript, and lets a unit test read the
//! output. The SVG is written with maud, like the pages, so every text that
//! came from users is escaped by the engine, not by hand; every chart has a
//! `<title>` so a screen reader says what it is. Elements are always closed
//! (`rect {}` rather than maud's void `rect;`) because an SVG image is
//! parsed as XML, where `<rect>` without `</rect>` is an error.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use maud::{html, Markup};

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
/// Height of one bar's row, and the gap left under each bar in it.
const BAR_ROW_HEIGHT: f64 = 18.0;
const BAR_GAP: f64 = 4.0;
/// Served as an image, a chart carries its own style: the page's
/// stylesheet does not reach into it. (Nothing in it needs escaping.)
const CHART_STYLE: &str = "text{font:9px system-ui,sans-serif;fill:#1b1b1f}.bar{fill:#2457c5}.line{fill:none;stroke:#1d7a3a;stroke-width:2}.axis{stroke:#5b5b66}.empty{fill:#5b5b66}";
/// Bars drawn at most; the rest are summed into "other".
pub const BARS_MAX: usize = 8;

/// The dashboard's charts, by the file name each is served under
/// (`/api/charts/{file}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chart {
    /// [`impact_over_time`].
    Impact,
    /// [`hours_use`].
    Hours,
    /// Unmet demand by skill, as [`bars`].
    Unmet,
}

impl Chart {
    pub const ALL: [Chart; 3] = [Chart::Impact, Chart::Hours, Chart::Unmet];

    pub fn file(self) -> &'static str {
        match self {
            Chart::Impact => "impact.svg",
            Chart::Hours => "hours.svg",
            Chart::Unmet => "unmet.svg",
        }
    }

    pub fn from_file(file: &str) -> Option<Chart> {
        Chart::ALL.into_iter().find(|chart| chart.file() == file)
    }
}

/// The `<svg>` element around a chart's `drawing`, with its title and style.
fn svg(title: &str, height: f64, drawing: Markup) -> String {
    html! {
        svg xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (WIDTH) " " (height) } role="img" class="chart" {
            title { (title) }
            style { (CHART_STYLE) }
            (drawing)
        }
    }
    .into_string()
}

/// The one line of text a chart with nothing to draw shows.
fn nothing_yet(text: &str) -> Markup {
    html! {
        text x=(MARGIN) y="24" class="empty" { (text) }
    }
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
    let height = (MARGIN * 2.0 + BAR_ROW_HEIGHT * rows.len().max(1) as f64).max(EMPTY_HEIGHT);
    let largest = rows.iter().map(|(_, value)| *value).fold(0.0, f64::max);
    let span = WIDTH - LABEL_WIDTH - MARGIN * 2.0 - 40.0;
    let drawing = html! {
        @if rows.is_empty() {
            (nothing_yet("nothing yet"))
        }
        @for (index, (label, value)) in rows.iter().enumerate() {
            @let y = MARGIN + index as f64 * BAR_ROW_HEIGHT;
            @let text_y = y + 13.0;
            @let length = if largest > 0.0 { span * value / largest } else { 0.0 };
            text x=(LABEL_WIDTH) y=(text_y) text-anchor="end" { (label) }
            rect x=(LABEL_WIDTH + MARGIN) y=(y) width=(format!("{length:.1}")) height=(BAR_ROW_HEIGHT - BAR_GAP) class="bar" {}
            text x=(format!("{:.1}", LABEL_WIDTH + MARGIN * 2.0 + length)) y=(text_y) {
                (format!("{value:.0}")) " " (unit)
            }
        }
    };
    svg(title, height, drawing)
}

/// Cumulative impact of completed tasks over time, as a step line.
pub fn impact_over_time(delivered: &[Delivered], now: DateTime<Utc>) -> String {
    const TITLE: &str = "Impact delivered over time";
    let mut points: Vec<&Delivered> = delivered.iter().collect();
    points.sort_by_key(|done| done.at);
    let total: f64 = points.iter().map(|done| done.impact).sum();
    let Some(first) = points.first() else {
        return svg(TITLE, EMPTY_HEIGHT, nothing_yet("no task completed yet"));
    };
    let start = first.at;
    let end = now.max(start + chrono::Duration::hours(1));
    let seconds = (end - start).num_seconds().max(1) as f64;
    let (left, right, top, bottom) = (MARGIN + 40.0, WIDTH - MARGIN, MARGIN, HEIGHT - 24.0);
    let x_of =
        |at: DateTime<Utc>| left + (right - left) * (at - start).num_seconds() as f64 / seconds;
    let y_of = |value: f64| bottom - (bottom - top) * value / total.max(f64::MIN_POSITIVE);
    // The path's data is numbers only; it is built as text like any SVG path.
    let mut path = format!("M{left:.1},{bottom:.1}");
    let mut cumulative = 0.0;
    for done in &points {
        let x = x_of(done.at);
        let _ = write!(path, " L{x:.1},{:.1}", y_of(cumulative));
        cumulative += done.impact;
        let _ = write!(path, " L{x:.1},{:.1}", y_of(cumulative));
    }
    let _ = write!(path, " L{right:.1},{:.1}", y_of(cumulative));
    let label_x = left - 4.0;
    let axis_text_y = HEIGHT - 8.0;
    let drawing = html! {
        line x1=(left) y1=(bottom) x2=(right) y2=(bottom) class="axis" {}
        line x1=(left) y1=(top) x2=(left) y2=(bottom) class="axis" {}
        path d=(path) class="line" {}
        text x=(label_x) y=(top + 10.0) text-anchor="end" { (format!("{total:.0}")) }
        text x=(label_x) y=(bottom) text-anchor="end" { "0" }
        text x=(left) y=(axis_text_y) { (start.format("%b %d %H:%M").to_string()) }
        text x=(right) y=(axis_text_y) text-anchor="end" { (end.format("%b %d %H:%M").to_string()) }
    };
    svg(TITLE, HEIGHT, drawing)
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
    fn a_title_or_label_with_a_script_tag_and_quotes_comes_out_escaped() {
        let hostile = "<script>alert(\"x\")</script>\" onload=\"alert(1)";
        let svg = bars(hostile, &[(hostile.to_owned(), 3.0)], hostile);
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(!svg.contains("\" onload=\""), "{svg}");
        let escaped =
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&quot; onload=&quot;alert(1)";
        assert!(
            svg.contains(&format!("<title>{escaped}</title>")),
            "the title is escaped: {svg}"
        );
        assert!(
            svg.contains(&format!("text-anchor=\"end\">{escaped}</text>")),
            "the label is escaped: {svg}"
        );
        assert!(
            svg.contains(&format!("3 {escaped}</text>")),
            "the unit is escaped: {svg}"
        );
    }

    #[test]
    fn every_chart_has_a_title_for_screen_readers_and_closes_every_element() {
        let now = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 11, 22, 12, 0, 0).unwrap();
        let delivered = [Delivered {
            task: "t1".into(),
            title: "Drive".into(),
            impact: 4.0,
            hours: 2.0,
            slots: 1,
            at: now - chrono::Duration::hours(3),
        }];
        let charts = [
            impact_over_time(&delivered, now),
            impact_over_time(&[], now),
            hours_use(&HoursUse::default()),
            bars("Unmet demand by skill", &[], "h"),
        ];
        for svg in &charts {
            assert!(
                svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
                "{svg}"
            );
            assert!(svg.contains("role=\"img\""), "{svg}");
            assert!(svg.contains("<title>"), "{svg}");
            assert!(svg.ends_with("</svg>"), "{svg}");
            // Parsed as XML: every element opened is closed.
            for element in ["rect", "line", "path", "text", "title", "style"] {
                assert_eq!(
                    svg.matches(&format!("<{element} ")).count()
                        + svg.matches(&format!("<{element}>")).count(),
                    svg.matches(&format!("</{element}>")).count(),
                    "<{element}> left open in {svg}"
                );
            }
        }
        assert!(
            charts[0].contains("<path d=\"M48.0,136.0 L"),
            "{}",
            charts[0]
        );
        assert!(
            charts[1].contains(">no task completed yet</text>"),
            "{}",
            charts[1]
        );
    }

    #[test]
    fn many_bars_are_summed_into_other() {
        let rows: Vec<(String, f64)> = (0..20).map(|index| (format!("s{index}"), 1.0)).collect();
        let svg = bars("t", &rows, "h");
        assert_eq!(svg.matches("<rect").count(), BARS_MAX);
        assert!(svg.contains(">other<"));
    }
}

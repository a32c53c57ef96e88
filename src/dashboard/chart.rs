//! Per-epoch line charts as inline SVG, drawn on the server: no charting library to ship, and
//! the same numbers go to a table beside the chart (the text alternative). Pure, so it is tested
//! without a browser.

use std::fmt::Write;

use super::html::esc;

const WIDTH: f64 = 300.0;
const HEIGHT: f64 = 150.0;
const LEFT: f64 = 40.0;
const RIGHT: f64 = 10.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 24.0;

/// One series: (epoch, value) points, oldest first.
pub struct Series<'a> {
    /// Also the CSS class of the `<svg>` (`loss`, `accuracy`).
    pub class: &'a str,
    pub title: &'a str,
    pub points: Vec<(u32, f64)>,
    /// The y axis runs from 0 to this (1 for accuracies; the largest value for a loss).
    pub y_max: Option<f64>,
}

/// The chart of one series. `label` names it for screen readers, which read the table instead.
pub fn line_chart(series: &Series, label: &str) -> String {
    let points = &series.points;
    let mut svg = format!(
        "<svg class=\"chart {}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         role=\"img\" aria-label=\"{}\">",
        esc(series.class),
        esc(label)
    );
    let y_max = series
        .y_max
        .unwrap_or_else(|| points.iter().map(|p| p.1).fold(0.0, f64::max))
        .max(f64::MIN_POSITIVE);
    let x_max = points.iter().map(|p| p.0).max().unwrap_or(1).max(1);
    let x = |epoch: u32| {
        let span = f64::from(x_max.saturating_sub(1).max(1));
        LEFT + (WIDTH - LEFT - RIGHT) * f64::from(epoch.saturating_sub(1)) / span
    };
    let y = |v: f64| TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - (v / y_max).clamp(0.0, 1.0));
    // Axes with their ends labelled: enough to read a training curve's shape and scale.
    let _ = write!(
        svg,
        "<path class=\"axis\" d=\"M{LEFT} {TOP}V{}H{}\"/>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\">0</text>\
         <text x=\"{LEFT}\" y=\"{}\">epoch 1</text>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{x_max}</text>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" class=\"title\">{}</text>",
        HEIGHT - BOTTOM,
        WIDTH - RIGHT,
        LEFT - 4.0,
        TOP + 8.0,
        short(y_max),
        LEFT - 4.0,
        HEIGHT - BOTTOM,
        HEIGHT - 6.0,
        WIDTH - RIGHT,
        HEIGHT - 6.0,
        (LEFT + WIDTH - RIGHT) / 2.0,
        TOP + 8.0,
        esc(series.title),
    );
    if points.is_empty() {
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">no epochs reported yet</text>",
            (LEFT + WIDTH - RIGHT) / 2.0,
            HEIGHT / 2.0
        );
    } else {
        let line: Vec<String> = points
            .iter()
            .map(|&(e, v)| format!("{:.1},{:.1}", x(e), y(v)))
            .collect();
        let _ = write!(svg, "<polyline points=\"{}\"/>", line.join(" "));
        for &(e, v) in points {
            let _ = write!(
                svg,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\"><title>epoch {e}: {}</title></circle>",
                x(e),
                y(v),
                short(v)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// A value as the chart and its table print it: four significant decimals at most.
pub fn short(v: f64) -> String {
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" {
        "0".into()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(points: Vec<(u32, f64)>, y_max: Option<f64>) -> Series<'static> {
        Series {
            class: "loss",
            title: "Loss",
            points,
            y_max,
        }
    }

    #[test]
    fn one_circle_per_epoch_on_a_line_across_the_plot() {
        let svg = line_chart(
            &series(vec![(1, 0.9), (2, 0.5), (3, 0.3)], None),
            "Loss of j",
        );
        assert_eq!(svg.matches("<circle").count(), 3, "{svg}");
        // First epoch at the left edge at the top (the largest loss), last at the right edge.
        assert!(svg.contains("<polyline points=\"40.0,10.0 "), "{svg}");
        assert!(svg.contains(" 290.0,"), "{svg}");
        assert!(
            svg.contains("role=\"img\" aria-label=\"Loss of j\""),
            "{svg}"
        );
    }

    #[test]
    fn accuracies_are_drawn_against_one() {
        let svg = line_chart(&series(vec![(1, 0.5)], Some(1.0)), "a");
        // 0.5 of 1 sits halfway down the 116-pixel plot.
        assert!(svg.contains("cy=\"68.0\""), "{svg}");
    }

    #[test]
    fn no_epochs_says_so_instead_of_drawing_nothing() {
        let svg = line_chart(&series(vec![], None), "a");
        assert!(
            svg.contains("no epochs reported yet") && !svg.contains("<circle"),
            "{svg}"
        );
    }

    #[test]
    fn values_print_short() {
        assert_eq!(short(0.912345), "0.9123");
        assert_eq!(short(1.0), "1");
        assert_eq!(short(0.0), "0");
        assert_eq!(short(0.25), "0.25");
    }
}

//! Pictures drawn on the server as SVG text: the stack graph, bar charts and a trend line.
//! Every piece of text that comes from the project or the record is escaped here, since the
//! pictures are put into pages as they are. Each picture has a `<title>` and a
//! `role="img"`, and the pages list the same numbers in a table beside it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::api::views::Project;

/// Escapes text for SVG (XML) content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const COLUMN: f64 = 190.0;
const ROW: f64 = 56.0;
const NODE_W: f64 = 150.0;
const NODE_H: f64 = 34.0;

/// The stack graph: stacks in columns by depth (a stack stands right of everything it
/// depends on), an arrow from each stack to what depends on it.
pub(crate) fn graph(project: &Project) -> String {
    let names: Vec<&str> = project.stacks.iter().map(|s| s.name.as_str()).collect();
    let mut depth: BTreeMap<&str, usize> = names.iter().map(|n| (*n, 0)).collect();
    // Longest path from a root; at most as many rounds as stacks (a cycle cannot load).
    for _ in 0..names.len() {
        let mut moved = false;
        for stack in &project.stacks {
            let own = stack
                .depends_on
                .iter()
                .filter_map(|d| depth.get(d.as_str()))
                .map(|d| d + 1)
                .max()
                .unwrap_or(0);
            if depth.get(stack.name.as_str()).copied().unwrap_or(0) < own {
                depth.insert(stack.name.as_str(), own);
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    let mut rows_used: BTreeMap<usize, usize> = BTreeMap::new();
    let mut at: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for name in &names {
        let column = depth[name];
        let row = rows_used.entry(column).or_default();
        at.insert(
            name,
            (20.0 + column as f64 * COLUMN, 20.0 + *row as f64 * ROW),
        );
        *row += 1;
    }
    let columns = depth.values().max().map_or(1, |d| d + 1);
    let rows = rows_used.values().max().copied().unwrap_or(1).max(1);
    let width = 40.0 + columns as f64 * COLUMN - (COLUMN - NODE_W);
    let height = 40.0 + rows as f64 * ROW - (ROW - NODE_H);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"graph\" role=\"img\" \
         viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" \
         aria-labelledby=\"graph-title\"><title id=\"graph-title\">Stack graph of {}: \
         {} stacks</title>\
         <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" \
         markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\">\
         <path d=\"M 0 0 L 10 5 L 0 10 z\" class=\"arrowhead\"/></marker></defs>",
        escape(&project.name),
        names.len()
    );
    for stack in &project.stacks {
        let Some(&(x2, y2)) = at.get(stack.name.as_str()) else {
            continue;
        };
        for dependency in &stack.depends_on {
            if let Some(&(x1, y1)) = at.get(dependency.as_str()) {
                let _ = write!(
                    svg,
                    "<line class=\"edge\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" \
                     marker-end=\"url(#arrow)\"/>",
                    x1 + NODE_W,
                    y1 + NODE_H / 2.0,
                    x2 - 2.0,
                    y2 + NODE_H / 2.0
                );
            }
        }
    }
    for (name, (x, y)) in &at {
        let _ = write!(
            svg,
            "<g class=\"node\"><rect x=\"{x}\" y=\"{y}\" width=\"{NODE_W}\" height=\"{NODE_H}\" \
             rx=\"6\"/><text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text></g>",
            x + NODE_W / 2.0,
            y + NODE_H / 2.0 + 5.0,
            escape(name)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A bar chart of one value per label.
pub(crate) fn bars(title: &str, values: &[(String, f64)]) -> String {
    let (width, height, left, bottom, top) = (360.0, 200.0, 44.0, 36.0, 28.0);
    let max = values.iter().map(|(_, v)| *v).fold(0.0_f64, f64::max);
    let scale = if max > 0.0 {
        (height - bottom - top) / max
    } else {
        0.0
    };
    let slot = (width - left - 10.0) / values.len().max(1) as f64;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" role=\"img\" \
         viewBox=\"0 0 {width} {height}\"><title>{}</title>\
         <text class=\"chart-title\" x=\"{left}\" y=\"18\">{}</text>\
         <line class=\"axis\" x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>\
         <text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
        escape(title),
        escape(title),
        height - bottom,
        width - 10.0,
        height - bottom,
        left - 4.0,
        top + 4.0,
        number(max),
    );
    for (i, (label, value)) in values.iter().enumerate() {
        let h = value.max(0.0) * scale;
        let x = left + i as f64 * slot + slot * 0.15;
        let _ = write!(
            svg,
            "<rect class=\"bar\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\">\
             <title>{}: {}</title></rect>\
             <text class=\"tick\" x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            height - bottom - h,
            slot * 0.7,
            escape(label),
            number(*value),
            x + slot * 0.35,
            height - bottom + 16.0,
            escape(label),
        );
    }
    if values.is_empty() {
        let _ = write!(
            svg,
            "<text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">nothing on record</text>",
            width / 2.0,
            height / 2.0
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A trend: one line per series (here a stage), points in the order given.
pub(crate) fn trend(title: &str, points: &[(String, String, f64)]) -> String {
    let (width, height, left, bottom, top) = (640.0, 240.0, 50.0, 30.0, 28.0);
    let max = points.iter().map(|p| p.2).fold(0.0_f64, f64::max);
    let scale = if max > 0.0 {
        (height - bottom - top) / max
    } else {
        0.0
    };
    let step = (width - left - 20.0) / (points.len().max(2) - 1) as f64;
    let mut series: BTreeMap<&str, Vec<(f64, f64, &str)>> = BTreeMap::new();
    for (i, (name, at, value)) in points.iter().enumerate() {
        series.entry(name).or_default().push((
            left + i as f64 * step,
            height - bottom - value * scale,
            at,
        ));
    }
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart wide\" role=\"img\" \
         viewBox=\"0 0 {width} {height}\"><title>{}</title>\
         <text class=\"chart-title\" x=\"{left}\" y=\"18\">{}</text>\
         <line class=\"axis\" x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>\
         <text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
        escape(title),
        escape(title),
        height - bottom,
        width - 10.0,
        height - bottom,
        left - 4.0,
        top + 4.0,
        number(max),
    );
    for (n, (name, line)) in series.iter().enumerate() {
        let path: Vec<String> = line
            .iter()
            .map(|(x, y, _)| format!("{x:.1},{y:.1}"))
            .collect();
        let _ = write!(
            svg,
            "<polyline class=\"series s{}\" points=\"{}\"/>",
            n % 4,
            path.join(" ")
        );
        for (x, y, at) in line {
            let _ = write!(
                svg,
                "<circle class=\"point s{}\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3.5\">\
                 <title>{}: {}</title></circle>",
                n % 4,
                escape(name),
                escape(at)
            );
        }
        let _ = write!(
            svg,
            "<text class=\"legend s{}\" x=\"{}\" y=\"{}\">{}</text>",
            n % 4,
            width - 150.0,
            20.0 + n as f64 * 16.0,
            escape(name)
        );
    }
    if points.is_empty() {
        let _ = write!(
            svg,
            "<text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">no drills on record</text>",
            width / 2.0,
            height / 2.0
        );
    }
    svg.push_str("</svg>");
    svg
}

fn number(value: f64) -> String {
    if value >= 100.0 || value == value.trunc() {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::views::Stack;

    #[test]
    fn text_from_the_record_is_escaped() {
        let chart = bars("a <b>", &[("<script>".to_owned(), 2.0)]);
        assert!(!chart.contains("<script>") && chart.contains("&lt;script&gt;"));
        let project = Project {
            name: "p&q".to_owned(),
            branch: "main".to_owned(),
            stages: Vec::new(),
            stacks: vec![
                Stack {
                    name: "net".to_owned(),
                    dir: "stacks/net".to_owned(),
                    team: None,
                    depends_on: Vec::new(),
                },
                Stack {
                    name: "app\"".to_owned(),
                    dir: "stacks/app".to_owned(),
                    team: None,
                    depends_on: vec!["net".to_owned()],
                },
            ],
        };
        let picture = graph(&project);
        assert!(picture.contains("p&amp;q") && picture.contains("app&quot;"));
        assert_eq!(picture.matches("<line class=\"edge\"").count(), 1);
    }
}

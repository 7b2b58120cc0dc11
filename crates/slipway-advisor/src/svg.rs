//! A picture of the stacks as SVG: one box per stack, its area growing with its resources,
//! coloured by team; arrows from a stack to the stacks it depends on; dashed red lines
//! between stacks with strong co-change coupling.
//!
//! Layout is by dependency depth: stacks that depend on nothing sit in the top row, each
//! dependent below what it uses, so arrows point upwards. Rows wrap so a wide project
//! stays readable.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use crate::model::Report;

const PALETTE: &[&str] = &[
    "#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7", "#9c755f",
    "#e15759", "#bab0ac",
];
const NO_TEAM: &str = "#d0d0d0";
const PER_ROW: usize = 10;
const CELL_W: f64 = 190.0;
const CELL_H: f64 = 130.0;
const MARGIN: f64 = 20.0;
/// Wide enough for the title line and the legend beside a single column of stacks.
const MIN_WIDTH: f64 = 680.0;

pub fn render(report: &Report) -> String {
    let index: HashMap<&str, usize> = report
        .stacks
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let depth = depths(report, &index);
    let mut levels: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, d) in depth.iter().enumerate() {
        levels.entry(*d).or_default().push(i);
    }
    let mut centre = vec![(0.0, 0.0); report.stacks.len()];
    let mut row = 0usize;
    let mut width = 0usize;
    for members in levels.values() {
        for chunk in members.chunks(PER_ROW) {
            for (col, &i) in chunk.iter().enumerate() {
                centre[i] = (
                    MARGIN + CELL_W * (col as f64 + 0.5),
                    MARGIN + 30.0 + CELL_H * (row as f64 + 0.5),
                );
            }
            width = width.max(chunk.len());
            row += 1;
        }
    }
    let total_w = (MARGIN * 2.0 + CELL_W * width.max(1) as f64).max(MIN_WIDTH);
    let total_h = MARGIN * 2.0 + 30.0 + CELL_H * row.max(1) as f64;

    let mut teams: Vec<&str> = report
        .stacks
        .iter()
        .filter_map(|s| s.team.as_deref())
        .collect();
    teams.sort_unstable();
    teams.dedup();
    let colour = |team: Option<&str>| {
        team.and_then(|t| teams.iter().position(|x| *x == t))
            .map_or(NO_TEAM, |i| PALETTE[i % PALETTE.len()])
    };

    let mut out = String::new();
    let _ = writeln!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{total_w}" height="{total_h}" viewBox="0 0 {total_w} {total_h}" font-family="sans-serif" font-size="12">"##
    );
    let _ = writeln!(
        out,
        r##"<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>"##
    );
    let _ = writeln!(
        out,
        r##"<text x="{MARGIN}" y="{}" font-size="14">Stacks: box area by resources, colour by team, arrows to dependencies, dashed red: changed together</text>"##,
        MARGIN + 10.0
    );
    let size = |i: usize| {
        let n = report.stacks[i].resources as f64;
        let w = (70.0 + n.sqrt() * 14.0).min(CELL_W - 16.0);
        let h = (34.0 + n.sqrt() * 8.0).min(CELL_H - 30.0);
        (w, h)
    };
    for (i, stack) in report.stacks.iter().enumerate() {
        for dep in &stack.dependencies {
            let Some(&j) = index.get(dep.as_str()) else {
                continue;
            };
            let (x1, y1) = centre[i];
            let (x2, y2) = centre[j];
            let (_, h) = size(j);
            let _ = writeln!(
                out,
                r##"<line class="dependency" x1="{x1:.1}" y1="{:.1}" x2="{x2:.1}" y2="{:.1}" stroke="#555" marker-end="url(#arrow)"><title>{} depends on {}</title></line>"##,
                y1 - size(i).1 / 2.0,
                y2 + h / 2.0,
                escape(&stack.name),
                escape(dep)
            );
        }
    }
    for coupling in report.couplings.iter().filter(|c| c.strong) {
        let (Some(&a), Some(&b)) = (
            index.get(coupling.stacks[0].as_str()),
            index.get(coupling.stacks[1].as_str()),
        ) else {
            continue;
        };
        let ((x1, y1), (x2, y2)) = (centre[a], centre[b]);
        let _ = writeln!(
            out,
            r##"<line class="coupling" x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" stroke="#d62728" stroke-width="3" stroke-dasharray="6 4"><title>{} and {} changed together in {} of {} commits</title></line>"##,
            escape(&coupling.stacks[0]),
            escape(&coupling.stacks[1]),
            coupling.both,
            coupling.either
        );
    }
    for (i, stack) in report.stacks.iter().enumerate() {
        let (x, y) = centre[i];
        let (w, h) = size(i);
        let has_advice = report.recommendations_for(&stack.name).next().is_some();
        let _ = writeln!(
            out,
            r##"<g class="stack"><title>{} ({} resources, team {})</title><rect x="{:.1}" y="{:.1}" width="{w:.1}" height="{h:.1}" rx="6" fill="{}" stroke="{}" stroke-width="{}"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text><text x="{x:.1}" y="{:.1}" text-anchor="middle" font-size="10">{} res.</text></g>"##,
            escape(&stack.name),
            stack.resources,
            escape(stack.team.as_deref().unwrap_or("none")),
            x - w / 2.0,
            y - h / 2.0,
            colour(stack.team.as_deref()),
            if has_advice { "#d62728" } else { "#333" },
            if has_advice { 2.5 } else { 1.0 },
            y - 2.0,
            escape(&stack.name),
            y + 12.0,
            stack.resources
        );
    }
    // The legend: one swatch per team.
    for (n, team) in teams.iter().enumerate() {
        let y = MARGIN + 30.0 + 16.0 * n as f64;
        let _ = writeln!(
            out,
            r##"<g class="legend"><rect x="{:.1}" y="{y:.1}" width="10" height="10" fill="{}"/><text x="{:.1}" y="{:.1}" font-size="10">{}</text></g>"##,
            total_w - 120.0,
            colour(Some(team)),
            total_w - 105.0,
            y + 9.0,
            escape(team)
        );
    }
    out.push_str("</svg>\n");
    out
}

/// Longest dependency chain below each stack (0 for stacks that depend on nothing).
fn depths(report: &Report, index: &HashMap<&str, usize>) -> Vec<usize> {
    let n = report.stacks.len();
    let mut depth: Vec<Option<usize>> = vec![None; n];
    let mut on_path = vec![false; n];
    fn visit(
        i: usize,
        report: &Report,
        index: &HashMap<&str, usize>,
        depth: &mut [Option<usize>],
        on_path: &mut [bool],
    ) -> usize {
        if let Some(d) = depth[i] {
            return d;
        }
        // A cycle (already reported by configuration loading) is cut here.
        if on_path[i] {
            return 0;
        }
        on_path[i] = true;
        let mut d = 0;
        for dep in &report.stacks[i].dependencies {
            if let Some(&j) = index.get(dep.as_str()) {
                d = d.max(visit(j, report, index, depth, on_path) + 1);
            }
        }
        on_path[i] = false;
        depth[i] = Some(d);
        d
    }
    (0..n)
        .map(|i| visit(i, report, index, &mut depth, &mut on_path))
        .collect()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

//! Printing a blast radius report to stdout, shared by `slipway plan` and `slipway analyze`:
//! the format and colour flags and the one place that decides whether to colour.

use std::io::{IsTerminal, Write};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use slipway_plan::{Report, render_markdown, render_terminal};

/// How a report is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// A table for people at a terminal.
    Terminal,
    /// Markdown, to paste into a pull request.
    Markdown,
    /// JSON, schema `slipway.blast-radius/v1` (docs/report-schema.md).
    Json,
}

/// When the terminal table is coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// When stdout is a terminal and NO_COLOR is not set.
    Auto,
    Always,
    Never,
}

/// The report flags.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// Format of the blast radius report printed to stdout.
    #[arg(long, value_enum, default_value_t = ReportFormat::Terminal)]
    pub format: ReportFormat,
    /// Colour the terminal report.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
}

impl ReportArgs {
    fn colored(&self) -> bool {
        match self.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
                    && std::io::stdout().is_terminal()
            }
        }
    }

    /// The report in the chosen format.
    pub fn render(&self, report: &Report) -> String {
        match self.format {
            ReportFormat::Terminal => render_terminal(report, self.colored()),
            ReportFormat::Markdown => render_markdown(report),
            ReportFormat::Json => {
                let mut json = report.to_json();
                json.push('\n');
                json
            }
        }
    }

    /// Writes the report to stdout (data goes to stdout; progress went to stderr).
    pub fn print(&self, report: &Report) -> Result<()> {
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(self.render(report).as_bytes())
            .and_then(|()| stdout.flush())
            .context("cannot write the report to stdout")
    }
}

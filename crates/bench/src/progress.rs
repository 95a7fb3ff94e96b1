//! Progress bars on stderr, so stdout carries only the report.

use std::fmt;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// A bar for one measured phase; drawn nowhere when hidden so scripts and CI logs stay clean.
pub(crate) fn bar(len: u64, prefix: String, hidden: bool) -> ProgressBar {
    let target = if hidden {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    };
    let style = ProgressStyle::with_template(
        "{prefix:>14} [{wide_bar}] {pos:>6}/{len:6} {rate:>11} {elapsed_precise}",
    )
    .map(|s| {
        s.progress_chars("=> ")
            .with_key("rate", |state: &ProgressState, w: &mut dyn fmt::Write| {
                let _ = write!(w, "{:.0} req/s", state.per_sec());
            })
    })
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    let bar = ProgressBar::with_draw_target(Some(len), target).with_style(style);
    bar.set_prefix(prefix);
    bar
}

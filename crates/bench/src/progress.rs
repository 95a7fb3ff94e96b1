//! Progress bars on stderr, so stdout carries only the report.

use std::fmt;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// A bar for one measured phase; drawn nowhere when hidden so scripts and CI logs stay clean.
pub(crate) fn bar(len: u64, prefix: String, hidden: bool) -> ProgressBar {
    bar_in(len, prefix, "req/s", hidden)
}

/// [`bar`] with the rate shown in `unit` (e.g. `enrol/s`).
pub(crate) fn bar_in(len: u64, prefix: String, unit: &'static str, hidden: bool) -> ProgressBar {
    let target = if hidden {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    };
    let style = ProgressStyle::with_template(
        "{prefix:>14} [{wide_bar}] {pos:>6}/{len:6} {rate:>11} {elapsed_precise}",
    )
    .map(|s| {
        s.progress_chars("=> ").with_key(
            "rate",
            move |state: &ProgressState, w: &mut dyn fmt::Write| {
                let _ = write!(w, "{:.0} {unit}", state.per_sec());
            },
        )
    })
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    let bar = ProgressBar::with_draw_target(Some(len), target).with_style(style);
    bar.set_prefix(prefix);
    bar
}

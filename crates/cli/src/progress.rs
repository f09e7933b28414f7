//! Transfer progress for people: a bar per file on standard error, drawn only when it is a
//! terminal (indicatif hides them otherwise, so scripts and `-o json` see nothing).

use std::path::PathBuf;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use ogpu_client::transfer::Progress;

/// The bars of the files moved so far; the one moving now is last.
pub struct Bars {
    bars: MultiProgress,
    current: Option<(PathBuf, ProgressBar)>,
}

impl Bars {
    pub fn new() -> Bars {
        Bars { bars: MultiProgress::new(), current: None }
    }

    /// Moves the bar of `progress.path`, starting one when a new file begins.
    pub fn show(&mut self, progress: Progress<'_>) {
        if self.current.as_ref().is_none_or(|(path, _)| path != progress.path) {
            let style = ProgressStyle::with_template("{msg} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            let bar = match progress.size {
                Some(size) => ProgressBar::new(size).with_style(style),
                // A download's size is known only once it ends.
                None => ProgressBar::new_spinner(),
            };
            let bar = self.bars.add(bar);
            bar.set_message(progress.path.display().to_string());
            self.current = Some((progress.path.to_path_buf(), bar));
        }
        if let Some((_, bar)) = &self.current {
            bar.set_position(progress.done);
        }
    }
}

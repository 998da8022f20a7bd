//! How every `sigil` command prints its result: one JSON value on one line
//! with `--json`, a rendering for people otherwise. Commands hand both forms
//! to [`Output`] and never test the flag themselves, so `--json` means the
//! same everywhere: stdout carries exactly one JSON document (or nothing),
//! and progress notes for people stay out of it.

use std::fmt::{Display, Write as _};

use serde_json::Value;

/// Where a command's result goes, chosen once from `--json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Output {
    json: bool,
}

impl Output {
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    /// Prints a result: `value` as one line of JSON, or the text `human`
    /// renders, as is (end each line with a newline; empty prints nothing).
    pub fn print(self, value: &Value, human: impl FnOnce() -> String) {
        if self.json {
            println!("{value}");
        } else {
            print!("{}", human());
        }
    }

    /// A note for people on stderr (progress, counts, warnings already in
    /// the JSON result); nothing with `--json`.
    pub fn note(self, text: impl Display) {
        if !self.json {
            eprintln!("{text}");
        }
    }
}

/// A human rendering, built line by line.
#[derive(Debug, Default)]
pub struct Text(String);

impl Text {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `line` and a newline.
    pub fn line(&mut self, line: impl Display) -> &mut Self {
        // Writing to a String cannot fail.
        let _ = writeln!(self.0, "{line}");
        self
    }
}

impl From<Text> for String {
    fn from(t: Text) -> String {
        t.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_ends_every_line() {
        let mut t = Text::new();
        t.line("a").line(format_args!("b {}", 1));
        assert_eq!(String::from(t), "a\nb 1\n");
        assert_eq!(String::from(Text::new()), "");
    }

    #[test]
    fn json_output_does_not_render_the_human_form() {
        Output::new(true).print(&Value::Null, || unreachable!("not rendered with --json"));
    }
}

//! Small helpers shared by the examples: a flag parser without dependencies.
#![allow(dead_code)]

use std::collections::HashMap;
use std::str::FromStr;

/// `--flag value` / `--switch` arguments. Unknown flags are errors.
pub struct Args {
    values: HashMap<String, Vec<String>>,
    switches: Vec<String>,
    used: std::cell::RefCell<Vec<String>>,
}

impl Args {
    /// Parse `std::env::args()`; `switches` are the flags that take no value.
    pub fn parse(switches: &[&str]) -> Result<Self, String> {
        let mut values: HashMap<String, Vec<String>> = HashMap::new();
        let mut found = Vec::new();
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            let Some(name) = arg.strip_prefix("--") else {
                return Err(format!("unexpected argument `{arg}` (flags start with --)"));
            };
            let (name, inline) = match name.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (name.to_string(), None),
            };
            if switches.contains(&name.as_str()) {
                found.push(name);
                continue;
            }
            let value = match inline {
                Some(v) => v,
                None => it.next().ok_or_else(|| format!("--{name} needs a value"))?,
            };
            values.entry(name).or_default().push(value);
        }
        Ok(Self {
            values,
            switches: found,
            used: Default::default(),
        })
    }

    /// Whether a switch was given.
    pub fn flag(&self, name: &str) -> bool {
        self.used.borrow_mut().push(name.to_string());
        self.switches.iter().any(|s| s == name)
    }

    /// The last value of `--name`, parsed.
    pub fn get<T: FromStr>(&self, name: &str) -> Result<Option<T>, String>
    where
        T::Err: std::fmt::Display,
    {
        self.used.borrow_mut().push(name.to_string());
        match self.values.get(name).and_then(|v| v.last()) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|e| format!("--{name} {v}: {e}")),
        }
    }

    /// `--name` parsed, or `default`.
    pub fn get_or<T: FromStr>(&self, name: &str, default: T) -> Result<T, String>
    where
        T::Err: std::fmt::Display,
    {
        Ok(self.get(name)?.unwrap_or(default))
    }

    /// Every value of a repeatable `--name`.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.used.borrow_mut().push(name.to_string());
        self.values.get(name).cloned().unwrap_or_default()
    }

    /// Error if a flag was given that the program never asked about.
    pub fn finish(&self) -> Result<(), String> {
        let used = self.used.borrow();
        let unknown: Vec<&String> = self
            .values
            .keys()
            .chain(self.switches.iter())
            .filter(|k| !used.contains(k))
            .collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "unknown flag(s): {} (see the doc comment at the top of the example)",
                unknown
                    .iter()
                    .map(|k| format!("--{k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
    }
}

/// What to tell a user whose `--out` already holds a finished run of `epochs` epochs.
pub fn print_finished_run(out: &std::path::Path, epochs: usize) {
    println!(
        "{} already holds a finished run ({epochs} epoch(s)); results: {}, {}.\n\
         To train it further, raise --epochs (it resumes from its last checkpoint); to start \
         over, add --overwrite.",
        out.display(),
        out.join("adapter").display(),
        out.join("metrics.json").display()
    );
}

/// Bytes as a human-readable size (the library's, as download progress lines print it).
#[allow(unused_imports)]
pub use burn_peft::models::download::human_bytes;

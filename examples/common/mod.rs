//! Small helpers shared by the examples (flags are parsed with clap: `burn_peft::cli`).
#![allow(dead_code)]

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

//! Small helpers shared by the examples (flags are parsed with clap: `burn_peft::cli`).
#![allow(dead_code)]

/// Bytes as a human-readable size (the library's, as download progress lines print it).
#[allow(unused_imports)]
pub use burn_peft::models::download::human_bytes;

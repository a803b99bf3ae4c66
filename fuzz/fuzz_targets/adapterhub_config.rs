#![no_main]
// cargo-fuzz entry point; the target itself is burn_peft_fuzz::adapterhub_config (fuzz/src/lib.rs).
#[path = "../src/alloc_limit.rs"]
mod alloc_limit;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    burn_peft_fuzz::adapterhub_config(data);
});

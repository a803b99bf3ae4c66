//! GEMM probe: single-thread f32 GEMM throughput of the `gemm` crate (what burn-flex calls) per
//! thread CPU second, for W1's FFN shape, with the default (AVX2 `fma`) microkernels or, with
//! `--features v4`, the AVX-512 ones. CPU time, not wall time, so that it survives a loaded
//! machine. Standalone (own `[workspace]`):
//!
//! ```sh
//! cd scripts/gemm_probe
//! CARGO_TARGET_DIR=t3 cargo run --release && CARGO_TARGET_DIR=t4 cargo run --release --features v4
//! ```
fn cpu_s() -> f64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}
fn main() {
    let (m, k, n) = (1248usize, 384usize, 1536usize); // W1: 32 x 39 tokens, FFN up-projection
    let a = vec![0.5f32; m * k];
    let b = vec![0.25f32; k * n];
    let mut c = vec![0f32; m * n];
    let reps = 20;
    let mut best = 0f64;
    for _ in 0..5 {
        let t0 = cpu_s();
        for _ in 0..reps {
            unsafe {
                gemm::gemm(m, n, k, c.as_mut_ptr(), 1, n as isize, false, a.as_ptr(), 1, k as isize,
                    b.as_ptr(), 1, n as isize, 0.0f32, 1.0f32, false, false, false, gemm::Parallelism::None);
            }
        }
        let dt = cpu_s() - t0;
        let gflops = 2.0 * (m * n * k * reps) as f64 / dt / 1e9;
        best = best.max(gflops);
        println!("{gflops:.1} GFLOP/s per CPU second");
    }
    println!("best {best:.1} (c[0] = {})", c[0]);
}

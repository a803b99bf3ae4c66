//! A global allocator for the fuzz binaries that aborts on any single allocation above 1 GiB, so
//! that a file claiming a huge tensor is reported as a crash (with its input saved) even without
//! a sanitizer's malloc hooks (`-malloc_limit_mb` needs them; we build with `-s none`).

use std::alloc::{GlobalAlloc, Layout, System};

const LIMIT: usize = 1 << 30;

pub struct Limited;

fn check(size: usize) {
    if size > LIMIT {
        eprintln!("==alloc-limit== allocation of {size} bytes (> 1 GiB)");
        std::process::abort();
    }
}

unsafe impl GlobalAlloc for Limited {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        check(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Limited = Limited;

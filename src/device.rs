//! Choosing the device in binaries: the compiled-in backend by burn's priority
//! (CUDA > Metal > Vulkan > wgpu > Flex > NdArray), overridable by name.

use burn::tensor::Device;

use crate::Error;

/// Backends compiled into this build, in burn's priority order.
pub fn compiled_backends() -> Vec<&'static str> {
    let mut v = Vec::new();
    if cfg!(feature = "cuda") {
        v.push("cuda");
    }
    if cfg!(feature = "metal") {
        v.push("metal");
    }
    if cfg!(feature = "vulkan") {
        v.push("vulkan");
    }
    if cfg!(feature = "wgpu") {
        v.push("wgpu");
    }
    if cfg!(feature = "flex") {
        v.push("flex");
    }
    if cfg!(feature = "ndarray") {
        v.push("ndarray");
    }
    v
}

/// The device named `name` (from a `--device` flag), else the one named by the `BURN_DEVICE`
/// environment variable, else the highest-priority compiled-in backend.
///
/// Unlike `Device::default()`, an unknown name or a backend that is not compiled in is an
/// error, not a panic.
pub fn select_device(name: Option<&str>) -> Result<Device, Error> {
    let from_env = std::env::var("BURN_DEVICE").ok();
    let name = name.map(str::to_string).or(from_env);
    let name = match name {
        Some(n) if !n.trim().is_empty() => n.trim().to_ascii_lowercase(),
        _ => compiled_backends()
            .first()
            .map(|s| s.to_string())
            .ok_or(Error::NoBackend)?,
    };
    device_by_name(&name)
}

fn not_compiled(device: &str, feature: &'static str) -> Error {
    Error::BackendNotCompiled {
        device: device.to_string(),
        feature,
    }
}

/// The device for a backend name (`flex`, `ndarray`, `wgpu`, `vulkan`, `metal`, `cuda`).
pub fn device_by_name(name: &str) -> Result<Device, Error> {
    match name {
        "flex" | "cpu" => {
            #[cfg(feature = "flex")]
            return Ok(Device::flex());
            #[allow(unreachable_code)]
            Err(not_compiled(name, "flex"))
        }
        "ndarray" => {
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)]
            return Ok(Device::ndarray());
            #[allow(unreachable_code)]
            Err(not_compiled(name, "ndarray"))
        }
        "wgpu" => {
            #[cfg(feature = "wgpu")]
            return Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice));
            #[allow(unreachable_code)]
            Err(not_compiled(name, "wgpu"))
        }
        "vulkan" => {
            #[cfg(feature = "vulkan")]
            return Ok(Device::vulkan(burn::tensor::DeviceKind::DefaultDevice));
            #[allow(unreachable_code)]
            Err(not_compiled(name, "vulkan"))
        }
        "metal" => {
            #[cfg(feature = "metal")]
            return Ok(Device::metal(burn::tensor::DeviceKind::DefaultDevice));
            #[allow(unreachable_code)]
            Err(not_compiled(name, "metal"))
        }
        "cuda" => {
            #[cfg(feature = "cuda")]
            return Ok(Device::cuda(0));
            #[allow(unreachable_code)]
            Err(not_compiled(name, "cuda"))
        }
        other => Err(Error::UnknownDevice(other.to_string())),
    }
}

/// Let the C allocator keep freed tensor buffers for reuse instead of handing them back to the
/// kernel (glibc on Linux; elsewhere it does nothing and returns `false`).
///
/// CPU backends allocate a fresh buffer for most tensor ops. glibc serves buffers above its
/// mmap threshold (128 KiB, growing only as far as the largest freed one) with `mmap` and
/// returns them with `munmap`, so each training step page-faults and zeroes hundreds of
/// megabytes anew. Raising the mmap threshold to glibc's maximum (32 MiB) and the trim
/// threshold to 1 GiB removed that: +9% MiniLM adapter-training throughput on flex with the
/// same peak RSS (`bench/results.md`). The setting is process-wide, so it is the binary's call:
/// the examples and the benchmark make it at start-up. Returns whether both settings took.
pub fn tune_host_allocator() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters; both values are in glibc's
        // documented ranges (M_MMAP_THRESHOLD <= 32 MiB on 64-bit targets).
        let mmap = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20) };
        let trim = unsafe { libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30) };
        mmap == 1 && trim == 1
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocator_tuning_takes_on_glibc() {
        let applied = tune_host_allocator();
        assert_eq!(applied, cfg!(all(target_os = "linux", target_env = "gnu")));
    }

    #[test]
    fn unknown_and_missing_backends_are_errors() {
        assert!(matches!(
            device_by_name("tpu"),
            Err(Error::UnknownDevice(_))
        ));
        if !cfg!(feature = "cuda") {
            assert!(matches!(
                device_by_name("cuda"),
                Err(Error::BackendNotCompiled {
                    feature: "cuda",
                    ..
                })
            ));
        }
        if cfg!(feature = "flex") {
            assert!(device_by_name("flex").is_ok());
            assert!(select_device(Some("flex")).is_ok());
        }
    }
}

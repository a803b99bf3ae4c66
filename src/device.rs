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
/// environment variable, else the highest-priority compiled-in backend that works here.
///
/// Unlike `Device::default()`, an unknown name or a backend that is not compiled in is an
/// error, not a panic. GPU devices are probed before use ([`probe_device`]): a device asked
/// for by name that cannot start (no driver, no GPU, a failed initialisation) is
/// [`Error::DeviceUnavailable`]; when none was named, a GPU backend that cannot start is
/// passed over for the next compiled-in one (down to the CPU) with one warning line on stderr.
pub fn select_device(name: Option<&str>) -> Result<Device, Error> {
    let from_env = std::env::var("BURN_DEVICE").ok();
    let name = name.map(str::to_string).or(from_env);
    if let Some(n) = name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
        let n = n.to_ascii_lowercase();
        let device = device_by_name(&n)?;
        probe_device(&n, &device)?;
        return Ok(device);
    }
    let compiled = compiled_backends();
    let mut last = Error::NoBackend;
    for (i, backend) in compiled.iter().enumerate() {
        let device = device_by_name(backend)?;
        match probe_device(backend, &device) {
            Ok(()) => return Ok(device),
            Err(e) => {
                if let Some(next) = compiled.get(i + 1) {
                    eprintln!("warning: {e}; using {next} instead");
                }
                last = e;
            }
        }
    }
    Err(last)
}

/// Check that `device` (of backend `name`) can run a tensor op here, before any real work.
///
/// CPU backends always can. For `cuda` the NVIDIA driver library is looked for first (Linux:
/// `libcuda.so.1`); then, for every GPU backend, a two-element sum runs on the device. A
/// backend that panics while starting (as wgpu does without an adapter and cudarc without a
/// driver) becomes [`Error::DeviceUnavailable`] with the panic's message; the default panic
/// message is held back while probing (the process-wide panic hook is swapped for the
/// duration, so probe at start-up, before other threads run).
pub fn probe_device(name: &str, device: &Device) -> Result<(), Error> {
    if matches!(name, "flex" | "cpu" | "ndarray") {
        return Ok(());
    }
    let unavailable = |reason: String| Error::DeviceUnavailable {
        device: name.to_string(),
        reason,
    };
    if name == "cuda" {
        cuda_driver_present().map_err(unavailable)?;
    }
    let device = device.clone();
    let sum = catch_panic(move || {
        burn::tensor::Tensor::<1>::from_floats([1.0, 2.0], &device)
            .sum()
            .into_scalar::<f32>()
    })
    .map_err(unavailable)?;
    if sum == 3.0 {
        Ok(())
    } else {
        Err(unavailable(format!("a test sum of 1 + 2 gave {sum}")))
    }
}

/// Whether the NVIDIA driver's library can be loaded (Linux); elsewhere assumed present.
fn cuda_driver_present() -> Result<(), String> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let lib = c"libcuda.so.1";
        // SAFETY: dlopen with a valid C string and RTLD_LAZY; the handle is closed at once.
        let handle = unsafe { libc::dlopen(lib.as_ptr(), libc::RTLD_LAZY) };
        if handle.is_null() {
            return Err(
                "the NVIDIA driver library libcuda.so.1 was not found (install the \
                 NVIDIA driver, or choose another device with --device or BURN_DEVICE)"
                    .to_string(),
            );
        }
        // SAFETY: `handle` came from a successful dlopen.
        unsafe { libc::dlclose(handle) };
    }
    Ok(())
}

/// Run `f`, turning a panic into `Err(its message)` without printing it.
fn catch_panic<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    use std::sync::{Arc, Mutex};
    let message: Arc<Mutex<Option<String>>> = Arc::default();
    let seen = message.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = match info.payload().downcast_ref::<&str>() {
            Some(s) => s.to_string(),
            None => match info.payload().downcast_ref::<String>() {
                Some(s) => s.clone(),
                None => info.to_string(),
            },
        };
        if let Ok(mut m) = seen.lock() {
            m.get_or_insert(text);
        }
    }));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(previous);
    result.map_err(|_| {
        message
            .lock()
            .ok()
            .and_then(|m| m.clone())
            .unwrap_or_else(|| "the backend panicked while starting".to_string())
    })
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

    /// A backend that panics while starting becomes an error carrying the panic's message;
    /// nothing escapes.
    #[test]
    fn a_panicking_backend_is_an_error_not_a_panic() {
        let got: Result<f32, String> =
            catch_panic(|| panic!("Unable to dynamically load the \"cuda\" shared library"));
        match got {
            Err(m) => assert!(m.contains("cuda"), "{m}"),
            Ok(_) => panic!("a panic must be an error"),
        }
        assert_eq!(catch_panic(|| 5), Ok(5));
    }

    #[test]
    fn cpu_devices_pass_the_probe() {
        if cfg!(feature = "flex") {
            let device = device_by_name("flex").unwrap_or_else(|e| panic!("{e}"));
            assert!(probe_device("flex", &device).is_ok());
            // The op path of the probe also works on the CPU.
            let sum = catch_panic(move || {
                burn::tensor::Tensor::<1>::from_floats([1.0, 2.0], &device)
                    .sum()
                    .into_scalar::<f32>()
            });
            assert_eq!(sum, Ok(3.0));
        }
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn a_missing_cuda_driver_is_named() {
        // This machine has no NVIDIA driver; where one is installed the check passes.
        if let Err(m) = cuda_driver_present() {
            assert!(m.contains("libcuda.so.1"), "{m}");
        }
    }
}

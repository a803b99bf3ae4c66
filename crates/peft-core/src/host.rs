//! Which devices keep tensors in host memory (CPU backends), for the fast paths in
//! [`crate::dropout`] and [`crate::activation`].

use burn::tensor::Device;

/// Whether tensors on `device` (with or without autodiff) live in host memory, so that a tensor
/// built from a `Vec` costs no upload. True for flex and ndarray when this crate's features of
/// the same names are on (the facade turns them on with its backend features); false otherwise,
/// which only means the portable path is taken.
pub fn host_resident(device: &Device) -> bool {
    let inner = device.clone().inner();
    #[cfg(feature = "flex")]
    if inner == Device::flex() {
        return true;
    }
    #[cfg(feature = "ndarray")]
    #[allow(deprecated)]
    if inner == Device::ndarray() {
        return true;
    }
    let _ = inner;
    false
}

/// Whether `device` (with or without autodiff) is flex, where the fused kernels of
/// [`crate::kernels`] run; false without this crate's `flex` feature.
pub fn is_flex(device: &Device) -> bool {
    #[cfg(feature = "flex")]
    if device.clone().inner() == Device::flex() {
        return true;
    }
    let _ = device;
    false
}

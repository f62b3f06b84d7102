//! The compute device: which burn backend runs the tensors, and the CPU thread pool.

use burn::tensor::Device;

/// The compute device and a name for it: CUDA when built with the `cuda` feature, else the
/// pure-Rust flex CPU backend.
pub fn compute_device() -> (Device, &'static str) {
    init_threads(None);
    #[cfg(feature = "cuda")]
    {
        (Device::cuda(0), "cuda")
    }
    #[cfg(not(feature = "cuda"))]
    {
        (Device::flex(), "flex (pure-Rust CPU)")
    }
}

/// Whether the CPU pool flushes subnormal floats to zero: only when the environment variable
/// `DISTILL_DENORMALS` is `flush`. Flushing changes results wherever a subnormal occurs, so
/// reports record the setting.
pub fn flushes_denormals() -> bool {
    static FLUSH: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FLUSH.get_or_init(|| std::env::var("DISTILL_DENORMALS").as_deref() == Ok("flush"))
}

/// The values `DISTILL_DENORMALS` may take, checked by the binary before any work.
pub const DENORMALS_SETTINGS: [&str; 2] = ["flush", "keep"];

/// Sets flush-to-zero and denormals-are-zero on this thread when [`flushes_denormals`] says
/// so. Subnormal arithmetic takes a slow path on x86, which an early version of the training
/// loop hit late in training; today's loops were measured not to produce any (the same bytes
/// with and without the flush, docs/speed.md), so it is off by default.
///
/// It is also unsound in Rust's model of floating point, which assumes the default MXCSR: the
/// standard library documents changing its denormal flags (`_mm_setcsr`) as undefined
/// behaviour, since the compiler may evaluate or reorder float operations as if unflushed.
fn flush_denormals() {
    #[cfg(target_arch = "x86_64")]
    if flushes_denormals() {
        let mut csr: u32 = 0;
        // SAFETY (memory): stmxcsr/ldmxcsr only read and write this thread's SSE control
        // register through a valid pointer to a local u32. The float-semantics caveat above is
        // why this runs only when the user asks for it.
        unsafe {
            std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack));
            csr |= 0x8040; // FTZ (bit 15) and DAZ (bit 6)
            std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack));
        }
    }
}

/// Builds the global thread pool used by the CPU backend's kernels, with `threads` workers
/// (default: one per core) that flush denormals, and flushes on the calling thread. Only the
/// first call sizes the pool; later calls just flush.
pub fn init_threads(threads: Option<usize>) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let mut b = rayon::ThreadPoolBuilder::new().start_handler(|_| flush_denormals());
        if let Some(n) = threads {
            b = b.num_threads(n.max(1));
        }
        let _ = b.build_global();
    });
    flush_denormals();
}

/// Worker threads of the CPU pool.
pub fn threads() -> usize {
    rayon::current_num_threads()
}

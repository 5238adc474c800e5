//! Process-wide settings the fast kernels need, made once at start-up by the binaries that train.

/// Every op of a training step allocates its output; glibc hands large blocks back to the kernel
/// on free, so each step page-faults and zeroes them again (measured in docs/performance.md).
/// Keeping freed memory in the process avoids that.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes allocator thresholds, and glibc serialises it with allocation.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// The fast kernels run on rayon's pool. candle's element-wise ops have a second pool whose
/// threads spin after each op, stealing the cores rayon's threads need next
/// (docs/performance.md). So unless candle's own ops do the heavy work in this process
/// (`reference_ops_run`), its pool stays at one thread, the caller's. `CANDLE_NUM_THREADS`
/// overrides.
///
/// Call it first thing in `main`, before any thread starts: it sets an environment variable,
/// which is unsound while another thread reads the environment.
pub fn single_candle_pool(reference_ops_run: bool) {
    if !reference_ops_run && std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
}

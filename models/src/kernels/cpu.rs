//! What CPU the kernels run on: its model, the vector extensions they can use, and its caches,
//! read at run time, so that every benchmark table says where it was measured.

use std::fmt;

/// One cache level as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cache {
    pub level: u32,
    /// `Data`, `Instruction` or `Unified`.
    pub kind: String,
    pub size_kib: u64,
    /// Logical CPUs sharing it.
    pub shared_by: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuInfo {
    pub model: String,
    /// x86 `cpu family` and `model` numbers: a VM often names only the vendor ("AMD EPYC"),
    /// and these tell the generation apart (family 25 is Zen 3/4, 26 Zen 5).
    pub family_model: Option<(u32, u32)>,
    pub logical_cpus: usize,
    /// The SIMD extensions this process can use (detected, not parsed from flags).
    pub vector: Vec<&'static str>,
    pub caches: Vec<Cache>,
}

impl CpuInfo {
    /// Reads `/proc/cpuinfo` and `/sys/devices/system/cpu/cpu0/cache` (Linux); fields it cannot
    /// read stay empty.
    pub fn detect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        // The value of the first `key : value` line named `key`.
        let field = |key: &str| {
            cpuinfo
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim() == key)
                .map(|(_, v)| v.trim())
        };
        let number = |key: &str| field(key).and_then(|v| v.parse().ok());
        // x86 names it `model name`, ARM boards `Model`.
        let model = field("model name")
            .or_else(|| field("Model"))
            .map_or_else(|| std::env::consts::ARCH.to_string(), str::to_string);
        Self {
            model,
            family_model: number("cpu family").zip(number("model")),
            logical_cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            vector: vector_extensions(),
            caches: caches(),
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn vector_extensions() -> Vec<&'static str> {
    let mut found = Vec::new();
    macro_rules! probe {
        ($($feature:tt),*) => {
            $(if std::is_x86_feature_detected!($feature) {
                found.push($feature);
            })*
        };
    }
    probe!(
        "avx2",
        "fma",
        "avx512f",
        "avx512bw",
        "avx512vl",
        "avx512vnni",
        "avx512bf16",
        "avx512fp16"
    );
    found
}

#[cfg(target_arch = "aarch64")]
fn vector_extensions() -> Vec<&'static str> {
    let mut found = Vec::new();
    if std::arch::is_aarch64_feature_detected!("neon") {
        found.push("neon");
    }
    if std::arch::is_aarch64_feature_detected!("sve") {
        found.push("sve");
    }
    found
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn vector_extensions() -> Vec<&'static str> {
    Vec::new()
}

fn caches() -> Vec<Cache> {
    let dir = std::path::Path::new("/sys/devices/system/cpu/cpu0/cache");
    let read = |p: std::path::PathBuf| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
    };
    let mut caches: Vec<Cache> = (0..8)
        .filter_map(|i| {
            let index = dir.join(format!("index{i}"));
            let size = read(index.join("size"))?;
            let size_kib = match size.strip_suffix('K') {
                Some(k) => k.parse().ok()?,
                None => size.strip_suffix('M')?.parse::<u64>().ok()? * 1024,
            };
            Some(Cache {
                level: read(index.join("level"))?.parse().ok()?,
                kind: read(index.join("type"))?,
                size_kib,
                shared_by: read(index.join("shared_cpu_list")).map_or(1, |l| cpu_count(&l)),
            })
        })
        .collect();
    caches.sort_by_key(|c| (c.level, c.kind.clone()));
    caches
}

/// CPUs in a list such as `0-3,8`.
fn cpu_count(list: &str) -> usize {
    list.split(',')
        .map(|part| match part.split_once('-') {
            Some((a, b)) => match (a.parse::<usize>(), b.parse::<usize>()) {
                (Ok(a), Ok(b)) if b >= a => b - a + 1,
                _ => 1,
            },
            None => 1,
        })
        .sum()
}

fn size(kib: u64) -> String {
    if kib >= 1024 && kib.is_multiple_of(1024) {
        format!("{} MiB", kib / 1024)
    } else {
        format!("{kib} KiB")
    }
}

impl fmt::Display for CpuInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CPU: {} (", self.model)?;
        if let Some((family, model)) = self.family_model {
            write!(f, "family {family} model {model}, ")?;
        }
        write!(f, "{} logical CPUs)", self.logical_cpus)?;
        write!(
            f,
            "; vector: {}",
            if self.vector.is_empty() {
                "none".into()
            } else {
                self.vector.join(" ")
            }
        )?;
        let caches: Vec<String> = self
            .caches
            .iter()
            .filter(|c| c.kind != "Instruction")
            .map(|c| {
                let shared = if c.shared_by > 1 {
                    format!(" shared by {}", c.shared_by)
                } else {
                    " per core".into()
                };
                format!("L{} {}{shared}", c.level, size(c.size_kib))
            })
            .collect();
        if !caches.is_empty() {
            write!(f, "; caches: {}", caches.join(", "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_are_counted() {
        assert_eq!(cpu_count("0"), 1);
        assert_eq!(cpu_count("0-1"), 2);
        assert_eq!(cpu_count("0-3,8,10-11"), 7);
    }

    #[test]
    fn this_machine_is_described() {
        let cpu = CpuInfo::detect();
        let line = cpu.to_string();
        assert!(!cpu.model.is_empty() && cpu.logical_cpus >= 1, "{line}");
        if cfg!(target_os = "linux") {
            assert!(cpu.caches.iter().any(|c| c.level >= 2), "{line}");
        }
        // The fast kernels pick AVX2 code at run time; the description must agree with it.
        #[cfg(target_arch = "x86_64")]
        assert_eq!(
            cpu.vector.contains(&"avx2"),
            std::is_x86_feature_detected!("avx2")
        );
        assert!(line.starts_with("CPU: "), "{line}");
        #[cfg(target_arch = "x86_64")]
        if cfg!(target_os = "linux") {
            assert!(cpu.family_model.is_some(), "{line}");
        }
    }
}

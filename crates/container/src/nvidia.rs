//! A machine's NVIDIA driver, as a container that asks for GPUs gets it: what the NVIDIA
//! container toolkit does, without it. The device nodes (`/dev/nvidiactl`, `/dev/nvidia0`,
//! ..., the unified memory and modeset nodes) are bound at the same paths in the sandbox's
//! `/dev`; the driver's user-space libraries (libcuda and the libraries CUDA and NVML load
//! beside it) read-only under [`LIBRARY_DIR`], their version links made again beside them;
//! `nvidia-smi` under [`BINARY_DIR`]. The driver's libraries must be the machine's own,
//! matching its kernel module, which is why no image ships them.

use std::ffi::OsString;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

/// Where the sandbox finds the driver's libraries and programs (inside the runtime's
/// `/ogpu`, so that no image needs a mount point for them).
pub const LIBRARY_DIR: &str = "/ogpu/nvidia/lib";
pub const BINARY_DIR: &str = "/ogpu/nvidia/bin";

/// The libraries CUDA and NVML programs load, by the start of their names (as the
/// container toolkit's compute and utility capabilities list them).
const LIBRARIES: &[&str] = &[
    "libcuda.so",
    "libcudadebugger.so",
    "libnvidia-ml.so",
    "libnvidia-ptxjitcompiler.so",
    "libnvidia-nvvm.so",
    "libnvidia-gpucomp.so",
    "libnvidia-opencl.so",
    "libnvidia-cfg.so",
    "libnvidia-allocator.so",
];
/// Where distributions put them, under the machine's root.
const LIBRARY_DIRS: &[&str] = &["usr/lib/x86_64-linux-gnu", "usr/lib/aarch64-linux-gnu", "usr/lib64", "usr/lib"];
const BINARIES: &[&str] = &["usr/bin/nvidia-smi"];
/// Device nodes besides the numbered GPUs.
const CONTROL_DEVICES: &[&str] = &["nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset"];

/// The driver found on a machine.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Driver {
    /// Device nodes, by their paths on the machine.
    pub devices: Vec<PathBuf>,
    /// The libraries' files, bound under [`LIBRARY_DIR`] by their names.
    pub libraries: Vec<PathBuf>,
    /// Version links among them (`libcuda.so.1` to `libcuda.so.550.54.15`): name and target.
    pub links: Vec<(OsString, OsString)>,
    pub binaries: Vec<PathBuf>,
}

impl Driver {
    /// The driver of the machine whose root is `root` (`/`, or a tree a test made), or
    /// `None` where it has no NVIDIA GPU device node or no libcuda.
    pub fn find(root: &Path) -> Option<Driver> {
        let mut driver = Driver::default();
        let dev = root.join("dev");
        let mut gpus: Vec<PathBuf> = std::fs::read_dir(&dev)
            .ok()?
            .flatten()
            .filter(|entry| {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                name.strip_prefix("nvidia").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            })
            .map(|entry| entry.path())
            .filter(|path| is_char_device(path))
            .collect();
        gpus.sort();
        if gpus.is_empty() {
            return None;
        }
        let control = CONTROL_DEVICES.iter().map(|name| dev.join(name)).filter(|path| is_char_device(path));
        driver.devices = control.chain(gpus).collect();
        let dir = LIBRARY_DIRS.iter().map(|dir| root.join(dir)).find(|dir| has_libcuda(dir))?;
        let mut entries: Vec<_> = std::fs::read_dir(&dir).ok()?.flatten().collect();
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for entry in entries {
            let name = entry.file_name();
            if !LIBRARIES.iter().any(|prefix| name.to_string_lossy().starts_with(prefix)) {
                continue;
            }
            let Ok(kind) = entry.file_type() else { continue };
            if kind.is_file() {
                driver.libraries.push(entry.path());
            } else if kind.is_symlink()
                && let Ok(target) = std::fs::read_link(entry.path())
                && let Some(target) = target.file_name()
            {
                // The name it points to beside it: the library itself is bound by its name.
                driver.links.push((name, target.to_os_string()));
            }
        }
        driver.binaries = BINARIES.iter().map(|path| root.join(path)).filter(|path| path.is_file()).collect();
        Some(driver)
    }

    /// bubblewrap's arguments that give the sandbox the driver, after its `/dev` and
    /// `/ogpu` are mounted.
    pub fn bwrap_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        let mut add = |words: [OsString; 3]| args.extend(words);
        for device in &self.devices {
            let name = device.file_name().unwrap_or_default();
            add(["--dev-bind".into(), device.into(), Path::new("/dev").join(name).into()]);
        }
        for (files, dir) in [(&self.libraries, LIBRARY_DIR), (&self.binaries, BINARY_DIR)] {
            for file in files {
                let name = file.file_name().unwrap_or_default();
                add(["--ro-bind".into(), file.into(), Path::new(dir).join(name).into()]);
            }
        }
        for (name, target) in &self.links {
            add(["--symlink".into(), target.clone(), Path::new(LIBRARY_DIR).join(name).into()]);
        }
        args
    }
}

fn is_char_device(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_char_device())
}

fn has_libcuda(dir: &Path) -> bool {
    ["libcuda.so.1", "libcuda.so"].iter().any(|name| dir.join(name).exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_machine_without_nvidia_device_nodes_has_no_driver() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(Driver::find(root.path()), None);
        std::fs::create_dir(root.path().join("dev")).unwrap();
        // A plain file by a GPU's name is no device.
        std::fs::write(root.path().join("dev/nvidia0"), "").unwrap();
        assert_eq!(Driver::find(root.path()), None);
    }
}

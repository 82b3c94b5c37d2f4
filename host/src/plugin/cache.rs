//! The directory of compiled custom plugins (`[plugin_cache] dir`): the
//! engine keeps the native code of each component there, keyed by its
//! content hash, the engine's version and settings (wasmtime's own cache), so
//! that a restart loads instead of compiling. The provider runs that code, so
//! the directory is used only if nobody but the provider's user can change
//! it: owned by our effective uid, not writable by group or others, and not
//! a symlink. Otherwise a warning says why and plugins are compiled at start.

use std::os::unix::fs::DirBuilderExt as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// The cache directory of `setting`, created (0700) if missing, if it can be
/// trusted; `None` (with a warning) if it cannot, or if `setting` is empty.
pub(crate) fn trusted_dir(setting: &str) -> Option<PathBuf> {
    if setting.is_empty() {
        return None;
    }
    let dir = PathBuf::from(setting);
    match check(&dir) {
        Ok(()) => Some(dir),
        Err(why) => {
            tracing::warn!(dir = %dir.display(), "plugin_cache.dir is not used: {why}; custom plugins are compiled at every start");
            None
        }
    }
}

/// Most bytes of native code kept in the cache directory; older entries are
/// removed past it (wasmtime's cache worker, in the background).
const MAX_CACHE_BYTES: u64 = 256 << 20;
/// Most files kept in the cache directory.
const MAX_CACHE_FILES: u64 = 1024;

/// The engine's cache in `dir` (checked by [`trusted_dir`]); `None`, with a
/// warning, if wasmtime refuses it.
pub(crate) fn open(dir: &Path) -> Option<wasmtime::Cache> {
    let mut config = wasmtime::CacheConfig::new();
    config
        .with_directory(dir)
        .with_files_total_size_soft_limit(MAX_CACHE_BYTES)
        .with_file_count_soft_limit(MAX_CACHE_FILES);
    match wasmtime::Cache::new(config) {
        Ok(cache) => Some(cache),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "plugin_cache.dir cannot be used; custom plugins are compiled at every start");
            None
        }
    }
}

/// Why a cache directory is not used.
#[derive(Debug, thiserror::Error)]
enum Untrusted {
    #[error("it must be an absolute path")]
    Relative,
    #[error("cannot create it: {0}")]
    Create(#[source] std::io::Error),
    #[error("cannot read it: {0}")]
    Read(#[source] std::io::Error),
    #[error("it is not a directory (a symlink is not followed)")]
    NotADirectory,
    #[error("it belongs to uid {owner}, not to the provider's uid {euid}")]
    Owner { owner: u32, euid: u32 },
    #[error("its mode {0:o} lets others write it; make it 0700 or 0755")]
    Writable(u32),
}

fn check(dir: &Path) -> Result<(), Untrusted> {
    if !dir.is_absolute() {
        return Err(Untrusted::Relative);
    }
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(Untrusted::Create)?;
        }
        Err(e) => return Err(Untrusted::Read(e)),
        Ok(_) => {}
    }
    let meta = std::fs::symlink_metadata(dir).map_err(Untrusted::Read)?;
    if meta.file_type().is_symlink() || !meta.is_dir() {
        return Err(Untrusted::NotADirectory);
    }
    let euid = rustix::process::geteuid().as_raw();
    if meta.uid() != euid {
        return Err(Untrusted::Owner {
            owner: meta.uid(),
            euid,
        });
    }
    if meta.permissions().mode() & 0o022 != 0 {
        return Err(Untrusted::Writable(meta.permissions().mode() & 0o7777));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_private_directory_of_ours_is_trusted() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(trusted_dir(""), None);
        // created when missing, private
        let fresh = root.path().join("a/b");
        assert_eq!(trusted_dir(fresh.to_str().unwrap()), Some(fresh.clone()));
        assert_eq!(
            std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777,
            0o700
        );
        // writable by others: refused
        let open = root.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = check(&open).unwrap_err();
        assert!(matches!(e, Untrusted::Writable(0o777)), "{e}");
        assert_eq!(
            e.to_string(),
            "its mode 777 lets others write it; make it 0700 or 0755"
        );
        assert_eq!(trusted_dir(open.to_str().unwrap()), None);
        // a symlink to a good directory: refused
        let link = root.path().join("link");
        std::os::unix::fs::symlink(&fresh, &link).unwrap();
        assert!(check(&link).unwrap_err().to_string().contains("symlink"));
        assert!(
            check(Path::new("relative"))
                .unwrap_err()
                .to_string()
                .contains("absolute")
        );
        // a file where the directory should be
        let file = root.path().join("file");
        std::fs::write(&file, b"").unwrap();
        assert!(matches!(check(&file), Err(Untrusted::NotADirectory)));
        // below a file: cannot be created
        assert!(matches!(
            check(&file.join("sub")),
            Err(Untrusted::Read(_) | Untrusted::Create(_))
        ));
    }
}

//! How one `init` may use the shared provider plugin cache, decided before it runs.
//!
//! The engines' rules (Terraform 1.0 to 1.x, OpenTofu):
//!
//! - Up to Terraform 1.3, `init` links a provider from `TF_PLUGIN_CACHE_DIR` whenever the
//!   cache holds the selected version.
//! - From Terraform 1.4 (and in every OpenTofu), the cache is used only when the stack's
//!   dependency lock file already records a checksum matching the cached package. Otherwise
//!   `init` installs the provider from its origin (registry, network or filesystem mirror)
//!   *and rewrites the cached package in place*. A plan of another stack that checks the same
//!   package at that moment reads half a file and fails with "the cached package ... does not
//!   match any of the checksums recorded in the dependency lock file".
//!   `TF_PLUGIN_CACHE_MAY_BREAK_DEPENDENCY_LOCK_FILE=1` restores the old rule: link what the
//!   cache holds and record its checksum in the lock file.
//!
//! So slipway decides per `init` (see [`decide`]):
//!
//! - a stack **without a committed lock file** runs with the old rule turned back on: the
//!   engine links what the cache holds and writes a lock file in the working copy (never in
//!   the repository) with the cached package's checksum, which is what later plans check;
//! - a stack **with a committed lock file** links from the cache, with the lock file
//!   read-only, only when every pinned provider's cached package matches a checksum the lock
//!   file records (computed here, the engine's `h1:` hash). Otherwise the lock file may lack
//!   this platform's checksum (one made on another platform records only `zh:` hashes for
//!   it), which a read-only `init` cannot add and every later plan would then fail on: the
//!   `init` may complete the working copy's copy of it (the caller checks that the pinned
//!   providers and versions did not change, and says so when checksums were added). When a
//!   cached package is present but matches none, that `init` installs into the working copy
//!   only, never over the shared package;
//! - an `init` that may add packages to the cache takes a turn (one writer at a time);
//!   an `init` that only links needs none. Packages are only ever added to the cache, never
//!   rewritten, so plans and applies that read them need no lock.

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

/// The environment variable that turns Terraform's pre-1.4 cache rule back on.
pub const MAY_BREAK_LOCK_FILE: &str = "TF_PLUGIN_CACHE_MAY_BREAK_DEPENDENCY_LOCK_FILE";

/// How one `init` uses the shared cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheUse {
    /// Every provider is linked from the cache: nothing is written there, no turn needed.
    Link,
    /// The cache may receive packages it does not hold yet: take the writer's turn.
    Populate,
    /// A committed lock file pins packages the cache holds with other contents: install
    /// into the working copy, leaving the shared packages alone.
    Bypass,
}

/// What slipway does for one `init`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitPlan {
    pub cache: CacheUse,
    /// Whether to set [`MAY_BREAK_LOCK_FILE`] (only where no lock file is committed).
    pub may_break_lock_file: bool,
    /// Whether the committed lock file is used read-only (`-lockfile=readonly`); when not,
    /// the engine may add this platform's checksums to the working copy's copy.
    pub read_only_lock_file: bool,
}

/// One `provider` block of a dependency lock file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedProvider {
    pub address: String,
    pub version: String,
    pub hashes: Vec<String>,
}

/// Decides how the `init` of a working copy uses `cache`. `committed` says whether the
/// stack's own code carries the lock file at `lock_file` (then it is used read-only);
/// otherwise `lock_file` is whatever the engine wrote in the working copy before, if any.
pub fn decide(lock_file: &Path, committed: bool, cache: &Path) -> InitPlan {
    let providers = read_lock_file(lock_file).unwrap_or_default();
    let platform = platform();
    let package = |p: &LockedProvider| cache.join(&p.address).join(&p.version).join(&platform);
    if !committed {
        // The old rule: whatever version the cache holds is linked as it is.
        let all_cached = !providers.is_empty() && providers.iter().all(|p| package(p).is_dir());
        return InitPlan {
            cache: if all_cached {
                CacheUse::Link
            } else {
                CacheUse::Populate
            },
            may_break_lock_file: true,
            read_only_lock_file: false,
        };
    }
    let mut cache_use = if providers.is_empty() {
        CacheUse::Populate
    } else {
        CacheUse::Link
    };
    for provider in &providers {
        let dir = package(provider);
        if !dir.is_dir() {
            if cache_use == CacheUse::Link {
                cache_use = CacheUse::Populate;
            }
            continue;
        }
        let matches = cached_hash(&dir).is_ok_and(|h| provider.hashes.contains(&h));
        if !matches {
            cache_use = CacheUse::Bypass;
        }
    }
    InitPlan {
        cache: cache_use,
        may_break_lock_file: false,
        read_only_lock_file: cache_use == CacheUse::Link,
    }
}

/// How the providers a lock file pins changed from `before` to `after`, other than by
/// added checksums; `None` when only checksums were added (or nothing changed).
pub fn selection_change(before: &[LockedProvider], after: &[LockedProvider]) -> Option<String> {
    let mut changes = Vec::new();
    for provider in after {
        match before.iter().find(|p| p.address == provider.address) {
            None => changes.push(format!(
                "{} {} is not pinned",
                provider.address, provider.version
            )),
            Some(pinned) if pinned.version != provider.version => changes.push(format!(
                "{} is pinned at {}, not {}",
                provider.address, pinned.version, provider.version
            )),
            Some(pinned) => {
                if let Some(hash) = pinned.hashes.iter().find(|h| !provider.hashes.contains(h)) {
                    changes.push(format!("{} would lose checksum {hash}", provider.address));
                }
            }
        }
    }
    (!changes.is_empty()).then(|| changes.join("; "))
}

/// The `provider` blocks of a dependency lock file; `None` when it is missing or unreadable.
pub fn read_lock_file(path: &Path) -> Option<Vec<LockedProvider>> {
    parse_lock_file(&std::fs::read_to_string(path).ok()?)
}

/// The `provider` blocks of a dependency lock file's text; `None` when it does not parse.
pub fn parse_lock_file(text: &str) -> Option<Vec<LockedProvider>> {
    let body = hcl::parse(text).ok()?;
    let providers = body
        .blocks()
        .filter(|b| b.identifier() == "provider")
        .filter_map(|block| {
            let address = block.labels().first()?.as_str().to_owned();
            let attribute = |name: &str| {
                block
                    .body()
                    .attributes()
                    .find(|a| a.key() == name)
                    .map(hcl::Attribute::expr)
            };
            let version = match attribute("version")? {
                hcl::Expression::String(v) => v.clone(),
                _ => return None,
            };
            let hashes = match attribute("hashes") {
                Some(hcl::Expression::Array(items)) => items
                    .iter()
                    .filter_map(|item| match item {
                        hcl::Expression::String(h) => Some(h.clone()),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            Some(LockedProvider {
                address,
                version,
                hashes,
            })
        })
        .collect();
    Some(providers)
}

/// The engines' platform name for this machine (`linux_amd64`, `darwin_arm64`, ...).
pub fn platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    };
    format!("{}_{arch}", std::env::consts::OS)
}

/// The `h1:` checksum of an unpacked provider package: the hash the engines record in lock
/// files for the platform they ran on (Go's `dirhash.Hash1`: SHA-256 over the sorted lines
/// `<sha256 hex>  <relative path>\n`, one per file, base64-encoded).
pub fn package_hash(dir: &Path) -> io::Result<String> {
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(dir).follow_links(true) {
        let entry = entry.map_err(io::Error::other)?;
        if entry.file_type().is_file() {
            let relative = entry
                .path()
                .strip_prefix(dir)
                .map_err(io::Error::other)?
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            files.push((relative, entry.path().to_path_buf()));
        }
    }
    files.sort();
    let mut summary = Sha256::new();
    for (relative, path) in files {
        let mut file = std::fs::File::open(path)?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 1 << 16];
        loop {
            let read = file.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
        }
        let digest = hasher.finalize();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        summary.update(format!("{hex}  {relative}\n").as_bytes());
    }
    Ok(format!("h1:{}", base64(&summary.finalize())))
}

/// [`package_hash`], remembered per package while its files keep their size and time: a
/// provider is a few hundred megabytes, and every `init` of a locked stack asks.
fn cached_hash(dir: &Path) -> io::Result<String> {
    type Memo = Mutex<HashMap<(PathBuf, u64, Option<SystemTime>), String>>;
    static MEMO: OnceLock<Memo> = OnceLock::new();
    let mut size = 0;
    let mut newest = None;
    for entry in walkdir::WalkDir::new(dir).follow_links(true) {
        let metadata = entry
            .map_err(io::Error::other)?
            .metadata()
            .map_err(io::Error::other)?;
        size += metadata.len();
        newest = newest.max(metadata.modified().ok());
    }
    let key = (dir.to_path_buf(), size, newest);
    let memo = MEMO.get_or_init(Mutex::default);
    if let Some(hash) = memo.lock().ok().and_then(|m| m.get(&key).cloned()) {
        return Ok(hash);
    }
    let hash = package_hash(dir)?;
    if let Ok(mut memo) = memo.lock() {
        memo.insert(key, hash.clone());
    }
    Ok(hash)
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn base64_pads_like_the_standard_alphabet() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(&[0xfb, 0xff]), "+/8=");
    }

    #[test]
    fn package_hash_is_the_engines_h1() {
        // Expected value from Go's dirhash.Hash1 over the same two files.
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("terraform-provider-x_v1.0.0"), "binary\n");
        write(&dir.path().join("docs/README"), "read me\n");
        let lines = format!(
            "{}  docs/README\n{}  terraform-provider-x_v1.0.0\n",
            hex(&Sha256::digest(b"read me\n")),
            hex(&Sha256::digest(b"binary\n"))
        );
        let expected = format!("h1:{}", base64(&Sha256::digest(lines.as_bytes())));
        assert_eq!(package_hash(dir.path()).unwrap(), expected);
        assert_eq!(cached_hash(dir.path()).unwrap(), expected);
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn lock_file(dir: &Path, hash: &str) -> PathBuf {
        let path = dir.join(".terraform.lock.hcl");
        write(
            &path,
            &format!(
                "provider \"registry.terraform.io/hashicorp/aws\" {{\n  version     = \"3.39.0\"\n  constraints = \"3.39.0\"\n  hashes = [\n    \"{hash}\",\n    \"zh:00\",\n  ]\n}}\n"
            ),
        );
        path
    }

    #[test]
    fn lock_file_providers_are_read_with_their_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let path = lock_file(dir.path(), "h1:abc=");
        assert_eq!(
            read_lock_file(&path).unwrap(),
            vec![LockedProvider {
                address: "registry.terraform.io/hashicorp/aws".into(),
                version: "3.39.0".into(),
                hashes: vec!["h1:abc=".into(), "zh:00".into()],
            }]
        );
        assert!(read_lock_file(&dir.path().join("missing")).is_none());
    }

    #[test]
    fn each_init_uses_the_cache_as_its_lock_file_allows() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let package = cache
            .join("registry.terraform.io/hashicorp/aws/3.39.0")
            .join(platform());
        let missing = dir.path().join("none.hcl");

        // No lock file anywhere: the engine may install into the cache, old rule on.
        let first = decide(&missing, false, &cache);
        assert_eq!(first.cache, CacheUse::Populate);
        assert!(first.may_break_lock_file);

        // A committed lock file and an empty cache: populate, the lock file stays read-only.
        let committed = lock_file(&dir.path().join("committed"), "h1:whatever=");
        let plan = decide(&committed, true, &cache);
        assert_eq!(plan.cache, CacheUse::Populate);
        assert!(!plan.may_break_lock_file);
        assert!(
            !plan.read_only_lock_file,
            "it may lack this platform's checksum"
        );

        write(&package.join("terraform-provider-aws_v3.39.0_x5"), "bin");
        // The engine's own lock file from an earlier run and the package cached: link.
        let written = lock_file(&dir.path().join("written"), "h1:whatever=");
        assert_eq!(decide(&written, false, &cache).cache, CacheUse::Link);

        // A committed lock file whose checksums miss the cached package: keep off the cache.
        assert_eq!(decide(&committed, true, &cache).cache, CacheUse::Bypass);

        // One that records the cached package's checksum: link.
        let hash = package_hash(&package).unwrap();
        let matching = lock_file(&dir.path().join("matching"), &hash);
        let linked = decide(&matching, true, &cache);
        assert_eq!(linked.cache, CacheUse::Link);
        assert!(linked.read_only_lock_file);
    }

    #[test]
    fn a_completed_lock_file_may_only_gain_checksums() {
        let pin = |version: &str, hashes: &[&str]| LockedProvider {
            address: "registry.terraform.io/hashicorp/aws".into(),
            version: version.into(),
            hashes: hashes.iter().map(|h| (*h).to_owned()).collect(),
        };
        let before = [pin("3.39.0", &["zh:00"])];
        assert_eq!(selection_change(&before, &before), None);
        assert_eq!(
            selection_change(&before, &[pin("3.39.0", &["h1:new=", "zh:00"])]),
            None
        );
        assert_eq!(
            selection_change(&before, &[pin("3.40.0", &["h1:new="])]).as_deref(),
            Some("registry.terraform.io/hashicorp/aws is pinned at 3.39.0, not 3.40.0")
        );
        let random = LockedProvider {
            address: "registry.terraform.io/hashicorp/random".into(),
            version: "3.6.0".into(),
            hashes: vec![],
        };
        assert!(
            selection_change(&before, &[before[0].clone(), random])
                .unwrap()
                .contains("random 3.6.0 is not pinned")
        );
    }
}

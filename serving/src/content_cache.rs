//! Verified artifact files kept by content (their sha256) after the versions that used them are
//! gone, so rolling back to an earlier version, or a version registered again with the same
//! files, needs no download. Bounded in bytes: the least recently used files go first (moka
//! decides; its eviction listener deletes the file).
//!
//! Files live at `DIR/<sha256>` and reach version directories as hard links (a copy where the
//! file system refuses links), so evicting a file never takes bytes from a version that serves.
//!
//! Linking, copying and the deletes of evicted files (which moka runs inside `keep`) block on
//! the file system, so `link_into` and `keep` do that work on tokio's blocking pool; `open`
//! blocks and runs at start-up, on the blocking pool too.

use std::io;
use std::path::{Path, PathBuf};

use moka::notification::RemovalCause;
use moka::policy::EvictionPolicy;
use moka::sync::Cache;

/// moka weighs entries in `u32`; files are weighed in KiB so a 4 GiB limit per file is not hit.
const WEIGHT_UNIT: u64 = 1024;

/// Cheap to clone: clones share the index and the directory.
#[derive(Clone)]
pub struct ContentCache {
    dir: PathBuf,
    index: Cache<String, u64>,
}

impl ContentCache {
    /// Opens (creating it if needed) the cache at `dir`, holding at most `max_bytes`; files an
    /// earlier run left there are indexed again.
    pub fn open(dir: PathBuf, max_bytes: u64) -> io::Result<ContentCache> {
        std::fs::create_dir_all(&dir)?;
        let evicted_dir = dir.clone();
        let index = Cache::builder()
            .eviction_policy(EvictionPolicy::lru())
            .max_capacity(max_bytes / WEIGHT_UNIT)
            .weigher(|_: &String, size: &u64| {
                u32::try_from(size.div_ceil(WEIGHT_UNIT)).unwrap_or(u32::MAX)
            })
            .eviction_listener(move |sha256: std::sync::Arc<String>, _, cause| {
                if cause != RemovalCause::Replaced {
                    let _ = std::fs::remove_file(evicted_dir.join(sha256.as_str()));
                }
            })
            .build();
        for entry in std::fs::read_dir(&dir)?.filter_map(Result::ok) {
            let path = entry.path();
            match entry.file_name().to_str().filter(|name| is_sha256(name)) {
                Some(name) if path.is_file() => {
                    index.insert(name.to_owned(), entry.metadata()?.len());
                }
                // Half-written leftovers of a crash, or something that is not ours.
                _ => {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        index.run_pending_tasks();
        Ok(ContentCache { dir, index })
    }

    /// Puts the file with this content at `dest` if the cache has it; `false` when it does not.
    fn link_into_blocking(&self, sha256: &str, size: u64, dest: &Path) -> io::Result<bool> {
        let sha256 = sha256.to_ascii_lowercase();
        if self.index.get(&sha256) != Some(size) {
            return Ok(false);
        }
        match link_or_copy(&self.dir.join(&sha256), dest) {
            Ok(()) => Ok(true),
            // Evicted a moment ago: download it like any other miss.
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                self.index.invalidate(&sha256);
                Ok(false)
            }
            Err(err) => Err(err),
        }
    }

    /// Keeps `file`, whose content was verified to hash to `sha256`.
    fn keep_blocking(&self, sha256: &str, size: u64, file: &Path) -> io::Result<()> {
        let sha256 = sha256.to_ascii_lowercase();
        if !is_sha256(&sha256) {
            return Ok(());
        }
        let blob = self.dir.join(&sha256);
        match link_or_copy(file, &blob) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(err),
        }
        self.index.insert(sha256, size);
        self.index.run_pending_tasks();
        Ok(())
    }

    /// Puts the file with this content at `dest` if the cache has it; `false` when it does not.
    /// Linking or copying runs on the blocking pool.
    pub async fn link_into(&self, sha256: &str, size: u64, dest: &Path) -> io::Result<bool> {
        let cache = self.clone();
        let sha256 = sha256.to_owned();
        let dest = dest.to_owned();
        tokio::task::spawn_blocking(move || cache.link_into_blocking(&sha256, size, &dest))
            .await
            .map_err(io::Error::other)?
    }

    /// Keeps `file`, whose content was verified to hash to `sha256`, on the blocking pool.
    pub async fn keep(&self, sha256: &str, size: u64, file: &Path) -> io::Result<()> {
        let cache = self.clone();
        let sha256 = sha256.to_owned();
        let file = file.to_owned();
        tokio::task::spawn_blocking(move || cache.keep_blocking(&sha256, size, &file))
            .await
            .map_err(io::Error::other)?
    }

    /// Bytes the cache holds (after pending evictions).
    pub fn weighted_bytes(&self) -> u64 {
        self.index.run_pending_tasks();
        self.index.weighted_size() * WEIGHT_UNIT
    }
}

fn is_sha256(name: &str) -> bool {
    name.len() == 64
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn link_or_copy(from: &Path, to: &Path) -> io::Result<()> {
    match std::fs::hard_link(from, to) {
        Ok(()) => Ok(()),
        Err(err)
            if matches!(
                err.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::AlreadyExists
            ) =>
        {
            Err(err)
        }
        // Another file system, or one without hard links.
        Err(_) => {
            let partial = to.with_extension("partial");
            std::fs::copy(from, &partial)?;
            std::fs::rename(&partial, to)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn stored(dir: &Path, content: &[u8]) -> (PathBuf, String) {
        let sha256 = hex::encode(Sha256::digest(content));
        let path = dir.join(format!("download-{}", &sha256[..8]));
        std::fs::write(&path, content).unwrap();
        (path, sha256)
    }

    #[test]
    fn a_kept_file_is_linked_back_and_survives_a_restart() {
        let work = tempfile::tempdir().unwrap();
        let cache_dir = work.path().join("blobs");
        let cache = ContentCache::open(cache_dir.clone(), 1 << 20).unwrap();
        let (file, sha256) = stored(work.path(), b"weights");
        assert!(
            !cache
                .link_into_blocking(&sha256, 7, &work.path().join("a"))
                .unwrap()
        );
        cache.keep_blocking(&sha256, 7, &file).unwrap();
        std::fs::remove_file(&file).unwrap();

        let dest = work.path().join("b");
        assert!(
            cache
                .link_into_blocking(&sha256.to_uppercase(), 7, &dest)
                .unwrap()
        );
        assert_eq!(std::fs::read(&dest).unwrap(), b"weights");
        assert!(
            !cache
                .link_into_blocking(&sha256, 8, &work.path().join("c"))
                .unwrap(),
            "a size that differs from the record is a miss"
        );

        std::fs::write(cache_dir.join("leftover.partial"), b"x").unwrap();
        drop(cache);
        let reopened = ContentCache::open(cache_dir.clone(), 1 << 20).unwrap();
        assert!(
            reopened
                .link_into_blocking(&sha256, 7, &work.path().join("d"))
                .unwrap()
        );
        assert!(!cache_dir.join("leftover.partial").exists());
    }

    #[tokio::test]
    async fn keeping_and_linking_on_the_blocking_pool() {
        let work = tempfile::tempdir().unwrap();
        let cache = ContentCache::open(work.path().join("blobs"), 1 << 20).unwrap();
        let (file, sha256) = stored(work.path(), b"weights");
        let missing = work.path().join("a");
        assert!(!cache.link_into(&sha256, 7, &missing).await.unwrap());
        assert!(!missing.exists());
        cache.keep(&sha256, 7, &file).await.unwrap();
        std::fs::remove_file(&file).unwrap();

        let dest = work.path().join("b");
        assert!(cache.link_into(&sha256, 7, &dest).await.unwrap());
        assert_eq!(std::fs::read(&dest).unwrap(), b"weights");
        assert!(
            !cache
                .link_into(&sha256, 8, &work.path().join("c"))
                .await
                .unwrap()
        );
    }

    #[test]
    fn the_bound_in_bytes_evicts_files() {
        let work = tempfile::tempdir().unwrap();
        let cache_dir = work.path().join("blobs");
        let cache = ContentCache::open(cache_dir.clone(), 64 * 1024).unwrap();
        let mut kept = Vec::new();
        for index in 0..8u8 {
            let (file, sha256) = stored(work.path(), &vec![index; 16 * 1024]);
            cache.keep_blocking(&sha256, 16 * 1024, &file).unwrap();
            kept.push(sha256);
        }
        assert!(cache.weighted_bytes() <= 64 * 1024);
        let on_disk = std::fs::read_dir(&cache_dir).unwrap().count();
        assert!(
            (1..=4).contains(&on_disk),
            "{on_disk} files of 16 KiB under a 64 KiB bound"
        );
    }
}

//! A service's materialised state: a small key-value interface, sled behind it.
//!
//! sled is fast and embedded but its flush is not power-safe and it is
//! unmaintained, so it holds only what can be rebuilt: JetStream is the log of
//! record. Every change a service makes is one [`Changes`] batch, which also
//! carries the stream position it has applied, so state and position move
//! together atomically. Batches are written behind: a commit joins the
//! writes not yet applied, and they go to sled together, as one atomic
//! batch, once there are [`STORE_DEFERRED_WRITES_MAX`] of them or the oldest
//! is [`STORE_DEFERRED_AGE_MS_MAX`] old. sled's own cost per batch, not the
//! services' work, was most of a rebuild from the streams (100,000 events,
//! one batch each); a crash loses at most what sled's unflushed log would
//! lose anyway, and it is replayed from the stream like any lost suffix. A store that cannot be opened (corrupt, or written by
//! an incompatible version) is moved aside and rebuilt by replay.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Bump when the layout of stored values changes: older stores are rebuilt.
pub const STORE_FORMAT_VERSION: u64 = 2;
/// A state directory is its owner's alone: it holds what the service derived
/// from the logs, which is not everyone's to read.
pub const STORE_DIRECTORY_MODE: u32 = 0o700;
/// Attempts at opening a store whose lock is still held, and the pause between.
pub const STORE_LOCK_ATTEMPTS_MAX: u32 = 40;
pub const STORE_LOCK_PAUSE_MS: u64 = 50;
/// sled's page cache, per store. sled's own default is 1 GiB per store,
/// which a service's derived state fills at 100,000 volunteers and tasks
/// (about 150 MB on disk each), so three services held it all in memory a
/// second time. Each service keeps its state in its own structures and only
/// reads the store whole at start, so a small cache costs little.
pub const STORE_CACHE_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Writes held before they are applied together (see the module doc)...
pub const STORE_DEFERRED_WRITES_MAX: usize = 8_192;
/// ...and the longest any of them waits, in milliseconds: well inside
/// sled's own flush interval (500 ms), so durability is as before.
pub const STORE_DEFERRED_AGE_MS_MAX: u64 = 100;
const POSITION_KIND: &str = "_position";

fn is_lock_held(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        let text = cause.to_string();
        text.contains("could not acquire lock")
            || text.contains("WouldBlock")
            || text.contains("temporarily unavailable")
    })
}
const FORMAT_KEY: &[u8] = b"_format";

/// The storage interface: raw keys and values, atomic batches, flush.
pub trait Backend: Send + Sync {
    fn get(&self, key: &[u8]) -> anyhow::Result<Option<Vec<u8>>>;
    fn scan_prefix(&self, prefix: &[u8]) -> anyhow::Result<Vec<(Vec<u8>, Vec<u8>)>>;
    /// Applies every write or none (`None` deletes).
    fn apply(&self, writes: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> anyhow::Result<()>;
    fn flush(&self) -> anyhow::Result<()>;
}

/// sled 0.34: one tree, keys `kind/id`.
pub struct SledBackend {
    db: sled::Db,
}

impl Backend for SledBackend {
    fn get(&self, key: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(self.db.get(key)?.map(|value| value.to_vec()))
    }

    fn scan_prefix(&self, prefix: &[u8]) -> anyhow::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.db
            .scan_prefix(prefix)
            .map(|entry| {
                entry
                    .map(|(key, value)| (key.to_vec(), value.to_vec()))
                    .map_err(anyhow::Error::from)
            })
            .collect()
    }

    fn apply(&self, writes: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> anyhow::Result<()> {
        let mut batch = sled::Batch::default();
        for (key, value) in writes {
            match value {
                Some(value) => batch.insert(key, value),
                None => batch.remove(key),
            }
        }
        self.db.apply_batch(batch)?;
        Ok(())
    }

    fn flush(&self) -> anyhow::Result<()> {
        self.db.flush()?;
        Ok(())
    }
}

/// In memory, for tests and for services run without a data directory.
#[derive(Default)]
pub struct MemoryBackend {
    entries: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl Backend for MemoryBackend {
    fn get(&self, key: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(self.lock().get(key).cloned())
    }

    fn scan_prefix(&self, prefix: &[u8]) -> anyhow::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let entries = self.lock();
        Ok(entries
            .range(prefix.to_vec()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect())
    }

    fn apply(&self, writes: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> anyhow::Result<()> {
        let mut entries = self.lock();
        for (key, value) in writes {
            match value {
                Some(value) => entries.insert(key, value),
                None => entries.remove(&key),
            };
        }
        Ok(())
    }

    fn flush(&self) -> anyhow::Result<()> {
        Ok(())
    }
}

impl MemoryBackend {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Vec<u8>, Vec<u8>>> {
        // A poisoned lock only means another test thread panicked mid-write.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn key(kind: &str, id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(kind.len() + 1 + id.len());
    key.extend_from_slice(kind.as_bytes());
    key.push(b'/');
    key.extend_from_slice(id.as_bytes());
    key
}

/// A batch of changes and the stream positions they bring the state to.
#[derive(Default)]
pub struct Changes {
    writes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Changes {
    pub fn put<T: Serialize>(&mut self, kind: &str, id: &str, value: &T) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec(value).with_context(|| format!("encoding {kind}/{id}"))?;
        self.writes.push((key(kind, id), Some(bytes)));
        Ok(())
    }

    pub fn remove(&mut self, kind: &str, id: &str) {
        self.writes.push((key(kind, id), None));
    }

    /// Records that everything of `stream` up to `sequence` is applied.
    pub fn position(&mut self, stream: &str, sequence: u64) {
        self.writes.push((
            key(POSITION_KIND, stream),
            Some(sequence.to_be_bytes().to_vec()),
        ));
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }
}

/// Typed access to a service's state.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

type Write = (Vec<u8>, Option<Vec<u8>>);

struct Shared {
    backend: Arc<dyn Backend>,
    deferred: Mutex<Deferred>,
}

/// Writes committed and not yet applied to the backend.
#[derive(Default)]
struct Deferred {
    writes: Vec<Write>,
    /// When the oldest of them was committed.
    since: Option<std::time::Instant>,
    /// Why applying a batch failed. Sticky: once one batch is lost, no later
    /// batch may be written (its position would move past the lost one and
    /// the saved state would silently differ from the streams), so every
    /// later commit, read and flush fails with this reason, the service
    /// stops, and a restart replays from the last position written.
    failed: Option<String>,
}

impl Shared {
    fn new(backend: Arc<dyn Backend>) -> Arc<Shared> {
        let shared = Arc::new(Shared {
            backend,
            deferred: Mutex::new(Deferred::default()),
        });
        // Applies writes that no later commit carries along. Holds only a weak
        // reference, so it ends within one period of the store's last handle.
        let weak = Arc::downgrade(&shared);
        let spawned = std::thread::Builder::new()
            .name("store-writer".to_owned())
            .spawn(move || loop {
                std::thread::sleep(std::time::Duration::from_millis(STORE_DEFERRED_AGE_MS_MAX));
                let Some(shared) = weak.upgrade() else {
                    return;
                };
                let mut deferred = shared.lock();
                // A failure is recorded in `deferred.failed`, for the next call.
                let _ = shared.apply_deferred(&mut deferred);
            });
        if let Err(error) = spawned {
            // Without it, writes are applied by the next commit, read or flush.
            tracing::warn!(%error, "could not start the store's writer thread");
        }
        shared
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Deferred> {
        self.deferred
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn apply_deferred(&self, deferred: &mut Deferred) -> anyhow::Result<()> {
        if let Some(failed) = &deferred.failed {
            anyhow::bail!("writing the state store failed: {failed}");
        }
        deferred.since = None;
        if deferred.writes.is_empty() {
            return Ok(());
        }
        let mut writes = std::mem::take(&mut deferred.writes);
        // Only a key's last write counts (the position is written with every
        // message), and sled walks its tree in key order: reversed, then
        // sorted stably, each key's last write comes first and is kept.
        writes.reverse();
        writes.sort_by(|(one, _), (other, _)| one.cmp(other));
        writes.dedup_by(|(later, _), (kept, _)| later == kept);
        if let Err(error) = self.backend.apply(writes) {
            let reason = format!("{error:#}");
            deferred.failed = Some(reason.clone());
            anyhow::bail!("writing the state store failed: {reason}");
        }
        Ok(())
    }

    /// Applies what is deferred and reports an earlier background failure,
    /// so a read sees every commit and no failure goes unsaid.
    fn settle(&self) -> anyhow::Result<()> {
        let mut deferred = self.lock();
        self.apply_deferred(&mut deferred)
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let deferred = self
            .deferred
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // After a lost batch nothing more is written: see `Deferred::failed`.
        if !deferred.writes.is_empty() && deferred.failed.is_none() {
            let written = self
                .backend
                .apply(std::mem::take(&mut deferred.writes))
                .and_then(|()| self.backend.flush());
            if let Err(error) = written {
                tracing::warn!(error = %format!("{error:#}"), "state not written at close; it is replayed from the streams");
            }
        }
    }
}

impl Store {
    /// Opens (or creates) the store in `directory`. A store that cannot be
    /// opened, or has another format version, is moved aside to
    /// `<directory>.discarded-<n>` and a fresh one is created: the caller
    /// then replays the streams from the start.
    pub fn open(directory: &Path) -> anyhow::Result<Store> {
        match Self::open_sled_when_unlocked(directory) {
            Ok(store) => Ok(store),
            // Another live process holds it: never move a store in use aside.
            Err(error) if is_lock_held(&error) => Err(error.context(format!(
                "{} is in use by another process",
                directory.display()
            ))),
            Err(error) => {
                let aside = discarded_path(directory);
                tracing::warn!(
                    directory = %directory.display(), aside = %aside.display(), error = %format!("{error:#}"),
                    "state store unusable; moving it aside and rebuilding from the streams"
                );
                std::fs::rename(directory, &aside)
                    .with_context(|| format!("moving {} aside", directory.display()))?;
                Self::open_sled(directory)
            }
        }
    }

    /// sled's background thread may hold the directory's lock for a moment
    /// after the previous store was dropped (a service restarted in the same
    /// process): wait for it rather than mistake it for a corrupt store.
    fn open_sled_when_unlocked(directory: &Path) -> anyhow::Result<Store> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::open_sled(directory) {
                Err(error) if attempt < STORE_LOCK_ATTEMPTS_MAX && is_lock_held(&error) => {
                    std::thread::sleep(std::time::Duration::from_millis(STORE_LOCK_PAUSE_MS));
                }
                outcome => return outcome,
            }
        }
    }

    fn open_sled(directory: &Path) -> anyhow::Result<Store> {
        std::fs::create_dir_all(directory)
            .with_context(|| format!("creating {}", directory.display()))?;
        // Only the service's own user may read what it derived from the logs.
        std::fs::set_permissions(
            directory,
            std::fs::Permissions::from_mode(STORE_DIRECTORY_MODE),
        )
        .with_context(|| format!("restricting {} to its owner", directory.display()))?;
        let db = sled::Config::new()
            .path(directory)
            .mode(sled::Mode::LowSpace)
            .cache_capacity(STORE_CACHE_BYTES_MAX)
            .open()
            .with_context(|| format!("opening the sled store at {}", directory.display()))?;
        let version = STORE_FORMAT_VERSION.to_be_bytes().to_vec();
        match db.get(FORMAT_KEY)? {
            Some(stored) if stored.as_ref() == version.as_slice() => {}
            Some(_) => anyhow::bail!("store format differs from version {STORE_FORMAT_VERSION}"),
            None if db.is_empty() => {
                db.insert(FORMAT_KEY, version)?;
            }
            None => anyhow::bail!("store has data but no format version"),
        }
        Ok(Store {
            shared: Shared::new(Arc::new(SledBackend { db })),
        })
    }

    /// A store over any backend: a test's failing disk, say.
    pub fn with_backend(backend: Arc<dyn Backend>) -> Store {
        Store {
            shared: Shared::new(backend),
        }
    }

    /// A store that lives only as long as the process.
    pub fn in_memory() -> Store {
        Store {
            shared: Shared::new(Arc::new(MemoryBackend::default())),
        }
    }

    /// Opens the store and reads the service's state from it with `load`.
    /// A store whose contents cannot be read back (bytes flipped, a value
    /// this version cannot decode) is detected here, moved aside like one
    /// that cannot be opened, and started empty: the caller replays the
    /// streams from the start. A store in use by another process is an
    /// error, never moved aside.
    pub fn open_and_load<T>(
        directory: Option<&Path>,
        load: impl Fn(&Store) -> anyhow::Result<T>,
    ) -> anyhow::Result<(Store, T)> {
        let store = Store::open_or_memory(directory)?;
        let loaded = load(&store);
        let (Err(error), Some(directory)) = (&loaded, directory) else {
            return loaded.map(|state| (store, state));
        };
        let aside = discarded_path(directory);
        tracing::warn!(
            directory = %directory.display(), aside = %aside.display(), error = %format!("{error:#}"),
            "state store unreadable; moving it aside and rebuilding from the streams"
        );
        // sled's threads may still hold the old files open; they keep
        // writing to them where they are moved, never to the new store.
        drop(store);
        std::fs::rename(directory, &aside)
            .with_context(|| format!("moving {} aside", directory.display()))?;
        let store = Store::open(directory)?;
        let state = load(&store).context("reading a fresh state store")?;
        Ok((store, state))
    }

    /// Opens `directory` when given, else an in-memory store.
    pub fn open_or_memory(directory: Option<&Path>) -> anyhow::Result<Store> {
        directory
            .map(Store::open)
            .unwrap_or_else(|| Ok(Store::in_memory()))
    }

    pub fn get<T: DeserializeOwned>(&self, kind: &str, id: &str) -> anyhow::Result<Option<T>> {
        self.shared.settle()?;
        self.shared
            .backend
            .get(&key(kind, id))?
            .map(|bytes| {
                serde_json::from_slice(&bytes).with_context(|| format!("decoding {kind}/{id}"))
            })
            .transpose()
    }

    /// Every value of `kind`, by id.
    pub fn load<T: DeserializeOwned>(&self, kind: &str) -> anyhow::Result<Vec<(String, T)>> {
        let prefix = key(kind, "");
        self.shared.settle()?;
        self.shared
            .backend
            .scan_prefix(&prefix)?
            .into_iter()
            .map(|(key, bytes)| {
                let id = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
                let value = serde_json::from_slice(&bytes)
                    .with_context(|| format!("decoding {kind}/{id}"))?;
                Ok((id, value))
            })
            .collect()
    }

    /// Every entry, raw key to raw value, the format version included: for
    /// comparing two stores (a restarted one with one rebuilt by replay).
    pub fn entries(&self) -> anyhow::Result<BTreeMap<Vec<u8>, Vec<u8>>> {
        self.shared.settle()?;
        Ok(self.shared.backend.scan_prefix(b"")?.into_iter().collect())
    }

    /// The last applied sequence of `stream` (0: nothing applied yet).
    pub fn position(&self, stream: &str) -> anyhow::Result<u64> {
        self.shared.settle()?;
        Ok(
            match self.shared.backend.get(&key(POSITION_KIND, stream))? {
                Some(bytes) => {
                    let array: [u8; 8] = bytes
                        .as_slice()
                        .try_into()
                        .context("stored position is not 8 bytes")?;
                    u64::from_be_bytes(array)
                }
                None => 0,
            },
        )
    }

    /// Commits `changes` as one unit: they are applied together with the
    /// other deferred writes, all or none (see the module doc).
    pub fn commit(&self, changes: Changes) -> anyhow::Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut deferred = self.shared.lock();
        if let Some(failed) = &deferred.failed {
            anyhow::bail!("writing the state store failed: {failed}");
        }
        deferred.writes.extend(changes.writes);
        let since = *deferred.since.get_or_insert_with(std::time::Instant::now);
        if deferred.writes.len() >= STORE_DEFERRED_WRITES_MAX
            || since.elapsed() >= std::time::Duration::from_millis(STORE_DEFERRED_AGE_MS_MAX)
        {
            self.shared.apply_deferred(&mut deferred)?;
        }
        Ok(())
    }

    /// Writes everything to disk; called at shutdown. Not needed for
    /// correctness: a lost suffix is replayed from the stream. A flush that
    /// fails poisons the store like a failed batch.
    pub fn flush(&self) -> anyhow::Result<()> {
        let mut deferred = self.shared.lock();
        self.shared.apply_deferred(&mut deferred)?;
        if let Err(error) = self.shared.backend.flush() {
            let reason = format!("{error:#}");
            deferred.failed = Some(reason.clone());
            anyhow::bail!("flushing the state store failed: {reason}");
        }
        Ok(())
    }
}

fn discarded_path(directory: &Path) -> PathBuf {
    let mut attempt = 1u32;
    loop {
        let mut name = directory.as_os_str().to_owned();
        name.push(format!(".discarded-{attempt}"));
        let candidate = PathBuf::from(name);
        if !candidate.exists() {
            return candidate;
        }
        attempt += 1;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn state_and_position_survive_a_reopen() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("state");
        {
            let store = Store::open(&path).unwrap();
            let mut changes = Changes::default();
            changes.put("volunteer", "v1", &"hello").unwrap();
            changes.position("SB_EVENTS", 7);
            store.commit(changes).unwrap();
            store.flush().unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.position("SB_EVENTS").unwrap(), 7);
        assert_eq!(
            store.load::<String>("volunteer").unwrap(),
            vec![("v1".to_owned(), "hello".to_owned())]
        );
        assert_eq!(store.position("SB_MATCHES").unwrap(), 0);
    }

    #[test]
    fn a_state_directory_is_its_owners_alone() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("state");
        std::fs::create_dir_all(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let _store = Store::open(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{mode:o}");
    }

    #[test]
    fn a_store_in_use_is_refused_not_moved_aside() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("state");
        let _in_use = Store::open(&path).unwrap();
        let error = Store::open(&path)
            .err()
            .expect("a second open of a live store fails");
        assert!(format!("{error:#}").contains("in use"), "{error:#}");
        assert!(!directory.path().join("state.discarded-1").exists());
    }

    #[test]
    fn a_corrupt_store_is_moved_aside_and_starts_empty() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("state");
        std::fs::create_dir_all(&path).unwrap();
        std::fs::write(path.join("conf"), b"this is not a sled config").unwrap();
        std::fs::write(path.join("db"), vec![0xFFu8; 4096]).unwrap();
        let store = Store::open(&path).unwrap();
        assert_eq!(store.position("SB_EVENTS").unwrap(), 0);
        assert!(directory.path().join("state.discarded-1").exists());
    }

    #[test]
    fn deferred_writes_are_read_back_and_reach_sled_when_the_store_closes() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("state");
        {
            let store = Store::open(&path).unwrap();
            for sequence in 1..=3_u64 {
                let mut changes = Changes::default();
                changes
                    .put("volunteer", &format!("v{sequence}"), &sequence)
                    .unwrap();
                changes.position("SB_EVENTS", sequence);
                store.commit(changes).unwrap();
            }
            assert_eq!(store.position("SB_EVENTS").unwrap(), 3);
            let mut changes = Changes::default();
            changes.remove("volunteer", "v2");
            changes.position("SB_EVENTS", 4);
            store.commit(changes).unwrap();
            // Dropped without a flush: closing applies what is deferred.
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.position("SB_EVENTS").unwrap(), 4);
        assert_eq!(
            store.load::<u64>("volunteer").unwrap(),
            vec![("v1".to_owned(), 1), ("v3".to_owned(), 3)]
        );
    }

    #[test]
    fn of_several_writes_to_a_key_in_one_batch_the_last_wins() {
        let store = Store::in_memory();
        for (key, value) in [("a", Some(1)), ("b", Some(2)), ("a", Some(3)), ("b", None)] {
            let mut changes = Changes::default();
            match value {
                Some(value) => changes.put("task", key, &value).unwrap(),
                None => changes.remove("task", key),
            }
            store.commit(changes).unwrap();
        }
        assert_eq!(
            store.load::<i32>("task").unwrap(),
            vec![("a".to_owned(), 3)]
        );
    }

    /// A backend whose writes fail from the `fail_from`-th on, as a full
    /// disk would: the store must stop, not move on past the lost batch.
    struct FullDisk {
        inner: MemoryBackend,
        applied: Mutex<usize>,
        fail_from: usize,
    }

    impl Backend for FullDisk {
        fn get(&self, key: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
            self.inner.get(key)
        }
        fn scan_prefix(&self, prefix: &[u8]) -> anyhow::Result<Vec<(Vec<u8>, Vec<u8>)>> {
            self.inner.scan_prefix(prefix)
        }
        fn apply(&self, writes: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> anyhow::Result<()> {
            let mut applied = self.applied.lock().unwrap();
            *applied += 1;
            if *applied >= self.fail_from {
                anyhow::bail!("No space left on device (os error 28)");
            }
            self.inner.apply(writes)
        }
        fn flush(&self) -> anyhow::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn after_one_lost_batch_the_store_refuses_every_later_write_and_read() {
        let backend = Arc::new(FullDisk {
            inner: MemoryBackend::default(),
            applied: Mutex::new(0),
            fail_from: 2,
        });
        let store = Store {
            shared: Shared::new(backend.clone()),
        };
        let commit = |sequence: u64| {
            let mut changes = Changes::default();
            changes
                .put("volunteer", &format!("v{sequence}"), &sequence)
                .unwrap();
            changes.position("SB_EVENTS", sequence);
            store.commit(changes)
        };
        commit(1).unwrap();
        store.flush().unwrap();
        commit(2).unwrap();
        // The batch holding 2 is lost when it is applied...
        assert!(store.flush().is_err());
        // ...and nothing after it may be written or read, or the position
        // would move past what the state holds.
        let refused = commit(3).unwrap_err();
        assert!(
            format!("{refused:#}").contains("No space left"),
            "{refused:#}"
        );
        assert!(store.position("SB_EVENTS").is_err());
        assert!(store.load::<u64>("volunteer").is_err());
        drop(store);
        assert_eq!(
            backend.inner.get(&key(POSITION_KIND, "SB_EVENTS")).unwrap(),
            Some(1u64.to_be_bytes().to_vec()),
            "the saved position is still the last one whose state was written"
        );
    }

    #[test]
    fn memory_store_scans_only_its_kind() {
        let store = Store::in_memory();
        let mut changes = Changes::default();
        changes.put("task", "t1", &1).unwrap();
        changes.put("tasks", "t2", &2).unwrap();
        changes.put("task", "t3", &3).unwrap();
        store.commit(changes).unwrap();
        let mut changes = Changes::default();
        changes.remove("task", "t3");
        store.commit(changes).unwrap();
        assert_eq!(
            store.load::<i32>("task").unwrap(),
            vec![("t1".to_owned(), 1)]
        );
    }
}

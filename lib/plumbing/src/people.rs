//! Personal data sealed under each person's own key, so that forgetting a
//! person is deleting one key (crypto-shredding).
//!
//! A volunteer's name and contact, and a donor's name, never reach a log in
//! the clear: ingest seals them (XChaCha20-Poly1305, `chacha20poly1305`)
//! under a data key of that person's own, kept in the key-value bucket
//! `SB_PEOPLE_KEYS` (one key per person, history 1), and writes only the
//! sealed text into `SB_EVENTS`. Whoever must read them (dispatch for the
//! email address, the gateway for coordinators' views) fetches the key.
//! "Forget me" purges the key: every copy of the sealed text, in every
//! replica and every backup of the log, can no longer be opened. The key
//! bucket itself must never be backed up with the log.
//!
//! The nonce is derived from the key and the plaintext (a synthetic IV), so
//! the same fields sealed twice give the same text: a retried request is
//! recognised as a repeat, and equal plaintexts are all an observer learns.
//! Readers cache keys for [`KEY_CACHE_TTL_S`], so a forgotten person's
//! fields stop opening everywhere within that time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use base64::Engine as _;
use bytes::Bytes;
use chacha20poly1305::aead::{Aead, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest as _, Sha256};

use crate::Context;

/// Bytes of a data key.
pub const KEY_BYTES: usize = 32;
/// How long a reader trusts a key it fetched (or its absence).
pub const KEY_CACHE_TTL_S: u64 = 60;
/// What every sealed text starts with: the scheme, so it can change.
pub const SEALED_PREFIX: &str = "x1.";
const NONCE_BYTES: usize = 24;

/// One person's data key.
#[derive(Clone)]
pub struct DataKey([u8; KEY_BYTES]);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("DataKey(..)")
    }
}

impl DataKey {
    /// A fresh random key.
    pub fn generate() -> DataKey {
        DataKey(XChaCha20Poly1305::generate_key(&mut OsRng).into())
    }

    /// A key as the bucket holds it; `None` unless it is [`KEY_BYTES`] long.
    pub fn from_bytes(bytes: &[u8]) -> Option<DataKey> {
        <[u8; KEY_BYTES]>::try_from(bytes).ok().map(DataKey)
    }
}

/// Why a sealed text did not open.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    #[error("not a sealed text of this scheme")]
    Malformed,
    #[error("the key does not open it (another person's, or forgotten and made again)")]
    WrongKey,
}

/// Seals `plaintext` under `key`: `x1.` and the nonce and ciphertext in
/// unpadded base64url.
pub fn seal(key: &DataKey, plaintext: &[u8]) -> String {
    let nonce = synthetic_nonce(key, plaintext);
    let cipher = XChaCha20Poly1305::new((&key.0).into());
    // Encryption of a slice in memory cannot fail for this cipher.
    let ciphertext = cipher
        .encrypt(XNonce::from_slice(&nonce), plaintext)
        .unwrap_or_default();
    let mut sealed = nonce.to_vec();
    sealed.extend_from_slice(&ciphertext);
    format!(
        "{SEALED_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed)
    )
}

/// Opens a text [`seal`] made under `key`.
pub fn open(key: &DataKey, sealed: &str) -> Result<Vec<u8>, OpenError> {
    let encoded = sealed
        .strip_prefix(SEALED_PREFIX)
        .ok_or(OpenError::Malformed)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| OpenError::Malformed)?;
    if bytes.len() < NONCE_BYTES {
        return Err(OpenError::Malformed);
    }
    let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
    XChaCha20Poly1305::new((&key.0).into())
        .decrypt(XNonce::from_slice(nonce), ciphertext)
        .map_err(|_| OpenError::WrongKey)
}

/// The nonce: a hash of the key and the plaintext. Equal only for equal
/// plaintexts under one key, which is all XChaCha20-Poly1305 needs; that
/// it is public beside the ciphertext and predictable from both is fine.
fn synthetic_nonce(key: &DataKey, plaintext: &[u8]) -> [u8; NONCE_BYTES] {
    let digest = Sha256::new()
        .chain_update(b"switchboard sealed-field nonce\0")
        .chain_update(key.0)
        .chain_update(plaintext)
        .finalize();
    let mut nonce = [0u8; NONCE_BYTES];
    nonce.copy_from_slice(&digest[..NONCE_BYTES]);
    nonce
}

/// A key as fetched (or found absent), and when.
type Fetched = (Instant, Option<DataKey>);

/// The bucket of data keys, opened on first use, with a short cache for
/// readers.
#[derive(Clone)]
pub struct PeopleKeys {
    context: Context,
    store: Arc<tokio::sync::OnceCell<kv::Store>>,
    cache: Arc<Mutex<HashMap<String, Fetched>>>,
}

impl PeopleKeys {
    pub fn new(context: Context) -> PeopleKeys {
        PeopleKeys {
            context,
            store: Arc::default(),
            cache: Arc::default(),
        }
    }

    async fn store(&self) -> anyhow::Result<&kv::Store> {
        self.store
            .get_or_try_init(|| async {
                let bucket = self.context.subjects.people_key_bucket();
                let config = kv::Config {
                    bucket: bucket.clone(),
                    description: "Each person's data key: delete it to forget them".to_owned(),
                    history: 1,
                    num_replicas: self.context.replication.replicas(),
                    ..kv::Config::default()
                };
                self.context
                    .jetstream
                    .create_key_value(config)
                    .await
                    .map_err(|error| anyhow::anyhow!("opening the bucket {bucket}: {error}"))
            })
            .await
    }

    /// The person's key, made now if they have none (ingest, sealing).
    pub async fn get_or_create(&self, person: &str) -> anyhow::Result<DataKey> {
        let store = self.store().await?;
        for _ in 0..3 {
            if let Some(key) = self.fetch(store, person).await? {
                return Ok(key);
            }
            let key = DataKey::generate();
            match store.create(person, Bytes::copy_from_slice(&key.0)).await {
                Ok(_) => return Ok(key),
                // Another instance made it first: read theirs.
                Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => continue,
                Err(error) => anyhow::bail!("making the data key of {person}: {error}"),
            }
        }
        anyhow::bail!("the data key of {person} kept changing while being made")
    }

    /// The person's key if they have one, as fetched at most
    /// [`KEY_CACHE_TTL_S`] ago (readers).
    pub async fn get(&self, person: &str) -> anyhow::Result<Option<DataKey>> {
        if let Ok(cache) = self.cache.lock() {
            if let Some((fetched, key)) = cache.get(person) {
                if fetched.elapsed() < Duration::from_secs(KEY_CACHE_TTL_S) {
                    return Ok(key.clone());
                }
            }
        }
        let key = self.fetch(self.store().await?, person).await?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(person.to_owned(), (Instant::now(), key.clone()));
        }
        Ok(key)
    }

    /// Opens `sealed`, a text sealed under `person`'s key; `None` when the
    /// person was forgotten (or the text is not theirs).
    pub async fn open(&self, person: &str, sealed: &str) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(self
            .get(person)
            .await?
            .and_then(|key| open(&key, sealed).ok()))
    }

    /// Forgets the person: their key is purged, so nothing sealed under it
    /// opens again anywhere.
    pub async fn forget(&self, person: &str) -> anyhow::Result<()> {
        self.store()
            .await?
            .purge(person)
            .await
            .map_err(|error| anyhow::anyhow!("purging the data key of {person}: {error}"))?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(person.to_owned(), (Instant::now(), None));
        }
        Ok(())
    }

    async fn fetch(&self, store: &kv::Store, person: &str) -> anyhow::Result<Option<DataKey>> {
        let entry = store
            .get(person)
            .await
            .map_err(|error| anyhow::anyhow!("reading the data key of {person}: {error}"))?;
        Ok(entry.and_then(|bytes| DataKey::from_bytes(bytes.as_ref())))
    }
}

/// The bucket key of a volunteer's data key.
pub fn volunteer_key(volunteer: &str) -> String {
    format!("volunteer.{volunteer}")
}

/// The bucket key of a pledge's donor's data key (the wire names donors
/// only through their pledges).
pub fn pledge_key(pledge: &str) -> String {
    format!("pledge.{pledge}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn sealed_fields_open_only_under_their_own_key_and_seal_the_same_twice() {
        let key = DataKey::generate();
        let sealed = seal(&key, br#"{"name":"Carmen"}"#);
        assert!(sealed.starts_with(SEALED_PREFIX));
        assert!(!sealed.contains("Carmen"));
        assert_eq!(open(&key, &sealed).unwrap(), br#"{"name":"Carmen"}"#);
        assert_eq!(
            seal(&key, br#"{"name":"Carmen"}"#),
            sealed,
            "a retry is a repeat"
        );
        assert_ne!(seal(&key, br#"{"name":"Kenji"}"#), sealed);
        let other = DataKey::generate();
        assert_eq!(open(&other, &sealed), Err(OpenError::WrongKey));
        assert_ne!(seal(&other, br#"{"name":"Carmen"}"#), sealed);
        assert_eq!(open(&key, "Carmen"), Err(OpenError::Malformed));
        assert_eq!(open(&key, "x1.!!"), Err(OpenError::Malformed));
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(open(&key, &tampered).is_err());
    }
}

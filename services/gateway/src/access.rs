//! Who is asking: sign-in links and sessions as PASETO v4.local tokens.
//!
//! A token names one principal (the coordinators, one collective, one
//! volunteer, vetter or donor) and is encrypted and authenticated
//! (PASETO `v4.local`, XChaCha20 + BLAKE2b) under a key derived from the
//! gateway's secret, so any instance with the same secret checks any
//! token. Its claims: `sub` (`<role>.<id>`), `purpose` (`link` or
//! `session`), `jti` (the token's id, which sign-out and a coordinator's
//! revoke name), `iat`, `nbf` and `exp`; its footer carries `kid`, the
//! PASERK id of the key (`k4.lid.…`), so a key can be rotated and a token
//! of another key is refused without trying it.
//!
//! A sign-in link (`/signin?token=...`) carries a `link` token that lives
//! [`LINK_AGE_S_DEFAULT`] (configurable) and is exchanged once for a
//! `session` token in an HTTP-only cookie; programs send a session token in
//! an `Authorization: Bearer` header. Expiry is checked here; revocation
//! and one-time use need the revocation set shared by every instance
//! (`crate::revocation`).

use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::HeaderMap;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use pasetors::claims::{Claims as PasetoClaims, ClaimsValidationRules};
use pasetors::footer::Footer;
use pasetors::keys::SymmetricKey;
use pasetors::paserk::Id;
use pasetors::token::UntrustedToken;
use pasetors::version4::V4;
use pasetors::Local;
use proto::ids::is_valid_id;
use schemars::JsonSchema;
use serde::Serialize;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The cookie a sign-in link sets.
pub const TOKEN_COOKIE: &str = "sb_token";
/// The id part of the coordinators' token: they act for everyone.
const COORDINATOR_ID: &str = "all";
/// The shortest secret accepted, in bytes: below this a MAC can be guessed.
pub const SECRET_BYTES_MIN: usize = 16;
/// A token longer than this is refused before any work, in bytes.
const TOKEN_BYTES_MAX: usize = 1024;

/// The kind of person a token stands for, and which one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Principal {
    /// Sees everything, steers the matching, mints links for others.
    Coordinator,
    /// Sees and edits only its own needs.
    Collective(String),
    /// Sees and answers only their own assignments.
    Volunteer(String),
    /// Sets volunteers' trust tiers (`sb.in.vet`) and nothing else. Only
    /// whoever holds the gateway's secret mints a vetter's link
    /// (`switchboard link vetter ID`), not coordinators: one stolen
    /// coordinator sign-in must not open sensitive work to a stranger.
    Vetter(String),
    /// Sees where one pledge's money went, raises or withdraws it: the id is the pledge's.
    Donor(String),
}

impl Principal {
    fn role(&self) -> &'static str {
        match self {
            Principal::Coordinator => "coordinator",
            Principal::Collective(_) => "collective",
            Principal::Volunteer(_) => "volunteer",
            Principal::Vetter(_) => "vetter",
            Principal::Donor(_) => "donor",
        }
    }

    fn id(&self) -> &str {
        match self {
            Principal::Coordinator => COORDINATOR_ID,
            Principal::Collective(id)
            | Principal::Volunteer(id)
            | Principal::Vetter(id)
            | Principal::Donor(id) => id,
        }
    }

    /// Who this principal is in the log ("who did it",
    /// `proto::wire::ACTOR_HEADER`): `coordinator`, or the role and id.
    pub fn actor(&self) -> String {
        match self {
            Principal::Coordinator => "coordinator".to_owned(),
            // A donor is named by their pledge, as on the wire.
            Principal::Donor(pledge) => format!("pledge:{pledge}"),
            other => format!("{}:{}", other.role(), other.id()),
        }
    }

    /// The page this principal lands on after signing in.
    pub fn home_page(&self) -> &'static str {
        match self {
            Principal::Coordinator => "/coordinator",
            Principal::Collective(_) => "/collective",
            Principal::Volunteer(_) => "/volunteer",
            Principal::Vetter(_) => "/vetter",
            Principal::Donor(_) => "/donor",
        }
    }

    /// `{"role": "...", "id": "..."}` for `GET /api/me`.
    pub fn describe(&self) -> Me {
        let (role, id) = match self {
            Principal::Coordinator => (Role::Coordinator, None),
            Principal::Collective(id) => (Role::Collective, Some(id)),
            Principal::Volunteer(id) => (Role::Volunteer, Some(id)),
            Principal::Vetter(id) => (Role::Vetter, Some(id)),
            Principal::Donor(id) => (Role::Donor, Some(id)),
        };
        Me {
            role,
            id: id.cloned(),
        }
    }
}

/// The kinds of principal, as `GET /api/me` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Coordinator,
    Collective,
    Volunteer,
    Vetter,
    Donor,
}

/// Who a token stands for (`GET /api/me`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Me {
    pub role: Role,
    /// The collective's, volunteer's or vetter's id, or the donor's pledge;
    /// `null` for the coordinators, who act for everyone.
    pub id: Option<String>,
}

/// Why a secret cannot sign tokens.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the gateway secret is {0} bytes; it must be at least {SECRET_BYTES_MIN}")]
    TooShort(usize),
    #[error("deriving the token key from the gateway secret: {0}")]
    Key(String),
}

/// What a token is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// In a sign-in link: short-lived, exchanged once for a session.
    Link,
    /// In the cookie or a bearer header.
    Session,
}

impl Purpose {
    fn token(self) -> &'static str {
        match self {
            Purpose::Link => "link",
            Purpose::Session => "session",
        }
    }
}

/// What a valid token says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    pub principal: Principal,
    pub purpose: Purpose,
    /// The token's own id (`jti`): what sign-out and revoke name.
    pub token_id: String,
    pub expires_at: DateTime<Utc>,
}

/// A sign-in link lives this long unless configured otherwise.
pub const LINK_AGE_S_DEFAULT: u64 = 60 * 60;
/// A session (the cookie, a bearer token) lives this long.
pub const SESSION_AGE_S: u64 = 30 * 24 * 3600;
/// The longest any token lives: how long a revocation must be kept.
pub const TOKEN_AGE_S_MAX: u64 = SESSION_AGE_S;
const _: () = assert!(LINK_AGE_S_DEFAULT <= TOKEN_AGE_S_MAX);
/// What the key is derived under, so the secret's other uses (volunteer
/// ids) never yield the token key.
const KEY_DOMAIN: &str = "switchboard-token/v4.local key";
/// The claim that says what a token is for.
const PURPOSE_CLAIM: &str = "purpose";

/// Mints and checks tokens under one key.
#[derive(Clone)]
pub struct Tokens {
    secret: Vec<u8>,
    key: std::sync::Arc<SymmetricKey<V4>>,
    footer: std::sync::Arc<Footer>,
    link_age: Duration,
    /// Makes each token id unique within this gateway.
    minted: std::sync::Arc<AtomicU64>,
    /// Ids of tokens ended before their expiry (`crate::revocation`).
    revoked: std::sync::Arc<std::sync::RwLock<std::collections::HashSet<String>>>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret never reaches a log line.
        formatter.write_str("Tokens { secret: <hidden> }")
    }
}

impl Tokens {
    pub fn new(secret: &[u8]) -> Result<Tokens, SecretError> {
        if secret.len() < SECRET_BYTES_MIN {
            return Err(SecretError::TooShort(secret.len()));
        }
        let mut derive = keyed_mac(secret);
        derive.update(KEY_DOMAIN.as_bytes());
        let key = SymmetricKey::<V4>::from(&derive.finalize().into_bytes())
            .map_err(|error| SecretError::Key(error.to_string()))?;
        let mut footer = Footer::new();
        footer.key_id(&Id::from(&key));
        Ok(Tokens {
            secret: secret.to_vec(),
            key: std::sync::Arc::new(key),
            footer: std::sync::Arc::new(footer),
            link_age: Duration::seconds(LINK_AGE_S_DEFAULT as i64),
            minted: std::sync::Arc::new(AtomicU64::new(0)),
            revoked: std::sync::Arc::default(),
        })
    }

    /// Sign-in links that live `age` instead of [`LINK_AGE_S_DEFAULT`].
    pub fn with_link_age(mut self, age: std::time::Duration) -> Tokens {
        let seconds = age.as_secs().min(TOKEN_AGE_S_MAX);
        self.link_age = Duration::seconds(seconds as i64);
        self
    }

    fn mac(&self, role: &str, id: &str) -> HmacSha256 {
        let mut mac = keyed_mac(&self.secret);
        mac.update(b"switchboard-token/v1");
        mac.update(b" ");
        mac.update(role.as_bytes());
        mac.update(b" ");
        mac.update(id.as_bytes());
        mac
    }

    /// A session token of `principal` (the cookie, or a bearer token for
    /// programs). Ids are checked by the caller; an id outside the wire
    /// syntax would make a token that never verifies.
    pub fn mint(&self, principal: &Principal) -> String {
        self.mint_at(
            principal,
            Purpose::Session,
            Utc::now(),
            Duration::seconds(SESSION_AGE_S as i64),
        )
    }

    /// A sign-in link's token of `principal`, short-lived.
    pub fn mint_link(&self, principal: &Principal) -> String {
        self.mint_at(principal, Purpose::Link, Utc::now(), self.link_age)
    }

    /// A token issued at `issued_at` that lives `age`.
    pub fn mint_at(
        &self,
        principal: &Principal,
        purpose: Purpose,
        issued_at: DateTime<Utc>,
        age: Duration,
    ) -> String {
        let token_id = self.fresh_token_id(issued_at);
        let minted = (|| {
            let mut claims = PasetoClaims::new()?;
            claims.subject(&format!("{}.{}", principal.role(), principal.id()))?;
            claims.token_identifier(&token_id)?;
            claims.issued_at(&rfc3339(issued_at))?;
            claims.not_before(&rfc3339(issued_at))?;
            claims.expiration(&rfc3339(issued_at + age))?;
            claims.add_additional(PURPOSE_CLAIM, purpose.token())?;
            pasetors::local::encrypt(&self.key, &claims, Some(&self.footer), None)
        })();
        match minted {
            Ok(token) => token,
            // Every claim is well-formed by construction and the key is valid.
            Err(error) => unreachable!("minting a token cannot fail: {error}"),
        }
    }

    /// The claims of a valid token of ours: authentic, of this key, not
    /// expired, not before its time. `None` for anything else, without
    /// saying why (no oracle for forgers). Revocation is not checked here.
    pub fn verify_claims(&self, token: &str) -> Option<Claims> {
        if token.len() > TOKEN_BYTES_MAX {
            return None;
        }
        let untrusted = UntrustedToken::<Local, V4>::try_from(token).ok()?;
        let rules = ClaimsValidationRules::new();
        let trusted =
            pasetors::local::decrypt(&self.key, &untrusted, &rules, Some(&self.footer), None)
                .ok()?;
        let claims = trusted.payload_claims()?;
        let subject = claims.get_claim("sub")?.as_str()?;
        let (role, id) = subject.split_once('.')?;
        if !is_valid_id(id) {
            return None;
        }
        let principal = match role {
            "coordinator" if id == COORDINATOR_ID => Principal::Coordinator,
            "collective" => Principal::Collective(id.to_owned()),
            "volunteer" => Principal::Volunteer(id.to_owned()),
            "vetter" => Principal::Vetter(id.to_owned()),
            "donor" => Principal::Donor(id.to_owned()),
            _ => return None,
        };
        let purpose = match claims.get_claim(PURPOSE_CLAIM)?.as_str()? {
            "link" => Purpose::Link,
            "session" => Purpose::Session,
            _ => return None,
        };
        let token_id = claims.get_claim("jti")?.as_str()?.to_owned();
        let expires_at = DateTime::parse_from_rfc3339(claims.get_claim("exp")?.as_str()?)
            .ok()?
            .with_timezone(&Utc);
        Some(Claims {
            principal,
            purpose,
            token_id,
            expires_at,
        })
    }

    /// The principal of a valid session token (a cookie or bearer token)
    /// that was not revoked. A link's token is no session: it must be
    /// exchanged at `/signin`.
    pub fn verify(&self, token: &str) -> Option<Principal> {
        self.verify_claims(token)
            .filter(|claims| claims.purpose == Purpose::Session)
            .filter(|claims| !self.is_revoked(&claims.token_id))
            .map(|claims| claims.principal)
    }

    /// Whether the token `token_id` was revoked, as far as this instance knows.
    pub fn is_revoked(&self, token_id: &str) -> bool {
        self.revoked
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(token_id)
    }

    /// Adds `token_id` to the revocation set this instance checks.
    pub fn mark_revoked(&self, token_id: &str) {
        self.revoked
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(token_id.to_owned());
    }

    /// A token id no other token of this gateway has: a MAC of the moment
    /// and a counter (PASETO's own nonce comes from the OS; this id must be
    /// printable and short).
    fn fresh_token_id(&self, at: DateTime<Utc>) -> String {
        let counter = self.minted.fetch_add(1, Ordering::Relaxed);
        let mut mac = self.mac("token", "id");
        mac.update(&at.timestamp_nanos_opt().unwrap_or_default().to_be_bytes());
        mac.update(&counter.to_be_bytes());
        mac.update(&std::process::id().to_be_bytes());
        let digest = mac.finalize().into_bytes();
        digest
            .iter()
            .take(TOKEN_ID_BYTES)
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }

    /// A fresh volunteer id for someone registering through the page: a MAC
    /// of the moment and a counter, so ids are unguessable without a random
    /// number source and never collide within one gateway.
    pub fn fresh_volunteer_id(&self, nanos: i128, counter: u64) -> String {
        let mut mac = self.mac("register", "volunteer");
        mac.update(&nanos.to_be_bytes());
        mac.update(&counter.to_be_bytes());
        let digest = mac.finalize().into_bytes();
        let suffix: String = digest
            .iter()
            .take(VOLUNTEER_ID_RANDOM_BYTES)
            .map(|byte| format!("{byte:02x}"))
            .collect();
        format!("v-{suffix}")
    }
}

/// Bytes of a token id: 2^128 ids, printed as 32 hex digits (a subject
/// token and a KV key).
const TOKEN_ID_BYTES: usize = 16;

fn keyed_mac(secret: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length, so this cannot fail.
    match HmacSha256::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    }
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Bytes of MAC output in a registered volunteer's id: 2^64 ids.
const VOLUNTEER_ID_RANDOM_BYTES: usize = 8;

/// The token a request carries: the bearer header first, then the cookie.
pub fn token_of(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim);
    if bearer.is_some() {
        return bearer;
    }
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == TOKEN_COOKIE)
        .map(|(_, value)| value)
}

/// The `Set-Cookie` value that signs a browser in with a session token.
/// HTTP-only, so page scripts never handle the token; `SameSite=Strict`, so
/// another site cannot make the browser post with it; `Secure` when the
/// gateway is served over TLS (its public URL is `https://`), so the cookie
/// never travels in clear.
pub fn sign_in_cookie(token: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_AGE_S}{secure}"
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn tokens() -> Tokens {
        Tokens::new(b"a secret of enough bytes").unwrap()
    }

    #[test]
    fn a_minted_session_verifies_as_its_principal_with_an_id_and_an_expiry() {
        let tokens = tokens();
        for principal in [
            Principal::Coordinator,
            Principal::Collective("c-tenants".into()),
            Principal::Volunteer("v-maria".into()),
            Principal::Vetter("vt-rosa".into()),
            Principal::Donor("p-rent".into()),
        ] {
            let token = tokens.mint(&principal);
            assert!(token.starts_with("v4.local."), "{token}");
            assert_eq!(tokens.verify(&token), Some(principal.clone()));
            let claims = tokens.verify_claims(&token).unwrap();
            assert_eq!(claims.purpose, Purpose::Session);
            assert_eq!(claims.token_id.len(), 2 * TOKEN_ID_BYTES);
            let age = claims.expires_at - Utc::now();
            assert!(age > Duration::seconds(SESSION_AGE_S as i64 - 60), "{age}");
        }
        let one = tokens.verify_claims(&tokens.mint(&Principal::Coordinator));
        let two = tokens.verify_claims(&tokens.mint(&Principal::Coordinator));
        assert_ne!(one.unwrap().token_id, two.unwrap().token_id);
    }

    #[test]
    fn a_link_is_short_lived_and_no_session() {
        let tokens = tokens().with_link_age(std::time::Duration::from_secs(600));
        let link = tokens.mint_link(&Principal::Volunteer("v-maria".into()));
        let claims = tokens.verify_claims(&link).unwrap();
        assert_eq!(claims.purpose, Purpose::Link);
        assert!(claims.expires_at - Utc::now() <= Duration::seconds(600));
        assert_eq!(tokens.verify(&link), None, "a link passed as a session");
    }

    #[test]
    fn an_expired_token_is_refused() {
        let tokens = tokens();
        let principal = Principal::Volunteer("v-maria".into());
        let issued = Utc::now() - Duration::hours(2);
        let link = tokens.mint_at(&principal, Purpose::Link, issued, Duration::hours(1));
        assert_eq!(tokens.verify_claims(&link), None);
        let session = tokens.mint_at(&principal, Purpose::Session, issued, Duration::hours(1));
        assert_eq!(tokens.verify(&session), None);
        let future = tokens.mint_at(
            &principal,
            Purpose::Session,
            Utc::now() + Duration::hours(1),
            Duration::hours(1),
        );
        assert_eq!(tokens.verify(&future), None, "a token before its time");
    }

    #[test]
    fn a_token_edited_or_of_another_key_does_not_verify() {
        let tokens = tokens();
        let token = tokens.mint(&Principal::Volunteer("v-maria".into()));
        // Flip one character of the encrypted payload.
        let mut edited = token.clone().into_bytes();
        let at = "v4.local.".len() + 10;
        edited[at] = if edited[at] == b'A' { b'B' } else { b'A' };
        let edited = String::from_utf8(edited).unwrap();
        assert_eq!(tokens.verify(&edited), None);
        let other = Tokens::new(b"another secret, also long").unwrap();
        assert_eq!(tokens.verify(&other.mint(&Principal::Coordinator)), None);
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let tokens = tokens();
        let long = "v4.local.".to_owned() + &"A".repeat(TOKEN_BYTES_MAX);
        for bad in [
            "",
            "v1",
            "v1.coordinator.all.00",
            "v4.local.",
            "v4.public.abc",
            long.as_str(),
        ] {
            assert_eq!(tokens.verify_claims(bad), None, "{bad}");
        }
        assert!(Tokens::new(b"short").is_err());
    }

    #[test]
    fn the_cookie_is_secure_when_served_over_tls() {
        assert!(sign_in_cookie("t", true).ends_with("; Secure"));
        assert!(!sign_in_cookie("t", false).contains("Secure"));
        assert!(sign_in_cookie("t", false).contains("HttpOnly; SameSite=Strict"));
    }

    #[test]
    fn the_bearer_header_and_the_cookie_both_carry_a_token() {
        let mut headers = HeaderMap::new();
        headers.insert("cookie", "theme=dark; sb_token=abc".parse().unwrap());
        assert_eq!(token_of(&headers), Some("abc"));
        headers.insert("authorization", "Bearer xyz".parse().unwrap());
        assert_eq!(token_of(&headers), Some("xyz"));
    }
}

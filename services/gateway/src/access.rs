//! Who is asking: sign-in tokens per role, signed with HMAC-SHA256.
//!
//! A token names one principal (the coordinators, one collective, or one
//! volunteer) and carries a MAC over that name under the gateway's secret,
//! so the gateway needs no session store: any instance with the same secret
//! checks any token. A token travels in a sign-in link
//! (`/signin?token=...`), which sets it as an HTTP-only cookie, or in an
//! `Authorization: Bearer` header for programs. Tokens do not expire; a
//! leaked one is revoked by changing the secret, which re-issues them all.
//!
//! Token syntax: `v1.<role>.<id>.<mac>`, where role is `coordinator`,
//! `collective`, `volunteer`, `vetter` or `donor` (whose id is their
//! pledge's), id follows the wire id syntax (`all` for the
//! coordinators), and mac is the hex HMAC-SHA256 of
//! `switchboard-token/v1 <role> <id>`. Every part is URL-safe.

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use proto::ids::is_valid_id;
use schemars::JsonSchema;
use serde::Serialize;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The cookie a sign-in link sets.
pub const TOKEN_COOKIE: &str = "sb_token";
/// The id part of the coordinators' token: they act for everyone.
const COORDINATOR_ID: &str = "all";
/// Version tag of the token syntax, so a later syntax can be told apart.
const TOKEN_VERSION: &str = "v1";
/// What the MAC covers before the role and id, so a MAC made by this
/// secret for some other purpose can never pass as a token.
const MAC_DOMAIN: &str = "switchboard-token/v1";
/// The shortest secret accepted, in bytes: below this a MAC can be guessed.
pub const SECRET_BYTES_MIN: usize = 16;
/// A token longer than this is refused before any work, in bytes.
const TOKEN_BYTES_MAX: usize = 256;

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
}

/// Mints and checks tokens under one secret.
#[derive(Clone)]
pub struct Tokens {
    secret: Vec<u8>,
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
        Ok(Tokens {
            secret: secret.to_vec(),
        })
    }

    fn mac(&self, role: &str, id: &str) -> HmacSha256 {
        // HMAC takes keys of any length, so this cannot fail.
        let mut mac = match HmacSha256::new_from_slice(&self.secret) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC accepts keys of every length"),
        };
        mac.update(MAC_DOMAIN.as_bytes());
        mac.update(b" ");
        mac.update(role.as_bytes());
        mac.update(b" ");
        mac.update(id.as_bytes());
        mac
    }

    /// The token of `principal`. Ids are checked by the caller; an id outside
    /// the wire syntax would make a token that never verifies.
    pub fn mint(&self, principal: &Principal) -> String {
        let digest = self.mac(principal.role(), principal.id()).finalize();
        let hex: String = digest
            .into_bytes()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        format!(
            "{TOKEN_VERSION}.{}.{}.{hex}",
            principal.role(),
            principal.id()
        )
    }

    /// The principal a token stands for, or `None` when it is not one of ours.
    pub fn verify(&self, token: &str) -> Option<Principal> {
        if token.len() > TOKEN_BYTES_MAX {
            return None;
        }
        let mut parts = token.split('.');
        let (version, role, id, hex) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version != TOKEN_VERSION || parts.next().is_some() || !is_valid_id(id) {
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
        let claimed = decode_hex(hex)?;
        // `verify_slice` compares in constant time.
        self.mac(role, id).verify_slice(&claimed).ok()?;
        Some(principal)
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

/// Bytes of MAC output in a registered volunteer's id: 2^64 ids.
const VOLUNTEER_ID_RANDOM_BYTES: usize = 8;

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|start| u8::from_str_radix(hex.get(start..start + 2)?, 16).ok())
        .collect()
}

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

/// The `Set-Cookie` value that signs a browser in. HTTP-only, so page
/// scripts never handle the token; `SameSite=Strict`, so another site cannot
/// make the browser post with it.
pub fn sign_in_cookie(token: &str) -> String {
    format!(
        "{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SIGN_IN_COOKIE_AGE_S}"
    )
}

/// A signed-in browser stays signed in this long.
pub const SIGN_IN_COOKIE_AGE_S: u64 = 60 * 24 * 3600;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn tokens() -> Tokens {
        Tokens::new(b"a secret of enough bytes").unwrap()
    }

    #[test]
    fn a_minted_token_verifies_as_its_principal() {
        let tokens = tokens();
        for principal in [
            Principal::Coordinator,
            Principal::Collective("c-tenants".into()),
            Principal::Volunteer("v-maria".into()),
            Principal::Vetter("vt-rosa".into()),
            Principal::Donor("p-rent".into()),
        ] {
            let token = tokens.mint(&principal);
            assert_eq!(tokens.verify(&token), Some(principal));
        }
    }

    #[test]
    fn a_token_edited_to_name_someone_else_does_not_verify() {
        let tokens = tokens();
        let token = tokens.mint(&Principal::Volunteer("v-maria".into()));
        let forged = token.replace("v-maria", "v-other");
        assert_eq!(tokens.verify(&forged), None);
        let promoted = token.replace("volunteer.v-maria", "coordinator.all");
        assert_eq!(tokens.verify(&promoted), None);
    }

    #[test]
    fn a_token_of_another_secret_does_not_verify() {
        let other = Tokens::new(b"another secret, also long").unwrap();
        let token = other.mint(&Principal::Coordinator);
        assert_eq!(tokens().verify(&token), None);
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let tokens = tokens();
        for bad in [
            "",
            "v1",
            "v1.coordinator.all",
            "v1.coordinator.all.zz",
            "v2.a.b.c",
        ] {
            assert_eq!(tokens.verify(bad), None, "{bad}");
        }
        assert!(Tokens::new(b"short").is_err());
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

//! The NATS auth callout: a person's connection logs in with their
//! session token, and gets a user JWT whose permissions name only their
//! own subjects (docs/adr/0008-auth-callout.md).
//!
//! nats-server (2.10+, `authorization { auth_callout { .. } }`) sends an
//! authorization request JWT, signed by the server's nkey, on
//! `$SYS.REQ.USER.AUTH` for every connection whose user is not one of the
//! `auth_users` (the services, the local administrator, this callout). The
//! token is the connection's `auth_token`, or its `pass` (with any user).
//! It must be a session token of the gateway's key (`access::Tokens`: not
//! a sign-in link, not expired) and not in the revocation bucket
//! (`revocation::Revocations`, read at each connection, so a revoked
//! token is refused from the moment the revocation is written). The
//! answer is an authorization response JWT signed by the callout's
//! account key (the `issuer` of the server's configuration), holding
//! either a user JWT for the connection's nkey, placed in the
//! switchboard's account and expiring with the token or after
//! [`CONNECTION_AGE_S_DEFAULT`] (so an open connection of a revoked token
//! ends within the hour), whose permissions
//! are `Subjects::person_permissions`, the very function `make-users`
//! writes static users with; or the reason it is refused.
//!
//! The JWTs are NATS's: `{"typ":"JWT","alg":"ed25519-nkey"}`, base64url
//! without padding, an Ed25519 signature by the issuer's nkey.
//! [`decide`] is pure; [`run`] is the shell that reads the bucket and
//! answers on NATS.

use anyhow::Context as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use futures_util::StreamExt as _;
use plumbing::Context;
use proto::permissions::{Permissions, Person, Rule, AUTH_CALLOUT_SUBJECT};
use proto::subjects::Subjects;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio_util::sync::CancellationToken;

use crate::access::{Principal, Purpose, Tokens};
use crate::revocation::Revocations;

/// The queue group every callout instance answers in, so each request
/// is answered once.
pub const QUEUE_GROUP_CALLOUT: &str = "sb-callout";
/// The audience nats-server gives its authorization requests.
const REQUEST_AUDIENCE: &str = "nats-authorization-request";
/// The JWT header of every NATS JWT (version 2).
const JWT_HEADER: &str = r#"{"typ":"JWT","alg":"ed25519-nkey"}"#;
/// A request larger than this is refused before decoding, in bytes.
const REQUEST_BYTES_MAX: usize = 64 * 1024;
/// NATS JWTs' "no limit" for subscriptions, data and payload: the
/// server's own limits (`max_payload`, ...) apply.
const NO_LIMIT: i64 = -1;
/// How long one log-in lasts at most, in seconds: the user JWT expires
/// then (or with the token, if sooner), the server closes the connection,
/// the client reconnects with its token, and the callout checks it again,
/// so a revoked or signed-out session keeps an open connection an hour at
/// most.
pub const CONNECTION_AGE_S_DEFAULT: u64 = 60 * 60;
/// The JWT claims version nats-server 2.10+ reads.
const CLAIMS_VERSION: u8 = 2;

/// What the callout signs with and where it places people.
#[derive(Clone)]
pub struct CalloutConfig {
    /// The seed (`SA…`) of the account key the server's `auth_callout`
    /// names as `issuer` (its public key).
    pub issuer_seed: String,
    /// The account people are placed in (`SWITCHBOARD`).
    pub account: String,
    /// The gateway's tokens (the same secret as the gateway's).
    pub tokens: Tokens,
    /// How long one log-in lasts at most ([`CONNECTION_AGE_S_DEFAULT`]).
    pub connection_age: std::time::Duration,
}

impl std::fmt::Debug for CalloutConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("CalloutConfig")
            .field("issuer_seed", &"<hidden>")
            .field("account", &self.account)
            .field("connection_age", &self.connection_age)
            .finish()
    }
}

/// A fresh account key for a server's `auth_callout`: its seed (kept by
/// the callout) and its public key (the `issuer` in the server's configuration).
pub fn fresh_issuer() -> anyhow::Result<(String, String)> {
    let key = nkeys::KeyPair::new_account();
    let seed = key
        .seed()
        .map_err(|error| anyhow::anyhow!("an account key without a seed: {error}"))?;
    Ok((seed, key.public_key()))
}

/// The public key of an issuer's seed, checked to be an account key.
pub fn issuer_public_key(seed: &str) -> anyhow::Result<String> {
    Ok(issuer_key(seed)?.public_key())
}

fn issuer_key(seed: &str) -> anyhow::Result<nkeys::KeyPair> {
    let key = nkeys::KeyPair::from_seed(seed.trim()).map_err(|error| {
        anyhow::anyhow!("the callout's issuer seed is not an nkey seed: {error}")
    })?;
    anyhow::ensure!(
        key.key_pair_type() == nkeys::KeyPairType::Account,
        "the callout's issuer seed must be an account key (SA…)"
    );
    Ok(key)
}

/// The parts of nats-server's authorization request the callout reads.
#[derive(Debug, Deserialize)]
struct RequestClaims {
    aud: String,
    iss: String,
    #[serde(default)]
    exp: Option<i64>,
    nats: RequestBody,
}

#[derive(Debug, Deserialize)]
struct RequestBody {
    server_id: ServerId,
    user_nkey: String,
    #[serde(default)]
    connect_opts: ConnectOptions,
    #[serde(rename = "type", default)]
    kind: String,
}

#[derive(Debug, Deserialize)]
struct ServerId {
    id: String,
}

#[derive(Debug, Default, Deserialize)]
struct ConnectOptions {
    #[serde(default)]
    auth_token: Option<String>,
    #[serde(default)]
    pass: Option<String>,
}

/// A checked authorization request.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    /// The server that asks: the response's audience.
    pub server_id: String,
    /// The connection's nkey: the subject of the response and the user JWT.
    pub user_nkey: String,
    /// The credential the connection presented, if any.
    pub token: Option<String>,
}

/// Why a request cannot even be answered: it is not a genuine request.
#[derive(Debug, thiserror::Error)]
#[error("authorization request: {0}")]
pub struct BadRequest(String);

/// Decodes and checks a request: a NATS JWT signed by the server key it
/// names, for the callout's audience, not expired at `now`.
pub fn parse_request(text: &[u8], now: DateTime<Utc>) -> Result<Request, BadRequest> {
    let bad = |reason: &str| BadRequest(reason.to_owned());
    if text.len() > REQUEST_BYTES_MAX {
        return Err(bad("larger than a request may be"));
    }
    let text = std::str::from_utf8(text).map_err(|_| bad("not UTF-8"))?;
    let mut parts = text.trim().split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("not a JWT (three dot-separated parts)"));
    };
    let decoded_payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| bad("payload is not base64url"))?;
    let claims: RequestClaims =
        serde_json::from_slice(&decoded_payload).map_err(|error| BadRequest(error.to_string()))?;
    let server = nkeys::KeyPair::from_public_key(&claims.iss)
        .map_err(|_| bad("iss is not a public nkey"))?;
    if server.key_pair_type() != nkeys::KeyPairType::Server {
        return Err(bad("iss is not a server's key"));
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| bad("signature is not base64url"))?;
    server
        .verify(format!("{header}.{payload}").as_bytes(), &signature)
        .map_err(|_| bad("signature does not verify under iss"))?;
    if claims.aud != REQUEST_AUDIENCE || claims.nats.kind != "authorization_request" {
        return Err(bad("not an authorization request"));
    }
    if claims.exp.is_some_and(|exp| exp < now.timestamp()) {
        return Err(bad("expired"));
    }
    let token = claims
        .nats
        .connect_opts
        .auth_token
        .filter(|token| !token.is_empty())
        .or(claims
            .nats
            .connect_opts
            .pass
            .filter(|pass| !pass.is_empty()));
    Ok(Request {
        server_id: claims.nats.server_id.id,
        user_nkey: claims.nats.user_nkey,
        token,
    })
}

/// Who a connection is, once its token is checked.
#[derive(Debug, PartialEq, Eq)]
pub struct Granted {
    /// The user's name in the server's logs: `volunteer-v-maria`.
    pub name: String,
    pub permissions: Permissions,
    pub expires_at: DateTime<Utc>,
}

/// The person of a principal, their id and their pledges.
fn person_of(principal: &Principal) -> (Person, &str, Vec<&str>) {
    match principal {
        // The coordinators share one token id: they act for everyone.
        Principal::Coordinator => (Person::Coordinator, "all", Vec::new()),
        Principal::Collective(id) => (Person::Collective, id, Vec::new()),
        Principal::Volunteer(id) => (Person::Volunteer, id, Vec::new()),
        Principal::Vetter(id) => (Person::Vetter, id, Vec::new()),
        // A donor's token names their pledge.
        Principal::Donor(pledge) => (Person::Donor, pledge, vec![pledge.as_str()]),
    }
}

/// Decides a request: the permissions of the token's person, or why not.
/// `revoked` says whether a token id is in the revocation set; the log-in
/// lasts until the token expires, or `connection_age`, whichever is
/// sooner. Pure: the time and the revocation set are given.
pub fn decide(
    subjects: &Subjects,
    tokens: &Tokens,
    token: Option<&str>,
    revoked: impl FnOnce(&str) -> bool,
    now: DateTime<Utc>,
    connection_age: std::time::Duration,
) -> Result<Granted, String> {
    let token = token.ok_or(
        "no credential: connect with your session token as the token (auth_token) or the password",
    )?;
    let claims = tokens
        .verify_claims(token)
        .ok_or("the token is not a valid session token (unknown, malformed or expired)")?;
    if claims.expires_at <= now {
        return Err("the token has expired".to_owned());
    }
    if claims.purpose != Purpose::Session {
        return Err("a sign-in link is no session: exchange it at /signin first".to_owned());
    }
    if revoked(&claims.token_id) {
        return Err("the token was revoked".to_owned());
    }
    let (person, id, pledges) = person_of(&claims.principal);
    Ok(Granted {
        name: person.user(id),
        permissions: subjects.person_permissions(person, id, &pledges),
        expires_at: claims.expires_at.min(now + age(connection_age)),
    })
}

fn age(duration: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

#[derive(Serialize)]
struct UserClaims<'a> {
    jti: String,
    iat: i64,
    exp: i64,
    iss: &'a str,
    name: &'a str,
    sub: &'a str,
    aud: &'a str,
    nats: UserBody<'a>,
}

#[derive(Serialize)]
struct UserBody<'a> {
    #[serde(rename = "pub")]
    publish: &'a Rule,
    #[serde(rename = "sub")]
    subscribe: &'a Rule,
    subs: i64,
    data: i64,
    payload: i64,
    #[serde(rename = "type")]
    kind: &'static str,
    version: u8,
}

#[derive(Serialize)]
struct ResponseClaims<'a> {
    jti: String,
    iat: i64,
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    nats: ResponseBody,
}

#[derive(Serialize)]
struct ResponseBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    jwt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(rename = "type")]
    kind: &'static str,
    version: u8,
}

/// A NATS JWT of `claims` signed by `issuer`. Its `jti` is the hash of
/// the claims without it, as NATS's own library makes it.
fn encode<T: Serialize>(
    issuer: &nkeys::KeyPair,
    claims: &mut T,
    set_id: impl Fn(&mut T, String),
) -> anyhow::Result<String> {
    let unidentified = serde_json::to_vec(claims)?;
    set_id(claims, hex_upper(&Sha256::digest(&unidentified)));
    let header = URL_SAFE_NO_PAD.encode(JWT_HEADER);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims)?);
    let signed = format!("{header}.{payload}");
    let signature = issuer
        .sign(signed.as_bytes())
        .map_err(|error| anyhow::anyhow!("signing a JWT: {error}"))?;
    Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02X}")).collect()
}

/// The signed authorization response to `request`: a user JWT for what
/// was granted, or the refusal's reason.
pub fn respond(
    issuer_seed: &str,
    account: &str,
    request: &Request,
    decision: &Result<Granted, String>,
    now: DateTime<Utc>,
) -> anyhow::Result<String> {
    let issuer = issuer_key(issuer_seed)?;
    let issuer_public = issuer.public_key();
    let (jwt, error) = match decision {
        Ok(granted) => {
            let mut user = UserClaims {
                jti: String::new(),
                iat: now.timestamp(),
                exp: granted.expires_at.timestamp(),
                iss: &issuer_public,
                name: &granted.name,
                sub: &request.user_nkey,
                aud: account,
                nats: UserBody {
                    publish: &granted.permissions.publish,
                    subscribe: &granted.permissions.subscribe,
                    subs: NO_LIMIT,
                    data: NO_LIMIT,
                    payload: NO_LIMIT,
                    kind: "user",
                    version: CLAIMS_VERSION,
                },
            };
            let jwt = encode(&issuer, &mut user, |claims, id| claims.jti = id)?;
            (Some(jwt), None)
        }
        Err(reason) => (None, Some(reason.clone())),
    };
    let mut response = ResponseClaims {
        jti: String::new(),
        iat: now.timestamp(),
        iss: &issuer_public,
        sub: &request.user_nkey,
        aud: &request.server_id,
        nats: ResponseBody {
            jwt,
            error,
            kind: "authorization_response",
            version: CLAIMS_VERSION,
        },
    };
    encode(&issuer, &mut response, |claims, id| claims.jti = id)
}

/// Answers the server's authorization requests until `shutdown`.
pub async fn run(
    context: Context,
    config: CalloutConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    // Refuse a bad seed at start, not at the first person's connection.
    issuer_key(&config.issuer_seed)?;
    let revocations = Revocations::new(context.clone());
    let mut requests = context
        .client
        .queue_subscribe(AUTH_CALLOUT_SUBJECT, QUEUE_GROUP_CALLOUT.to_owned())
        .await
        .with_context(|| format!("subscribing to {AUTH_CALLOUT_SUBJECT}"))?;
    // Nothing to catch up with: it is ready once it listens.
    context.health.set_caught_up();
    tracing::info!(account = %config.account, "auth callout ready");
    loop {
        let message = tokio::select! {
            () = shutdown.cancelled() => break,
            message = requests.next() => match message {
                Some(message) => message,
                None => anyhow::bail!("the server closed the callout's subscription"),
            },
        };
        let Some(reply) = message.reply.clone() else {
            tracing::warn!("an authorization request without a reply subject");
            continue;
        };
        let answer = answer(&context, &config, &revocations, &message.payload).await;
        match answer {
            Ok(response) => {
                if let Err(error) = context.client.publish(reply, response.into()).await {
                    tracing::warn!(%error, "answering an authorization request");
                }
            }
            // Not a genuine request: no answer, the server times it out.
            Err(error) => tracing::warn!(error = %format!("{error:#}"), "callout.request refused"),
        }
    }
    tracing::info!("auth callout stopped");
    Ok(())
}

#[tracing::instrument(name = "callout.authorize", skip_all)]
async fn answer(
    context: &Context,
    config: &CalloutConfig,
    revocations: &Revocations,
    payload: &[u8],
) -> anyhow::Result<String> {
    let now = Utc::now();
    let request = parse_request(payload, now)?;
    // The revocation set is read now, not followed: a token revoked a
    // moment ago is refused. If it cannot be read, nobody gets in.
    let revoked_id = match request
        .token
        .as_deref()
        .and_then(|token| config.tokens.verify_claims(token))
    {
        Some(claims) => Some((
            claims.token_id.clone(),
            revocations.is_revoked(&claims.token_id).await,
        )),
        None => None,
    };
    let decision = match &revoked_id {
        Some((_, Err(error))) => {
            tracing::warn!(error = %format!("{error:#}"), "reading the revoked tokens");
            Err("the switchboard cannot check tokens now; try again".to_owned())
        }
        _ => decide(
            &context.subjects,
            &config.tokens,
            request.token.as_deref(),
            |token_id| {
                revoked_id
                    .as_ref()
                    .is_some_and(|(id, revoked)| id == token_id && matches!(revoked, Ok(true)))
            },
            now,
            config.connection_age,
        ),
    };
    match &decision {
        Ok(granted) => tracing::debug!(user = %granted.name, "callout.granted"),
        Err(reason) => tracing::debug!(%reason, "callout.refused"),
    }
    let outcome = if decision.is_ok() {
        "granted"
    } else {
        "refused"
    };
    metrics::counter!("switchboard_callout_connections_total", "outcome" => outcome).increment(1);
    respond(
        &config.issuer_seed,
        &config.account,
        &request,
        &decision,
        now,
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    const HOUR: std::time::Duration = std::time::Duration::from_secs(CONNECTION_AGE_S_DEFAULT);

    fn tokens() -> Tokens {
        Tokens::new(b"a test secret of enough bytes").unwrap()
    }

    fn decode_payload(jwt: &str) -> serde_json::Value {
        let payload = jwt.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    }

    fn signed_request(server: &nkeys::KeyPair, claims: &serde_json::Value) -> String {
        let header = URL_SAFE_NO_PAD.encode(JWT_HEADER);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap());
        let signature = server
            .sign(format!("{header}.{payload}").as_bytes())
            .unwrap();
        format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    fn request_claims(server: &nkeys::KeyPair, token: &str) -> serde_json::Value {
        serde_json::json!({
            "aud": REQUEST_AUDIENCE,
            "iss": server.public_key(),
            "sub": "A",
            "exp": Utc::now().timestamp() + 2,
            "nats": {
                "server_id": {"id": server.public_key(), "name": "n"},
                "user_nkey": "UCONNECTION",
                "connect_opts": {"auth_token": token, "lang": "rust"},
                "type": "authorization_request",
                "version": 2
            }
        })
    }

    #[test]
    fn a_request_signed_by_its_server_is_read_and_a_forged_one_is_not() {
        let server = nkeys::KeyPair::new_server();
        let text = signed_request(&server, &request_claims(&server, "t0k3n"));
        let request = parse_request(text.as_bytes(), Utc::now()).unwrap();
        assert_eq!(request.token.as_deref(), Some("t0k3n"));
        assert_eq!(request.server_id, server.public_key());

        // Signed by another key than the one it names.
        let other = nkeys::KeyPair::new_server();
        let forged = signed_request(&other, &request_claims(&server, "t0k3n"));
        let error = parse_request(forged.as_bytes(), Utc::now()).unwrap_err();
        assert!(error.to_string().contains("signature"), "{error}");

        // Signed by an account key, not a server's.
        let account = nkeys::KeyPair::new_account();
        let by_account = signed_request(&account, &request_claims(&account, "t0k3n"));
        assert!(parse_request(by_account.as_bytes(), Utc::now()).is_err());
    }

    #[test]
    fn a_client_with_only_a_password_field_may_send_the_token_as_its_password() {
        let server = nkeys::KeyPair::new_server();
        let mut claims = request_claims(&server, "");
        claims["nats"]["connect_opts"] = serde_json::json!({"user": "ahmed", "pass": "t0k3n"});
        let text = signed_request(&server, &claims);
        let request = parse_request(text.as_bytes(), Utc::now()).unwrap();
        assert_eq!(request.token.as_deref(), Some("t0k3n"));
        claims["nats"]["connect_opts"] = serde_json::json!({});
        let text = signed_request(&server, &claims);
        assert_eq!(
            parse_request(text.as_bytes(), Utc::now()).unwrap().token,
            None
        );
    }

    #[test]
    fn a_volunteers_session_grants_their_own_subjects_until_it_expires() {
        let tokens = tokens();
        let token = tokens.mint(&Principal::Volunteer("v1".into()));
        let subjects = Subjects::default();
        let granted = decide(
            &subjects,
            &tokens,
            Some(&token),
            |_| false,
            Utc::now(),
            HOUR,
        )
        .unwrap();
        assert_eq!(granted.name, "volunteer-v1");
        assert_eq!(
            granted.permissions,
            subjects.person_permissions(Person::Volunteer, "v1", &[])
        );
        // A 30-day session logs in for an hour at a time.
        assert!(granted.expires_at > Utc::now());
        assert!(granted.expires_at <= Utc::now() + age(HOUR));
    }

    #[test]
    fn no_token_a_link_a_revoked_or_an_expired_token_is_refused_with_its_reason() {
        let tokens = tokens();
        let subjects = Subjects::default();
        let volunteer = Principal::Volunteer("v1".into());
        let refused = |token: Option<&str>, revoked: bool| {
            decide(&subjects, &tokens, token, |_| revoked, Utc::now(), HOUR).unwrap_err()
        };
        assert!(refused(None, false).contains("no credential"));
        assert!(refused(Some("v4.local.garbage"), false).contains("not a valid"));
        let link = tokens.mint_link(&volunteer);
        assert!(refused(Some(&link), false).contains("sign-in link"));
        let session = tokens.mint(&volunteer);
        assert!(refused(Some(&session), true).contains("revoked"));
        let expired = tokens.mint_at(
            &volunteer,
            Purpose::Session,
            Utc::now() - chrono::Duration::hours(2),
            chrono::Duration::hours(1),
        );
        assert!(refused(Some(&expired), false).contains("expired"));
    }

    #[test]
    fn the_response_is_signed_by_the_issuer_for_the_server_and_the_connections_key() {
        let (seed, public) = fresh_issuer().unwrap();
        let tokens = tokens();
        let token = tokens.mint(&Principal::Donor("p1".into()));
        let subjects = Subjects::default();
        let request = Request {
            server_id: "NSERVER".into(),
            user_nkey: "UCONNECTION".into(),
            token: Some(token.clone()),
        };
        let decision = decide(
            &subjects,
            &tokens,
            Some(&token),
            |_| false,
            Utc::now(),
            HOUR,
        );
        let response = respond(&seed, "SWITCHBOARD", &request, &decision, Utc::now()).unwrap();
        let issuer = nkeys::KeyPair::from_public_key(&public).unwrap();
        let (signed, signature) = response.rsplit_once('.').unwrap();
        issuer
            .verify(
                signed.as_bytes(),
                &URL_SAFE_NO_PAD.decode(signature).unwrap(),
            )
            .unwrap();
        let claims = decode_payload(&response);
        assert_eq!(claims["aud"], "NSERVER");
        assert_eq!(claims["sub"], "UCONNECTION");
        assert_eq!(claims["iss"], public);
        assert_eq!(claims["nats"]["type"], "authorization_response");
        let user = decode_payload(claims["nats"]["jwt"].as_str().unwrap());
        assert_eq!(user["aud"], "SWITCHBOARD");
        assert_eq!(user["sub"], "UCONNECTION");
        assert_eq!(user["name"], "donor-p1");
        assert_eq!(
            user["nats"]["pub"]["allow"],
            serde_json::json!(["sb.in.pledge.p1", "sb.in.withdraw.p1", "sb.in.forget.p1"])
        );

        let refused = respond(
            &seed,
            "SWITCHBOARD",
            &request,
            &Err("the token was revoked".into()),
            Utc::now(),
        )
        .unwrap();
        let claims = decode_payload(&refused);
        assert_eq!(claims["nats"]["error"], "the token was revoked");
        assert!(claims["nats"].get("jwt").is_none());
    }
}

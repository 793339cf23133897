//! Who may use `switchboard up`'s local nats-server (docs/adr/0008-auth-callout.md).
//!
//! By default the server has one account, `SWITCHBOARD`, and three kinds
//! of client: each service as its own user with only its role's subjects
//! (`proto::permissions`, as `deploy/nats/secure.conf` has them), the
//! local administrator `sb-admin` for the CLI (`watch`, the demo, an
//! operator's `nats` tool), and people, who log in with their session
//! token through the auth callout and get only their own subjects. The
//! users' passwords are in `DATA/nats/credentials.json` (0600); the
//! callout's account key is made afresh at each start and never written.
//! A connection with no credential, or a wrong one, is refused.
//!
//! `up --insecure-local` runs the server with no users at all instead.

use std::collections::BTreeMap;
use std::path::Path;

use proto::permissions::Service;
use proto::subjects::Subjects;

use crate::nats_users::{self, Issued, User};

/// The account of the switchboard's streams, users and people.
pub const ACCOUNT: &str = "SWITCHBOARD";
/// The local administrator: every subject, for the CLI on this machine.
pub const ADMIN_USER: &str = "sb-admin";
/// The administrator's password, alone in a file (0600) beside the
/// credentials, for `--nats-password-file`.
pub const ADMIN_PASSWORD_FILE: &str = "admin.password";
/// A client has this long to send its credentials, and the callout to
/// answer, in seconds.
const AUTHORIZATION_TIMEOUT_S: u32 = 2;

/// The credentials `up` issued for its local server.
#[derive(Clone)]
pub struct LocalAccess {
    /// The callout's account key (its seed); the server names its public key.
    pub issuer_seed: String,
    pub issuer_public: String,
    /// Every fixed user's credentials, by user name.
    pub issued: BTreeMap<String, Issued>,
}

impl std::fmt::Debug for LocalAccess {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("LocalAccess")
            .field("issuer_public", &self.issuer_public)
            .field("users", &self.issued.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl LocalAccess {
    /// Issues (or keeps) the fixed users' passwords in `directory` and a
    /// fresh callout key.
    pub fn prepare(directory: &Path, subjects: &Subjects) -> anyhow::Result<LocalAccess> {
        let mut users = nats_users::service_users(subjects, &Service::ALL);
        users.push(User {
            name: ADMIN_USER.to_owned(),
            inbox_prefix: "_INBOX".to_owned(),
            permissions: None,
        });
        let issued = nats_users::write(directory, &users)?;
        if let Some(admin) = issued.get(ADMIN_USER) {
            nats_users::write_private(
                &directory.join(ADMIN_PASSWORD_FILE),
                &format!("{}\n", admin.password),
            )?;
        }
        let (issuer_seed, issuer_public) = gateway::callout::fresh_issuer()?;
        Ok(LocalAccess {
            issuer_seed,
            issuer_public,
            issued,
        })
    }

    /// The credentials of one fixed user.
    pub fn credentials(&self, user: &str) -> anyhow::Result<plumbing::nats::Credentials> {
        let issued = self
            .issued
            .get(user)
            .ok_or_else(|| anyhow::anyhow!("no NATS user {user} was issued"))?;
        Ok(plumbing::nats::Credentials {
            user: Some(issued.user.clone()),
            password: Some(issued.password.clone()),
            ..plumbing::nats::Credentials::default()
        })
    }

    /// What the server's configuration adds for these users: the account
    /// (its users in `users.conf` beside it) and the callout for everyone else.
    pub fn config_section(&self) -> String {
        format!(
            "\n# Written by `switchboard up` (switchboard/src/local_access.rs): services and the\n\
             # local administrator as fixed users, people through the auth callout.\n\
             accounts {{\n  {ACCOUNT} {{\n    jetstream: enabled\n    include \"users.conf\"\n  }}\n}}\n{}",
            authorization_block(&self.issuer_public, self.issued.keys().map(String::as_str)),
        )
    }
}

/// The `authorization` block that sends every connection but those of
/// `fixed_users` (by password) to the auth callout whose key is `issuer_public`.
pub fn authorization_block<'a>(
    issuer_public: &str,
    fixed_users: impl Iterator<Item = &'a str>,
) -> String {
    let auth_users = fixed_users
        .map(|user| format!("\"{user}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "authorization {{\n  timeout: {AUTHORIZATION_TIMEOUT_S}\n  auth_callout {{\n    \
         issuer: \"{issuer_public}\"\n    account: \"{ACCOUNT}\"\n    auth_users: [{auth_users}]\n  }}\n}}\n"
    )
}

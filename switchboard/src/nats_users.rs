//! `switchboard nats-users` (what `deploy/nats/make-users` runs): the
//! static users of `deploy/nats/secure.conf` (one per service and per
//! volunteer, collective, donor, coordinator and vetter), each allowed
//! only the subjects of its role, as `proto::permissions` computes them,
//! and the users `switchboard up` runs its local server with.
//!
//! It writes `users.conf` (included by the server's configuration) and
//! `credentials.json` (user, password and inbox prefix of each, for
//! handing out), both mode 0600. Written again with more ids, it keeps
//! the passwords already issued.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use proto::permissions::{Permissions, Person, Service};
use proto::subjects::Subjects;
use rand::TryRngCore as _;
use serde::{Deserialize, Serialize};

/// Random bytes of an issued password (printed as hex).
const PASSWORD_BYTES: usize = 24;
/// The file of issued credentials, beside `users.conf`.
pub const CREDENTIALS_FILE: &str = "credentials.json";
/// The callout's account key, with `--callout`.
pub const CALLOUT_SEED_FILE: &str = "callout.seed";
/// The `authorization` block for the callout, with `--callout`.
pub const CALLOUT_CONFIG_FILE: &str = "callout.conf";
/// The users, included by the server's configuration.
pub const USERS_FILE: &str = "users.conf";

/// The people to issue users for.
#[derive(Clone, Debug, Default)]
pub struct People {
    pub volunteers: Vec<String>,
    pub collectives: Vec<String>,
    pub donors: Vec<String>,
    pub coordinators: Vec<String>,
    pub vetters: Vec<String>,
    /// `(donor, pledge)`: a pledge id the donor may pledge and withdraw under.
    pub pledges: Vec<(String, String)>,
}

/// One issued user, as `credentials.json` lists it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Issued {
    pub user: String,
    pub password: String,
    /// The inbox prefix the user may subscribe to; their client must use it.
    pub inbox_prefix: String,
}

/// A user to write: its name, inbox prefix and permissions (`None`: every
/// subject, for the local administrator of `up`).
pub struct User {
    pub name: String,
    pub inbox_prefix: String,
    pub permissions: Option<Permissions>,
}

/// The users of `services`, with their roles' permissions.
pub fn service_users(subjects: &Subjects, services: &[Service]) -> Vec<User> {
    services
        .iter()
        .map(|service| User {
            name: service.user(),
            inbox_prefix: "_INBOX".to_owned(),
            permissions: Some(subjects.service_permissions(*service)),
        })
        .collect()
}

/// The users of `people`, every id checked.
pub fn person_users(subjects: &Subjects, people: &People) -> anyhow::Result<Vec<User>> {
    for (donor, pledge) in &people.pledges {
        anyhow::ensure!(
            people.donors.contains(donor),
            "pledge {donor}:{pledge}: donor {donor:?} is not given with --donor"
        );
        anyhow::ensure!(
            proto::ids::is_valid_id(pledge),
            "pledge {donor}:{pledge}: pledge id {pledge:?} must match [A-Za-z0-9_-]{{1,64}}"
        );
    }
    let mut users = Vec::new();
    for (person, ids) in [
        (Person::Volunteer, &people.volunteers),
        (Person::Collective, &people.collectives),
        (Person::Donor, &people.donors),
        (Person::Coordinator, &people.coordinators),
        (Person::Vetter, &people.vetters),
    ] {
        for id in ids {
            anyhow::ensure!(
                proto::ids::is_valid_id(id),
                "{} id {id:?} must match [A-Za-z0-9_-]{{1,64}}",
                person.token()
            );
            let pledges: Vec<&str> = people
                .pledges
                .iter()
                .filter(|(donor, _)| donor == id && person == Person::Donor)
                .map(|(_, pledge)| pledge.as_str())
                .collect();
            users.push(User {
                name: person.user(id),
                inbox_prefix: subjects.person_inbox_prefix(person, id),
                permissions: Some(subjects.person_permissions(person, id, &pledges)),
            });
        }
    }
    Ok(users)
}

/// Writes `users` into `directory`'s `users.conf` and `credentials.json`
/// (0600), keeping passwords already issued there. Returns what was issued.
pub fn write(directory: &Path, users: &[User]) -> anyhow::Result<BTreeMap<String, Issued>> {
    std::fs::create_dir_all(directory)
        .with_context(|| format!("creating {}", directory.display()))?;
    let credentials_path = directory.join(CREDENTIALS_FILE);
    let previously: BTreeMap<String, Issued> = match std::fs::read_to_string(&credentials_path) {
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("reading {}", credentials_path.display()))?,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
        Err(error) => {
            return Err(error).with_context(|| format!("reading {}", credentials_path.display()))
        }
    };
    let mut issued = BTreeMap::new();
    let mut lines = vec![
        "# Written by `switchboard nats-users` (deploy/nats/make-users); edit proto::permissions, not this file.".to_owned(),
        "users: [".to_owned(),
    ];
    for user in users {
        let password = match previously.get(&user.name) {
            Some(previous) => previous.password.clone(),
            None => fresh_password()?,
        };
        // nats-server's configuration is a superset of JSON.
        let mut entry = serde_json::json!({ "user": user.name, "password": password });
        if let Some(permissions) = &user.permissions {
            entry["permissions"] = serde_json::to_value(permissions)?;
        }
        lines.push(format!(
            "  {},",
            serde_json::to_string_pretty(&entry)?.replace('\n', "\n  ")
        ));
        issued.insert(
            user.name.clone(),
            Issued {
                user: user.name.clone(),
                password,
                inbox_prefix: user.inbox_prefix.clone(),
            },
        );
    }
    lines.push("]".to_owned());
    write_private(&directory.join(USERS_FILE), &(lines.join("\n") + "\n"))?;
    write_private(
        &credentials_path,
        &(serde_json::to_string_pretty(&issued)? + "\n"),
    )?;
    Ok(issued)
}

/// Writes `text` to `path`, readable and writable by its owner only.
pub fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    use std::os::unix::fs::PermissionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    // An existing file keeps its mode on open: make it private too.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("making {} private", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn fresh_password() -> anyhow::Result<String> {
    let mut bytes = [0u8; PASSWORD_BYTES];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|error| anyhow::anyhow!("no randomness for a password: {error}"))?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// `switchboard nats-users`.
pub fn run(args: crate::cli::NatsUsersArgs) -> anyhow::Result<()> {
    let subjects = Subjects::new(&args.prefix).context("--prefix")?;
    let mut pledges = Vec::new();
    for given in &args.pledge {
        let (donor, pledge) = given
            .split_once(':')
            .with_context(|| format!("--pledge {given:?}: expected DONOR:PLEDGE"))?;
        pledges.push((donor.to_owned(), pledge.to_owned()));
    }
    let people = People {
        volunteers: args.volunteer,
        collectives: args.collective,
        donors: args.donor,
        coordinators: args.coordinator,
        vetters: args.vetter,
        pledges,
    };
    let services = [
        Service::Ingest,
        Service::Solver,
        Service::Ledger,
        Service::Dispatch,
        Service::Gateway,
    ];
    let mut users = service_users(&subjects, &services);
    if args.callout {
        users.extend(service_users(&subjects, &[Service::Callout]));
    }
    users.extend(person_users(&subjects, &people)?);
    let issued = write(&args.out, &users)?;
    if args.callout {
        write_callout(&args.out, &issued)?;
    }
    println!(
        "wrote {} users to {} and {}",
        users.len(),
        args.out.join(USERS_FILE).display(),
        CREDENTIALS_FILE
    );
    Ok(())
}

/// The callout's account key (its seed, written once, kept after) and
/// `callout.conf`: every issued user logs in by password, everyone else
/// through the callout (`switchboard callout --issuer-seed-file DIR/callout.seed`).
fn write_callout(directory: &Path, issued: &BTreeMap<String, Issued>) -> anyhow::Result<()> {
    let seed_path = directory.join(CALLOUT_SEED_FILE);
    let seed = match std::fs::read_to_string(&seed_path) {
        Ok(seed) => seed.trim().to_owned(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let (seed, _) = gateway::callout::fresh_issuer()?;
            write_private(&seed_path, &format!("{seed}\n"))?;
            seed
        }
        Err(error) => {
            return Err(error).with_context(|| format!("reading {}", seed_path.display()))
        }
    };
    let public = gateway::callout::issuer_public_key(&seed)
        .with_context(|| format!("the key in {}", seed_path.display()))?;
    let text = format!(
        "# Written by `switchboard nats-users --callout`: include it instead of secure.conf's\n\
         # `authorization` block, and run `switchboard callout` as sb-callout.\n{}",
        crate::local_access::authorization_block(&public, issued.keys().map(String::as_str))
    );
    write_private(&directory.join(CALLOUT_CONFIG_FILE), &text)
}

/// `switchboard nats-users ARGUMENTS…`, exactly as `deploy/nats/make-users`
/// runs it (for tests that start a server with its users).
pub fn run_command_line(arguments: &[&str]) -> anyhow::Result<()> {
    use clap::Parser as _;
    let command_line = ["switchboard", "nats-users"]
        .into_iter()
        .chain(arguments.iter().copied());
    match crate::cli::Cli::try_parse_from(command_line)?.command {
        crate::cli::Command::NatsUsers(args) => run(args),
        _ => unreachable!("the command line names nats-users"),
    }
}

/// The path of a file of issued credentials in `directory`.
pub fn credentials_path(directory: &Path) -> PathBuf {
    directory.join(CREDENTIALS_FILE)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn written_again_the_users_keep_their_passwords_and_the_files_stay_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let directory = tempfile::tempdir().unwrap();
        let subjects = Subjects::default();
        let people = People {
            volunteers: vec!["v1".into()],
            ..People::default()
        };
        let first = write(directory.path(), &person_users(&subjects, &people).unwrap()).unwrap();
        let more = People {
            volunteers: vec!["v1".into(), "v2".into()],
            ..People::default()
        };
        let second = write(directory.path(), &person_users(&subjects, &more).unwrap()).unwrap();
        assert_eq!(
            first["volunteer-v1"].password,
            second["volunteer-v1"].password
        );
        assert_ne!(
            second["volunteer-v1"].password,
            second["volunteer-v2"].password
        );
        assert_eq!(second["volunteer-v2"].inbox_prefix, "_INBOX.volunteer.v2");
        for file in [USERS_FILE, CREDENTIALS_FILE] {
            let mode = std::fs::metadata(directory.path().join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
    }

    #[test]
    fn a_pledge_of_a_donor_not_given_is_an_error_naming_it() {
        let people = People {
            pledges: vec![("d1".into(), "p1".into())],
            ..People::default()
        };
        let error = person_users(&Subjects::default(), &people)
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("donor \"d1\""), "{error}");
    }
}

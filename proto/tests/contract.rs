//! The contract's checked-in artefacts stay true: golden fixtures round-trip
//! through the types and validate, and the JSON Schemas match the types.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use proto::instance::Instance;
use proto::money::{Disbursal, LedgerEntry};
use proto::wire::{
    MatchChanged, MatchProposed, NeedPost, PledgeOffer, Reply, Steering, TaskCompletion, Vetting,
    VolunteerMessage, VolunteerOffer, VolunteerReply, Withdrawal,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read_json(path: &Path) -> serde_json::Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// Parses a fixture into `T` and back: nothing the fixture says may be lost.
fn round_trip<T: DeserializeOwned + Serialize>(stem: &str) -> T {
    let original = read_json(&crate_dir().join("fixtures").join(format!("{stem}.json")));
    let typed: T =
        serde_json::from_value(original.clone()).unwrap_or_else(|error| panic!("{stem}: {error}"));
    let again = serde_json::to_value(&typed).unwrap();
    assert_eq!(again, original, "{stem} does not round-trip");
    typed
}

#[test]
fn every_golden_fixture_round_trips_and_validates() {
    round_trip::<VolunteerOffer>("volunteer")
        .validate("")
        .unwrap();
    round_trip::<NeedPost>("need").validate().unwrap();
    let shifts = round_trip::<NeedPost>("need-shifts").validate().unwrap();
    assert!(shifts.tasks[0].shift.is_some() && shifts.tasks[1].shift.is_none());
    let dana = round_trip::<VolunteerOffer>("volunteer-weekly")
        .validate("")
        .unwrap();
    assert_eq!(
        (dana.weekly.len(), dana.tz),
        (2, chrono_tz::America::Detroit)
    );
    round_trip::<PledgeOffer>("pledge").validate("").unwrap();
    round_trip::<Withdrawal>("withdraw").validate().unwrap();
    round_trip::<VolunteerReply>("reply").validate().unwrap();
    round_trip::<TaskCompletion>("complete").validate().unwrap();
    round_trip::<Steering>("steer").validate().unwrap();
    round_trip::<Vetting>("vet").validate().unwrap();
    assert!(round_trip::<Reply>("response-ok").ok);
    assert!(!round_trip::<Reply>("response-error").ok);
    round_trip::<MatchProposed>("match-proposed");
    round_trip::<MatchChanged>("match-changed");
    // A message as v1 wrote it still reads; one with a shift's details and
    // its calendar entry round-trips.
    let old = round_trip::<VolunteerMessage>("volunteer-message");
    assert!(old.shift.is_none() && old.calendar.is_none() && old.tz.is_none());
    let shift = round_trip::<VolunteerMessage>("volunteer-message-shift");
    assert_eq!(shift.calendar.map(|entry| entry.sequence), Some(2));
    round_trip::<Disbursal>("disburse").validate().unwrap();
    let entry = round_trip::<LedgerEntry>("ledger-entry");
    assert_eq!(entry.total_cents(), 40000);
}

#[test]
fn checked_in_json_schemas_match_the_types() {
    let dir = crate_dir().join("schema");
    let update = std::env::var_os("SWITCHBOARD_UPDATE_SCHEMAS").is_some();
    for (stem, schema) in proto::schema::all() {
        let path = dir.join(format!("{stem}.schema.json"));
        let generated = serde_json::to_string_pretty(&schema).unwrap() + "\n";
        if update {
            std::fs::write(&path, &generated).unwrap();
            continue;
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == generated,
            "{} is stale: run SWITCHBOARD_UPDATE_SCHEMAS=1 cargo test -p proto --test contract",
            path.display()
        );
    }
}

#[test]
fn the_shared_instances_parse_and_validate() {
    let dir = crate_dir().join("../../shared/bench/instances");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        panic!(
            "{} is missing: the shared folder must sit beside the checkout",
            dir.display()
        );
    };
    let mut seen = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name == "reference.json" || !name.ends_with(".json") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let instance: Instance = proto::validate::decode_unbounded(&bytes)
            .unwrap_or_else(|error| panic!("{name}: {error:?}"));
        let world = instance
            .validate()
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(world.tasks.len(), instance.tasks.len());
        seen += 1;
    }
    assert!(seen >= 5, "expected the five shared instances, saw {seen}");
}

//! Trust tiers come from vetters (`sb.in.vet`), not from what a volunteer
//! says of themself: with `trust_source: Vetted`, an offer claiming core
//! trust gets no sensitive work until a vetter vouches for the person, and a
//! vetter's revocation takes it away again.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proto::subjects::{Input, MatchKind};
use proto::wire::ErrorCode;
use serde_json::json;
use tests::{hours_from_now, volunteer, Inbox, NatsServer, Options, Switchboard};

fn sensitive_need() -> serde_json::Value {
    json!({"id": "n-safehouse", "collective": "c-sanctuary", "title": "Safe house rota", "tasks": [
        {"id": "t-safehouse", "title": "Night shift at the safe house", "skills": {"driving": 1},
         "hours": 4.0, "slots": 1, "sensitivity": 1,
         "earliest_start": hours_from_now(0), "deadline": hours_from_now(5 * 24), "impact": 9.0}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volunteer_claiming_trust_gets_sensitive_work_only_once_a_vetter_vouches_for_them() {
    let nats = NatsServer::start().await;
    let state = tempfile::tempdir().unwrap();
    let switchboard = Switchboard::start(
        &nats,
        state.path(),
        Options {
            starter_policy: false,
            trust_source: solver::TrustSource::Vetted,
            ..Options::default()
        },
    )
    .await;
    let mut matches = Inbox::open(&switchboard.client, switchboard.subjects.matches_all()).await;
    // An open task first: its proposal shows the solver has seen the stranger.
    switchboard
        .accept(
            Input::Need,
            &json!({"id": "n-flyers", "collective": "c-sanctuary", "title": "Flyers", "tasks": [
                {"id": "t-flyers", "title": "Hand out flyers", "skills": {"driving": 1},
                 "hours": 2.0, "slots": 1, "sensitivity": 0,
                 "earliest_start": hours_from_now(0), "deadline": hours_from_now(5 * 24),
                 "impact": 1.0}]}),
        )
        .await;
    switchboard.accept(Input::Need, &sensitive_need()).await;
    let mut stranger = volunteer("v-stranger", json!({"driving": 2}));
    stranger["trust"] = json!(2);
    switchboard.accept(Input::Volunteer, &stranger).await;

    let proposed = switchboard.subjects.match_event(MatchKind::Proposed);
    let (_, first) = matches.next_where(|subject, _| subject == proposed).await;
    assert_eq!(
        first["task"], "t-flyers",
        "a claimed tier opens no sensitive work: {first}"
    );

    // Vetting is checked like every input.
    let too_high = switchboard
        .send(
            Input::Vet,
            &json!({"volunteer": "v-stranger", "trust": 3, "vetter": "vt-ana"}),
        )
        .await;
    let error = too_high.error.unwrap();
    assert_eq!(
        (error.code, error.field.as_deref()),
        (ErrorCode::Invalid, Some("trust"))
    );
    let unknown = switchboard
        .send(
            Input::Vet,
            &json!({"volunteer": "v-nobody", "trust": 1, "vetter": "vt-ana"}),
        )
        .await;
    let error = unknown.error.unwrap();
    assert_eq!(
        (error.code, error.field.as_deref()),
        (ErrorCode::NotFound, Some("volunteer"))
    );

    // A vetter vouches: the safe house, worth more, is now theirs too.
    switchboard
        .accept(
            Input::Vet,
            &json!({"volunteer": "v-stranger", "trust": 1, "vetter": "vt-ana",
                    "note": "known from the tenants' union"}),
        )
        .await;
    let (_, second) = matches
        .next_where(|subject, body| subject == proposed && body["task"] == "t-safehouse")
        .await;
    assert_eq!(second["volunteer"], "v-stranger", "{second}");

    // And a revocation takes it away again before they answer.
    switchboard
        .accept(
            Input::Vet,
            &json!({"volunteer": "v-stranger", "trust": 0, "vetter": "vt-ana",
                    "note": "seen photographing the roster"}),
        )
        .await;
    let released = switchboard.subjects.match_event(MatchKind::Released);
    let (_, gone) = matches
        .next_where(|subject, body| subject == released && body["task"] == "t-safehouse")
        .await;
    assert_eq!(gone["volunteer"], "v-stranger", "{gone}");
    switchboard.stop().await;
}

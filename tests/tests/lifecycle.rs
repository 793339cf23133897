//! A volunteer's three weeks on a fast clock (one real second is one hour of
//! switchboard time): proposals expire, silent acceptances get a reminder and
//! are released, work is released with a hand-off note when a volunteer's
//! time ends, and every slot left open is backfilled. No sleeps: each test
//! waits for the event it expects.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proto::subjects::{Input, MatchKind};
use proto::wire::ErrorCode;
use serde_json::{json, Value};
use tests::{Inbox, NatsServer, Options, Switchboard};

/// Switchboard hours per real second.
const CLOCK_SPEED: f64 = 3600.0;

struct Scene {
    switchboard: Switchboard,
    clock: plumbing::Clock,
    matches: Inbox,
    _nats: NatsServer,
    _state: tempfile::TempDir,
}

async fn scene() -> Scene {
    let nats = NatsServer::start().await;
    let state = tempfile::tempdir().unwrap();
    let clock = plumbing::Clock::starting_at(chrono::Utc::now(), CLOCK_SPEED);
    let options = Options {
        clock: clock.clone(),
        response_window: chrono::Duration::hours(2),
        checkin_window: chrono::Duration::hours(6),
        ..Options::default()
    };
    let switchboard = Switchboard::start(&nats, state.path(), options).await;
    let matches = Inbox::open(&switchboard.client, switchboard.subjects.matches_all()).await;
    Scene {
        switchboard,
        clock,
        matches,
        _nats: nats,
        _state: state,
    }
}

impl Scene {
    fn at(&self, hours: i64) -> String {
        (self.clock.now() + chrono::Duration::hours(hours))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }

    async fn post_task(&self) {
        let need = json!({"id": "n-1", "collective": "c-pantry", "title": "Pantry", "tasks": [
            {"id": "t-drive", "title": "Deliveries", "skills": {"driving": 1}, "hours": 1.0, "slots": 1,
             "earliest_start": self.at(0), "deadline": self.at(7 * 24), "impact": 10.0}]});
        self.switchboard.accept(Input::Need, &need).await;
    }

    async fn post_volunteer(&self, id: &str, hours_available: i64) {
        let offer = json!({"id": id, "skills": {"driving": 2}, "hours_per_week": 100.0,
            "available_from": self.at(-1), "available_until": self.at(hours_available), "region": null});
        self.switchboard.accept(Input::Volunteer, &offer).await;
    }

    /// The next match event of `kind`.
    async fn next(&mut self, kind: MatchKind) -> Value {
        let subject = self.switchboard.subjects.match_event(kind);
        self.matches.next_where(|got, _| got == subject).await.1
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_proposal_expires_and_the_work_goes_to_someone_else() {
    let mut scene = scene().await;
    scene.post_task().await;
    scene.post_volunteer("v-first", 21 * 24).await;
    let first = scene.next(MatchKind::Proposed).await;
    assert_eq!(first["volunteer"], "v-first");
    scene.post_volunteer("v-second", 21 * 24).await;

    let expired = scene.next(MatchKind::Expired).await;
    assert_eq!(expired["volunteer"], "v-first");
    let second = scene.next(MatchKind::Proposed).await;
    assert_eq!(
        second["volunteer"], "v-second",
        "the work went to the other volunteer"
    );

    let late = scene
        .switchboard
        .send(
            Input::Reply,
            &json!({"volunteer": "v-first", "task": "t-drive", "action": "accept"}),
        )
        .await;
    let error = late.error.expect("an answer after expiry is refused");
    assert_eq!(error.code, ErrorCode::Conflict, "{}", error.message);
    scene.switchboard.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_acceptance_gets_a_reminder_then_is_released_and_backfilled() {
    let mut scene = scene().await;
    let mut inbox = Inbox::open(
        &scene.switchboard.client,
        scene.switchboard.subjects.to_volunteer("v-quiet"),
    )
    .await;
    scene.post_task().await;
    scene.post_volunteer("v-quiet", 21 * 24).await;
    let (_, proposal) = inbox.next().await;
    scene
        .switchboard
        .accept(Input::Reply, &proposal["accept"])
        .await;
    // Accepting twice is the same answer; declining after accepting is not possible.
    let again = scene
        .switchboard
        .send(Input::Reply, &proposal["accept"])
        .await;
    assert!(again.ok, "{again:?}");
    let decline = scene
        .switchboard
        .send(Input::Reply, &proposal["decline"])
        .await;
    assert_eq!(decline.error.unwrap().code, ErrorCode::Conflict);
    // "My three weeks" arrives on the volunteer's own subject.
    let (_, plan) = inbox
        .next_where(|_, body| body["kind"] == "three_weeks")
        .await;
    assert_eq!(plan["now"][0]["task"], "t-drive", "{plan}");
    assert_eq!(plan["now"][0]["state"], "accepted", "{plan}");
    assert_eq!(plan["hours_committed"], 1.0, "{plan}");
    scene.post_volunteer("v-backup", 21 * 24).await;

    let (_, reminder) = inbox.next_where(|_, body| body["kind"] == "reminder").await;
    assert_eq!(reminder["checkin"]["action"], "checkin", "{reminder}");
    let released = scene.next(MatchKind::Released).await;
    assert_eq!(released["volunteer"], "v-quiet");
    assert!(
        released["reason"].as_str().unwrap().contains("silent"),
        "{released}"
    );
    assert!(
        released["handoff"]
            .as_str()
            .unwrap()
            .contains("never checked in"),
        "{released}"
    );
    let backfill = scene.next(MatchKind::Proposed).await;
    assert_eq!(backfill["volunteer"], "v-backup");
    scene.switchboard.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_still_held_when_a_volunteers_time_ends_is_released_with_a_handoff_note() {
    let mut scene = scene().await;
    let mut inbox = Inbox::open(
        &scene.switchboard.client,
        scene.switchboard.subjects.to_volunteer("v-leaving"),
    )
    .await;
    scene.post_task().await;
    // Five hours left: time to answer (two hours are given) and do the
    // hour's work, which they still hold when their time ends.
    scene.post_volunteer("v-leaving", 5).await;
    let (_, proposal) = inbox.next().await;
    scene
        .switchboard
        .accept(Input::Reply, &proposal["accept"])
        .await;
    let checkin = json!({"volunteer": "v-leaving", "task": "t-drive", "action": "checkin"});
    scene.switchboard.accept(Input::Reply, &checkin).await;
    assert_eq!(
        scene.next(MatchKind::CheckedIn).await["volunteer"],
        "v-leaving"
    );
    scene.post_volunteer("v-staying", 21 * 24).await;

    let released = scene.next(MatchKind::Released).await;
    assert_eq!(released["volunteer"], "v-leaving");
    let handoff = released["handoff"].as_str().unwrap();
    assert!(
        handoff.contains("checked in on") && handoff.contains("c-pantry"),
        "{handoff}"
    );
    let backfill = scene.next(MatchKind::Proposed).await;
    assert_eq!(backfill["volunteer"], "v-staying");
    scene.switchboard.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_gets_a_starter_task_first_and_long_work_still_finds_a_newcomer() {
    let mut scene = scene().await;
    let need = json!({"id": "n-2", "collective": "c-union", "title": "Organizing drive", "tasks": [
        {"id": "t-long", "title": "Map the whole shop", "skills": {"driving": 1}, "hours": 8.0, "slots": 1,
         "earliest_start": scene.at(0), "deadline": scene.at(7 * 24), "impact": 30.0},
        {"id": "t-short", "title": "Leaflet one shift", "skills": {"driving": 1}, "hours": 2.0, "slots": 1,
         "earliest_start": scene.at(0), "deadline": scene.at(7 * 24), "impact": 10.0}]});
    scene.switchboard.accept(Input::Need, &need).await;
    // Nine hours a week over the week before the deadline: time for one of the two.
    let (from, until) = (scene.at(-1), scene.at(21 * 24));
    let newcomer = |id: &str| {
        json!({"id": id, "skills": {"driving": 2}, "hours_per_week": 9.0,
        "available_from": from, "available_until": until, "region": null})
    };
    scene
        .switchboard
        .accept(Input::Volunteer, &newcomer("v-new-1"))
        .await;
    let first = scene.next(MatchKind::Proposed).await;
    assert_eq!(
        (first["volunteer"].as_str(), first["task"].as_str()),
        (Some("v-new-1"), Some("t-short")),
        "{first}"
    );
    scene
        .switchboard
        .accept(Input::Volunteer, &newcomer("v-new-2"))
        .await;
    let second = scene.next(MatchKind::Proposed).await;
    assert_eq!(
        (second["volunteer"].as_str(), second["task"].as_str()),
        (Some("v-new-2"), Some("t-long")),
        "{second}"
    );
    scene.switchboard.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_missing_one_member_is_held_together_until_a_newcomer_completes_it() {
    let mut scene = scene().await;
    let need = json!({"id": "n-2", "collective": "c-tenants", "title": "Door knocking", "tasks": [
        {"id": "t-doors", "title": "Knock on doors", "skills": {"driving": 1}, "hours": 2.0, "slots": 2,
         "earliest_start": scene.at(0), "deadline": scene.at(5 * 24), "impact": 10.0}]});
    scene.switchboard.accept(Input::Need, &need).await;
    scene.post_volunteer("v-ana", 21 * 24).await;
    scene.post_volunteer("v-bo", 21 * 24).await;
    let mut proposed = [
        scene.next(MatchKind::Proposed).await,
        scene.next(MatchKind::Proposed).await,
    ];
    proposed.sort_by_key(|proposal| proposal["volunteer"].as_str().unwrap().to_owned());
    assert_eq!(
        (
            proposed[0]["volunteer"].as_str(),
            proposed[1]["volunteer"].as_str()
        ),
        (Some("v-ana"), Some("v-bo"))
    );
    scene
        .switchboard
        .accept(
            Input::Reply,
            &json!({"volunteer": "v-ana", "task": "t-doors", "action": "accept", "round": proposed[0]["round"]}),
        )
        .await;
    scene.next(MatchKind::Accepted).await;
    // Bo declines and nobody can replace him yet: Ana's yes is kept, not
    // released, while the switchboard looks for a second person.
    scene
        .switchboard
        .accept(
            Input::Reply,
            &json!({"volunteer": "v-bo", "task": "t-doors", "action": "decline", "round": proposed[1]["round"]}),
        )
        .await;
    scene.next(MatchKind::Declined).await;
    // A newcomer arrives hours later and is asked to complete the team.
    scene.post_volunteer("v-cy", 21 * 24).await;
    let (subject, event) = scene
        .matches
        .next_where(|subject, _| !subject.ends_with(".checked_in"))
        .await;
    assert!(
        subject.ends_with(".proposed"),
        "Ana's place was given up before a replacement was sought: {subject} {event}"
    );
    assert_eq!(
        (event["volunteer"].as_str(), event["task"].as_str()),
        (Some("v-cy"), Some("t-doors"))
    );
    let plan = scene.switchboard.plan().await;
    assert_eq!(
        plan.assignments.len(),
        2,
        "the team is whole again: {plan:?}"
    );
    scene.switchboard.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_of_hours_done_is_a_check_in_then_a_sign_of_life_and_needs_its_hours() {
    let mut scene = scene().await;
    let mut inbox = Inbox::open(
        &scene.switchboard.client,
        scene.switchboard.subjects.to_volunteer("v-reporting"),
    )
    .await;
    scene.post_task().await;
    scene.post_volunteer("v-reporting", 21 * 24).await;
    let (_, proposal) = inbox.next().await;
    let report = |hours_done: Value| {
        json!({"volunteer": "v-reporting", "task": "t-drive", "action": "progress",
               "hours_done": hours_done})
    };
    // Before accepting, there is no work to report on.
    let early = scene
        .switchboard
        .send(Input::Reply, &report(json!(0.25)))
        .await;
    assert_eq!(early.error.unwrap().code, ErrorCode::Conflict);
    scene
        .switchboard
        .accept(Input::Reply, &proposal["accept"])
        .await;
    let bare = json!({"volunteer": "v-reporting", "task": "t-drive", "action": "progress"});
    let refused = scene.switchboard.send(Input::Reply, &bare).await;
    let error = refused.error.unwrap();
    assert_eq!(
        error.field.as_deref(),
        Some("hours_done"),
        "{}",
        error.message
    );

    scene
        .switchboard
        .accept(Input::Reply, &report(json!(0.25)))
        .await;
    assert_eq!(
        scene.next(MatchKind::CheckedIn).await["volunteer"],
        "v-reporting"
    );
    // On checked-in work, another report is logged as a sign of life.
    let again = scene
        .switchboard
        .accept(Input::Reply, &report(json!(0.5)))
        .await;
    let events = scene
        .switchboard
        .stream_messages(&scene.switchboard.subjects.events_stream())
        .await;
    let reports: Vec<&Value> = events
        .iter()
        .map(|(_, body)| body)
        .filter(|body| body["action"] == "progress")
        .collect();
    assert_eq!(reports.len(), 2, "{events:?}");
    assert_eq!(reports[1]["hours_done"], 0.5);
    assert!(again.seq.is_some());
    scene.switchboard.stop().await;
}

//! The spine, end to end over a real nats-server: input in, logged, matched,
//! delivered, answered, visible; bad input refused with the field named;
//! repeats harmless; restarts lossless.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;

use futures_util::StreamExt;
use proto::subjects::{Input, MatchKind};
use proto::wire::ErrorCode;
use serde_json::json;
use tests::{hours_from_now, volunteer, Inbox, NatsServer, Options, Switchboard, EXPECT_WITHIN};

fn clinic_need() -> serde_json::Value {
    json!({
        "id": "n-clinic", "collective": "c-tenants", "title": "Friday tenant clinic",
        "tasks": [
            {"id": "t-intake", "title": "Spanish intake", "skills": {"translation-es": 3}, "hours": 4.0, "slots": 2,
             "earliest_start": hours_from_now(0), "deadline": hours_from_now(5 * 24), "region": "detroit",
             "impact": 20.0, "tags": ["housing"], "money_cents": 5000, "depends_on": []},
        ]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_need_a_team_and_a_pledge_become_a_proposal_that_the_volunteer_accepts() {
    let nats = NatsServer::start().await;
    let state = tempfile::tempdir().unwrap();
    let switchboard = Switchboard::start(&nats, state.path(), Options::default()).await;
    let mut maria = Inbox::open(
        &switchboard.client,
        switchboard.subjects.to_volunteer("v-maria"),
    )
    .await;
    let mut matches = Inbox::open(&switchboard.client, switchboard.subjects.matches_all()).await;

    switchboard.accept(Input::Need, &clinic_need()).await;
    switchboard
        .accept(
            Input::Pledge,
            &json!({"id": "p-rent", "amount_cents": 40000, "tags": ["housing"]}),
        )
        .await;
    switchboard
        .accept(
            Input::Volunteer,
            &volunteer("v-maria", json!({"translation-es": 4})),
        )
        .await;
    switchboard
        .accept(
            Input::Volunteer,
            &volunteer("v-ahmed", json!({"translation-es": 3, "legal": 2})),
        )
        .await;

    let (_, proposal) = maria.next().await;
    assert_eq!(proposal["kind"], "proposal");
    assert_eq!(proposal["task"], "t-intake");
    assert_eq!(proposal["title"], "Spanish intake");
    assert_eq!(
        proposal["why"]["team"].as_array().unwrap().len(),
        2,
        "a whole team: {proposal}"
    );
    let plan = switchboard.plan().await;
    assert_eq!(
        plan.funding
            .iter()
            .map(|funding| funding.amount_cents)
            .sum::<u64>(),
        5000,
        "funded exactly: {plan:?}"
    );

    let reply = switchboard.send(Input::Reply, &proposal["accept"]).await;
    assert!(reply.ok, "{reply:?}");
    let (subject, accepted) = matches
        .next_where(|subject, body| {
            subject.ends_with(".accepted") && body["volunteer"] == "v-maria"
        })
        .await;
    assert_eq!(
        subject,
        switchboard.subjects.match_event(MatchKind::Accepted)
    );
    assert_eq!(accepted["task"], "t-intake");
    // Answering for somebody else's assignment is refused.
    let intruder = switchboard
        .send(
            Input::Reply,
            &json!({"volunteer": "v-stranger", "task": "t-intake", "action": "accept"}),
        )
        .await;
    assert_eq!(intruder.error.unwrap().code, ErrorCode::Unauthorized);
    switchboard.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_invalid_input_is_refused_with_its_field_and_the_service_keeps_serving() {
    let nats = NatsServer::start().await;
    let state = tempfile::tempdir().unwrap();
    let switchboard = Switchboard::start(&nats, state.path(), Options::default()).await;
    let mut dead_letters = Inbox::open(
        &switchboard.client,
        switchboard.subjects.dead_letter_input(),
    )
    .await;
    switchboard.accept(Input::Need, &clinic_need()).await;

    let with = |base: serde_json::Value, pointer: &str, value: serde_json::Value| {
        let mut body = base;
        *body.pointer_mut(pointer).unwrap() = value;
        body
    };
    let person = volunteer("v-1", json!({"legal": 2}));
    let need = clinic_need();
    let cases: Vec<(Input, serde_json::Value, ErrorCode, &str)> = vec![
        (
            Input::Volunteer,
            with(person.clone(), "/hours_per_week", json!(0)),
            ErrorCode::Invalid,
            "hours_per_week",
        ),
        (
            Input::Volunteer,
            with(person.clone(), "/hours_per_week", json!(169)),
            ErrorCode::Invalid,
            "hours_per_week",
        ),
        (
            Input::Volunteer,
            with(person.clone(), "/skills", json!({"legal": 6})),
            ErrorCode::Invalid,
            "skills.legal",
        ),
        (
            Input::Volunteer,
            with(person.clone(), "/skills", json!({"legal": 0})),
            ErrorCode::Invalid,
            "skills.legal",
        ),
        (
            Input::Volunteer,
            with(person.clone(), "/id", json!("v.1")),
            ErrorCode::Invalid,
            "id",
        ),
        (
            Input::Volunteer,
            with(
                person.clone(),
                "/available_until",
                json!(hours_from_now(-5)),
            ),
            ErrorCode::Invalid,
            "available_until",
        ),
        (
            Input::Volunteer,
            with(person.clone(), "/trust", json!(7)),
            ErrorCode::Invalid,
            "trust",
        ),
        (
            Input::Need,
            with(need.clone(), "/tasks/0/slots", json!(51)),
            ErrorCode::Invalid,
            "tasks[0].slots",
        ),
        (
            Input::Need,
            with(need.clone(), "/tasks/0/hours", json!(-2)),
            ErrorCode::Invalid,
            "tasks[0].hours",
        ),
        (
            Input::Need,
            with(
                need.clone(),
                "/tasks/0/deadline",
                json!(hours_from_now(-48)),
            ),
            ErrorCode::Invalid,
            "tasks[0].deadline",
        ),
        (
            Input::Need,
            with(need.clone(), "/tasks/0/money_cents", json!(-1)),
            ErrorCode::Invalid,
            "tasks[0].money_cents",
        ),
        (
            Input::Need,
            with(need.clone(), "/tasks/0/depends_on", json!(["t-nowhere"])),
            ErrorCode::NotFound,
            "tasks[0].depends_on[0]",
        ),
        (
            Input::Need,
            with(need.clone(), "/collective", json!("c-intruders")),
            ErrorCode::Conflict,
            "collective",
        ),
        (
            Input::Need,
            with(need.clone(), "/tasks/0/skills", json!({"Legal Spanish": 2})),
            ErrorCode::Invalid,
            "tasks[0].skills.Legal Spanish",
        ),
        (
            Input::Pledge,
            json!({"id": "p-1", "amount_cents": 0}),
            ErrorCode::Invalid,
            "amount_cents",
        ),
        (
            Input::Pledge,
            json!({"id": "p-1", "amount_cents": 12.5}),
            ErrorCode::Invalid,
            "amount_cents",
        ),
        (
            Input::Pledge,
            json!({"id": "p-1"}),
            ErrorCode::Invalid,
            "amount_cents",
        ),
        (
            Input::Withdraw,
            json!({"kind": "volunteer", "id": "v-never-seen"}),
            ErrorCode::NotFound,
            "id",
        ),
        (
            Input::Withdraw,
            json!({"kind": "planet", "id": "x"}),
            ErrorCode::Invalid,
            "kind",
        ),
        (
            Input::Complete,
            json!({"task": "t-unknown"}),
            ErrorCode::NotFound,
            "task",
        ),
        (
            Input::Reply,
            json!({"volunteer": "v-1", "task": "t-intake", "action": "maybe"}),
            ErrorCode::Invalid,
            "action",
        ),
        (
            Input::Reply,
            json!({"volunteer": "v-1", "task": "t-intake", "action": "accept"}),
            ErrorCode::NotFound,
            "task",
        ),
    ];
    for (input, body, code, field) in cases {
        let reply = switchboard.send(input, &body).await;
        let error = reply
            .error
            .unwrap_or_else(|| panic!("{input:?} {body} was accepted"));
        assert_eq!(
            (error.code, error.field.as_deref()),
            (code, Some(field)),
            "{input:?} {body}: {}",
            error.message
        );
        let (_, letter) = dead_letters.next().await;
        assert_eq!(letter["error"]["code"], serde_json::to_value(code).unwrap());
    }
    // A need whose update would close a dependency cycle through another need.
    switchboard
        .accept(Input::Need, &json!({"id": "n-2", "collective": "c-2", "title": "follow-up", "tasks": [
            {"id": "t-follow", "title": "calls", "hours": 1.0, "slots": 1, "earliest_start": hours_from_now(0),
             "deadline": hours_from_now(48), "impact": 1.0, "depends_on": ["t-intake"]}]}))
        .await;
    let cyclic = with(need.clone(), "/tasks/0/depends_on", json!(["t-follow"]));
    let error = switchboard.send(Input::Need, &cyclic).await.error.unwrap();
    assert_eq!(
        (error.code, error.field.as_deref()),
        (ErrorCode::Invalid, Some("tasks[0].depends_on")),
        "{}",
        error.message
    );
    // Garbage, and a body over the size limit.
    let garbage = switchboard
        .send_raw(Input::Need, bytes::Bytes::from_static(b"\xff{not json"))
        .await;
    assert_eq!(garbage.error.unwrap().code, ErrorCode::Invalid);
    let huge = bytes::Bytes::from(vec![b' '; proto::validate::PAYLOAD_BYTES_MAX + 1]);
    assert_eq!(
        switchboard
            .send_raw(Input::Volunteer, huge)
            .await
            .error
            .unwrap()
            .code,
        ErrorCode::TooLarge
    );
    // Still serving, and nothing refused reached the log.
    switchboard.accept(Input::Volunteer, &person).await;
    let logged = switchboard
        .stream_messages(&switchboard.subjects.events_stream())
        .await;
    assert_eq!(
        logged.len(),
        3,
        "the clinic, the follow-up need and one volunteer: {logged:?}"
    );
    switchboard.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_request_twice_is_one_event_with_the_same_reply() {
    let nats = NatsServer::start().await;
    let state = tempfile::tempdir().unwrap();
    let switchboard = Switchboard::start(&nats, state.path(), Options::default()).await;
    let first = switchboard.accept(Input::Need, &clinic_need()).await;
    let second = switchboard.accept(Input::Need, &clinic_need()).await;
    assert_eq!(first, second);
    let person = volunteer("v-1", json!({"translation-es": 3}));
    let one = switchboard.accept(Input::Volunteer, &person).await;
    assert_eq!(switchboard.accept(Input::Volunteer, &person).await, one);
    let completion = json!({"task": "t-intake"});
    let done = switchboard.accept(Input::Complete, &completion).await;
    assert_eq!(
        switchboard.accept(Input::Complete, &completion).await,
        done,
        "a repeated completion is not a conflict"
    );
    let logged = switchboard
        .stream_messages(&switchboard.subjects.events_stream())
        .await;
    assert_eq!(logged.len(), 3, "{logged:?}");
    switchboard.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_stream_loses_nothing_and_repeats_no_proposal() {
    let nats = NatsServer::start().await;
    let state = tempfile::tempdir().unwrap();
    let switchboard = Switchboard::start(&nats, state.path(), Options::default()).await;
    let mut matches = Inbox::open(
        &switchboard.client,
        switchboard.subjects.match_event(MatchKind::Proposed),
    )
    .await;
    switchboard.accept(Input::Need, &clinic_need()).await;
    switchboard
        .accept(Input::Pledge, &json!({"id": "p-1", "amount_cents": 10000}))
        .await;
    switchboard
        .accept(
            Input::Volunteer,
            &volunteer("v-a", json!({"translation-es": 3})),
        )
        .await;
    switchboard
        .accept(
            Input::Volunteer,
            &volunteer("v-b", json!({"translation-es": 4})),
        )
        .await;
    matches.next().await;
    matches.next().await;
    switchboard.stop().await;

    // Started again on the same state: each service resumes from its stream
    // position and the solver knows every proposal it made before.
    let switchboard = Switchboard::start(&nats, state.path(), Options::default()).await;
    switchboard
        .accept(Input::Need, &json!({"id": "n-2", "collective": "c-2", "title": "calls", "tasks": [
            {"id": "t-calls", "title": "calls", "skills": {"phonebanking": 1}, "hours": 2.0, "slots": 1,
             "earliest_start": hours_from_now(0), "deadline": hours_from_now(72), "impact": 5.0}]}))
        .await;
    switchboard
        .accept(
            Input::Volunteer,
            &volunteer("v-c", json!({"phonebanking": 2})),
        )
        .await;
    let (_, proposal) = matches
        .next_where(|_, body| body["task"] == "t-calls")
        .await;
    assert_eq!(proposal["volunteer"], "v-c");

    // The plan still holds the first team; each proposal was made exactly once.
    let plan = switchboard
        .settled_plan(std::time::Duration::from_millis(300))
        .await;
    assert!(
        plan.assignments.iter().any(|pair| pair.task == "t-intake"),
        "{plan:?}"
    );
    let proposed = switchboard
        .stream_messages(&switchboard.subjects.matches_stream())
        .await;
    let mut count: HashMap<(String, String), usize> = HashMap::new();
    for (subject, body) in &proposed {
        if subject.ends_with(".proposed") {
            *count
                .entry((body["volunteer"].to_string(), body["task"].to_string()))
                .or_default() += 1;
        }
    }
    assert_eq!(count.len(), 3, "{count:?}");
    assert!(
        count.values().all(|&times| times == 1),
        "a proposal was repeated: {count:?}"
    );
    switchboard.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_state_directory_is_rebuilt_from_the_streams() {
    let nats = NatsServer::start().await;
    let state = tempfile::tempdir().unwrap();
    let switchboard = Switchboard::start(&nats, state.path(), Options::default()).await;
    let mut proposals = Inbox::open(
        &switchboard.client,
        switchboard.subjects.match_event(MatchKind::Proposed),
    )
    .await;
    switchboard.accept(Input::Need, &clinic_need()).await;
    switchboard
        .accept(Input::Pledge, &json!({"id": "p-1", "amount_cents": 10000}))
        .await;
    switchboard
        .accept(
            Input::Volunteer,
            &volunteer("v-a", json!({"translation-es": 3})),
        )
        .await;
    switchboard
        .accept(
            Input::Volunteer,
            &volunteer("v-b", json!({"translation-es": 4})),
        )
        .await;
    proposals.next().await;
    proposals.next().await;
    let before = switchboard
        .settled_plan(std::time::Duration::from_millis(300))
        .await;
    switchboard.stop().await;
    std::fs::remove_dir_all(state.path()).unwrap();

    let switchboard = Switchboard::start(&nats, state.path(), Options::default()).await;
    let after = switchboard
        .settled_plan(std::time::Duration::from_millis(300))
        .await;
    assert_eq!(before, after);
    // The ingest view was rebuilt too: the need's task id is still owned.
    let stolen = json!({"id": "n-thief", "collective": "c-x", "title": "x", "tasks": [
        {"id": "t-intake", "title": "x", "hours": 1.0, "slots": 1, "earliest_start": hours_from_now(0),
         "deadline": hours_from_now(24), "impact": 1.0}]});
    assert_eq!(
        switchboard
            .send(Input::Need, &stolen)
            .await
            .error
            .unwrap()
            .code,
        ErrorCode::Conflict
    );
    let proposed = switchboard
        .stream_messages(&switchboard.subjects.matches_stream())
        .await;
    assert_eq!(
        proposed
            .iter()
            .filter(|(subject, _)| subject.ends_with(".proposed"))
            .count(),
        2,
        "{proposed:?}"
    );
    switchboard.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_aims_its_reply_into_the_switchboards_own_subjects_is_ignored() {
    let nats = NatsServer::start().await;
    let state = tempfile::tempdir().unwrap();
    let switchboard = Switchboard::start(&nats, state.path(), Options::default()).await;
    let body = bytes::Bytes::from(
        serde_json::to_vec(&volunteer("v-sneaky", json!({"legal": 2}))).unwrap(),
    );
    let aimed_at_the_log = switchboard
        .subjects
        .event(proto::subjects::EventKind::VolunteerOffered, &["v-forged"]);
    switchboard
        .client
        .publish_with_reply(
            switchboard.subjects.input(Input::Volunteer),
            aimed_at_the_log,
            body,
        )
        .await
        .unwrap();
    switchboard.client.flush().await.unwrap();
    // A request after it is handled in order, so the first was seen and ignored.
    switchboard
        .accept(
            Input::Volunteer,
            &volunteer("v-honest", json!({"legal": 2})),
        )
        .await;
    let logged = switchboard
        .stream_messages(&switchboard.subjects.events_stream())
        .await;
    let subjects: Vec<&str> = logged.iter().map(|(subject, _)| subject.as_str()).collect();
    assert_eq!(subjects, vec!["sb.ev.volunteer.v-honest"], "{logged:?}");
    switchboard.stop().await;
}

/// Ingest keeps several writes in flight; each request is still checked
/// against every request before it, logged or not yet acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_sent_without_waiting_are_checked_against_the_ones_before_them() {
    let nats = NatsServer::start().await;
    let state = tempfile::tempdir().unwrap();
    let switchboard = Switchboard::start(&nats, state.path(), Options::default()).await;
    const NEEDS: usize = 40;
    let mut bodies = Vec::new();
    for index in 0..NEEDS {
        let mut need = clinic_need();
        need["id"] = json!(format!("n-{index}"));
        need["tasks"][0]["id"] = json!(format!("t-{index}"));
        bodies.push((Input::Need, need));
        // Valid only once the need before it is in ingest's view.
        bodies.push((
            Input::Withdraw,
            json!({"kind": "task", "id": format!("t-{index}")}),
        ));
    }
    // Published in this order on one connection, so they reach ingest in
    // this order, each before the replies to the ones before it.
    let client = &switchboard.client;
    let inbox = client.new_inbox();
    let mut answers = client.subscribe(format!("{inbox}.*")).await.unwrap();
    for (index, (input, body)) in bodies.iter().enumerate() {
        client
            .publish_with_reply(
                switchboard.subjects.input(*input),
                format!("{inbox}.{index}"),
                serde_json::to_vec(body).unwrap().into(),
            )
            .await
            .unwrap();
    }
    client.flush().await.unwrap();
    let mut replies: HashMap<usize, proto::wire::Reply> = HashMap::new();
    while replies.len() < bodies.len() {
        let answer = tokio::time::timeout(EXPECT_WITHIN, answers.next())
            .await
            .expect("every request is answered")
            .unwrap();
        let index: usize = answer.subject.rsplit('.').next().unwrap().parse().unwrap();
        replies.insert(index, serde_json::from_slice(&answer.payload).unwrap());
    }
    for (index, (input, body)) in bodies.iter().enumerate() {
        let reply = &replies[&index];
        assert!(reply.ok, "{input:?} {body} refused: {:?}", reply.error);
    }
    let logged = switchboard
        .stream_messages(&switchboard.subjects.events_stream())
        .await;
    assert_eq!(logged.len(), 2 * NEEDS, "{logged:?}");
    switchboard.stop().await;
}

/// A write the log refuses is answered `unavailable`, and what ingest held
/// of it ahead of the ack is gone: the next request does not see it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_the_log_refuses_is_unavailable_and_later_requests_do_not_see_it() {
    let nats = NatsServer::start().await;
    let state = tempfile::tempdir().unwrap();
    let switchboard = Switchboard::start(&nats, state.path(), Options::default()).await;
    let person = volunteer("v-1", json!({"translation-es": 3}));
    switchboard.accept(Input::Volunteer, &person).await;

    // A full stream refuses new messages (discard: new).
    let jetstream = switchboard.jetstream();
    let events = switchboard.subjects.events_stream();
    let mut stream = jetstream.get_stream(&events).await.unwrap();
    let mut config = stream.info().await.unwrap().config.clone();
    config.max_messages = 1;
    jetstream.update_stream(&config).await.unwrap();
    let refused = switchboard.send(Input::Need, &clinic_need()).await;
    assert_eq!(
        refused.error.map(|error| error.code),
        Some(ErrorCode::Unavailable)
    );

    config.max_messages = -1;
    jetstream.update_stream(&config).await.unwrap();
    let withdrawal = json!({"kind": "need", "id": "n-clinic"});
    let unknown = switchboard.send(Input::Withdraw, &withdrawal).await;
    assert_eq!(
        unknown.error.map(|error| error.code),
        Some(ErrorCode::NotFound),
        "the need that was not logged is not in ingest's view"
    );
    switchboard.accept(Input::Need, &clinic_need()).await;
    switchboard.accept(Input::Withdraw, &withdrawal).await;
    let logged = switchboard.stream_messages(&events).await;
    assert_eq!(logged.len(), 3, "{logged:?}");
    switchboard.stop().await;
}

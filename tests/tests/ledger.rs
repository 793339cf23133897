//! Money over a real nats-server: a pledge is held for a task only when the
//! task will complete, disbursed with a reference, released when the task is
//! cancelled; repeats are one movement; bad disbursals are refused with the
//! field named; a lost state directory is rebuilt; two ledgers racing never
//! over-commit a pledge. Every check of amounts folds `SB_LEDGER` itself.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gateway::access::Principal;
use ledger_core::Ledger;
use proto::domain::Cents;
use proto::money::{EntryKind, LedgerEntry};
use proto::subjects::Input;
use proto::wire::ErrorCode;
use serde_json::{json, Value};
use tests::{gateway_token, hours_from_now, volunteer, Inbox, NatsServer, Options, Switchboard};

fn pantry_need() -> Value {
    json!({
        "id": "n-pantry", "collective": "c-pantry", "title": "Pantry month",
        "tasks": [
            {"id": "t-print", "title": "Print and hand out flyers", "skills": {"design": 2}, "hours": 3.0,
             "slots": 1, "earliest_start": hours_from_now(0), "deadline": hours_from_now(5 * 24),
             "region": "detroit", "impact": 20.0, "money_cents": 15000, "tags": ["outreach"]},
            {"id": "t-rent", "title": "Rent for the pantry", "hours": 0.0, "slots": 0,
             "earliest_start": hours_from_now(0), "deadline": hours_from_now(10 * 24),
             "impact": 30.0, "money_cents": 40000, "tags": ["housing"]}
        ]
    })
}

/// Every entry of `SB_LEDGER`, in order.
async fn entries(switchboard: &Switchboard) -> Vec<LedgerEntry> {
    switchboard
        .stream_messages(&switchboard.subjects.ledger_stream())
        .await
        .into_iter()
        .map(|(_, body)| serde_json::from_value(body).unwrap())
        .collect()
}

/// The ledger folded from the stream, checked from scratch.
async fn folded(switchboard: &Switchboard) -> Ledger {
    let (ledger, refused) = Ledger::replay(&entries(switchboard).await);
    assert!(
        refused.is_empty(),
        "entries that break the ledger: {refused:?}"
    );
    ledger.audit().unwrap();
    ledger
}

/// Waits for the next entry of `kind` about `key` on the money stream.
async fn next_entry(ledger: &mut Inbox, kind: EntryKind, key: &str) -> LedgerEntry {
    let wanted = format!("sb.ledger.{}.{key}", kind.token());
    let (_, body) = ledger.next_where(|subject, _| subject == wanted).await;
    serde_json::from_value(body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn money_is_held_when_the_team_accepts_disbursed_with_a_reference_and_released_on_cancel() {
    let nats = NatsServer::start().await;
    let state = tempfile::tempdir().unwrap();
    let switchboard = Switchboard::start(&nats, state.path(), Options::default()).await;
    let mut money = Inbox::open(&switchboard.client, switchboard.subjects.ledger_all()).await;
    let mut dee = Inbox::open(
        &switchboard.client,
        switchboard.subjects.to_volunteer("v-dee"),
    )
    .await;

    switchboard
        .accept(
            Input::Pledge,
            &json!({"id": "p-housing", "amount_cents": 40000, "tags": ["housing"],
                    "donor": "Ana from the block club"}),
        )
        .await;
    switchboard
        .accept(
            Input::Pledge,
            &json!({"id": "p-general", "amount_cents": 30000, "currency": "USD"}),
        )
        .await;
    switchboard.accept(Input::Need, &pantry_need()).await;

    // The money-only task needs nothing but money: it is held at once, from
    // the only pledge that may fund it.
    let rent = next_entry(&mut money, EntryKind::Held, "t-rent").await;
    assert_eq!(rent.total_cents(), 40000);
    assert_eq!(rent.movements.len(), 1);
    assert_eq!(rent.movements[0].pledge, "p-housing");
    assert_eq!(rent.collective.as_deref(), Some("c-pantry"));

    // A task with people is not held while its team has only been proposed.
    switchboard
        .accept(Input::Volunteer, &volunteer("v-dee", json!({"design": 3})))
        .await;
    // Dispatch delivered the proposal: the team is proposed, not accepted.
    let (_, proposal) = dee
        .next_where(|_, body| body["kind"] == "proposal" && body["task"] == "t-print")
        .await;
    let before_accepting = folded(&switchboard).await;
    assert_eq!(before_accepting.committed("t-print"), Cents(0));

    // Disbursing what is not held is refused, naming the task.
    let reply = switchboard
        .send(
            Input::Disburse,
            &json!({"id": "pay-print", "task": "t-print", "reference": "invoice 7"}),
        )
        .await;
    let error = reply.error.unwrap();
    assert_eq!(error.code, ErrorCode::NotFound);
    assert_eq!(error.field.as_deref(), Some("task"));

    let accept = proposal["accept"].clone();
    switchboard.accept(Input::Reply, &accept).await;
    let print = next_entry(&mut money, EntryKind::Held, "t-print").await;
    assert_eq!(print.total_cents(), 15000);
    assert_eq!(print.movements[0].pledge, "p-general");

    // The plan keeps held money as the tasks' funding, never allocating it again.
    let deadline = tokio::time::Instant::now() + tests::EXPECT_WITHIN;
    loop {
        let plan = switchboard.plan().await;
        let funded: u64 = plan
            .funding
            .iter()
            .filter(|funding| funding.task == "t-rent" || funding.task == "t-print")
            .map(|funding| funding.amount_cents)
            .sum();
        let from_general: u64 = plan
            .funding
            .iter()
            .filter(|funding| funding.pledge == "p-general")
            .map(|funding| funding.amount_cents)
            .sum();
        assert!(from_general <= 30000, "p-general over-planned: {plan:?}");
        if funded == 55000 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "held funding never showed in {plan:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // Bad disbursals: each names its field and leaves the money alone.
    for (body, code, field) in [
        (
            json!({"id": "pay-1", "task": "t-rent", "reference": "  "}),
            ErrorCode::Invalid,
            "reference",
        ),
        (
            json!({"id": "pay 1", "task": "t-rent", "reference": "r"}),
            ErrorCode::Invalid,
            "id",
        ),
        (
            json!({"id": "pay-1", "task": "t-nowhere", "reference": "r"}),
            ErrorCode::NotFound,
            "task",
        ),
        (
            json!({"id": "pay-1", "task": "t-rent", "reference": "r", "collective": "c-other"}),
            ErrorCode::Unauthorized,
            "collective",
        ),
        (
            json!({"id": "pay-1", "reference": "r"}),
            ErrorCode::Invalid,
            "task",
        ),
    ] {
        let reply = switchboard.send(Input::Disburse, &body).await;
        let error = reply.error.unwrap_or_else(|| panic!("{body} was accepted"));
        assert_eq!(
            (error.code, error.field.as_deref()),
            (code, Some(field)),
            "{body}"
        );
    }
    assert_eq!(folded(&switchboard).await.committed("t-rent"), Cents(40000));

    // The collective confirms the rent was paid; the same request again is one movement.
    let pay = json!({"id": "pay-rent-nov", "task": "t-rent", "reference": "transfer 48213",
                     "collective": "c-pantry"});
    let first = switchboard.accept(Input::Disburse, &pay).await;
    let paid = next_entry(&mut money, EntryKind::Disbursed, "t-rent").await;
    assert_eq!(paid.reference.as_deref(), Some("transfer 48213"));
    assert_eq!(switchboard.accept(Input::Disburse, &pay).await, first);
    let reused = json!({"id": "pay-rent-nov", "task": "t-print", "reference": "other"});
    let error = switchboard
        .send(Input::Disburse, &reused)
        .await
        .error
        .unwrap();
    assert_eq!(
        (error.code, error.field.as_deref()),
        (ErrorCode::Conflict, Some("id"))
    );

    // The collective cancels the flyers: the money held for them goes back.
    switchboard
        .accept(Input::Withdraw, &json!({"kind": "task", "id": "t-print"}))
        .await;
    let released = next_entry(&mut money, EntryKind::Released, "t-print").await;
    assert_eq!(released.total_cents(), 15000);

    // The donor withdraws: only the unallocated part goes back.
    switchboard
        .accept(
            Input::Withdraw,
            &json!({"kind": "pledge", "id": "p-housing"}),
        )
        .await;
    switchboard
        .accept(
            Input::Withdraw,
            &json!({"kind": "pledge", "id": "p-general"}),
        )
        .await;
    let returned = next_entry(&mut money, EntryKind::Withdrawn, "p-general").await;
    assert_eq!(returned.total_cents(), 30000);

    let ledger = folded(&switchboard).await;
    let housing = ledger.pledge("p-housing").unwrap();
    assert_eq!(housing.disbursed_total(), Cents(40000));
    assert_eq!(housing.returned, Cents(0), "nothing was left to withdraw");
    let general = ledger.pledge("p-general").unwrap();
    assert_eq!(general.available, Cents(0));
    assert_eq!(general.returned, Cents(30000));
    assert_eq!(ledger.task("t-print").unwrap().held_total(), Cents(0));
    assert_eq!(
        ledger
            .journal()
            .iter()
            .filter(|entry| entry.kind == EntryKind::Disbursed)
            .count(),
        1
    );
    // The donor's name is nowhere on the money stream.
    let raw = switchboard
        .stream_messages(&switchboard.subjects.ledger_stream())
        .await;
    assert!(!format!("{raw:?}").contains("Ana from the block club"));

    // A lost state directory is rebuilt from the streams: nothing is
    // written again, and a repeated disbursal gets its first reply.
    let written = ledger.journal().len();
    switchboard.stop().await;
    std::fs::remove_dir_all(state.path().join("ledger")).unwrap();
    let switchboard = Switchboard::start(&nats, state.path(), Options::default()).await;
    assert_eq!(switchboard.accept(Input::Disburse, &pay).await, first);
    // One more change the ledger reacts to, then nothing new but its entry.
    switchboard
        .accept(Input::Pledge, &json!({"id": "p-late", "amount_cents": 500}))
        .await;
    let mut money = Inbox::open(&switchboard.client, switchboard.subjects.ledger_all()).await;
    let _ = next_entry(&mut money, EntryKind::Pledged, "p-late").await;
    let after = folded(&switchboard).await;
    assert_eq!(after.journal().len(), written + 1);
    switchboard.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ledgers_racing_hold_each_task_once_and_never_over_commit_a_pledge() {
    let nats = NatsServer::start().await;
    let state = tempfile::tempdir().unwrap();
    let switchboard = Switchboard::start(&nats, state.path(), Options::default()).await;
    // A second ledger on the same streams, deciding from the same plan.
    let shutdown = tokio_util::sync::CancellationToken::new();
    let client = nats.client("sb-ledger-2").await;
    let context = plumbing::Context::new(
        client,
        switchboard.subjects.clone(),
        plumbing::Clock::system(),
    );
    let config = ledger::LedgerConfig {
        state_directory: Some(state.path().join("ledger-2")),
        ..ledger::LedgerConfig::default()
    };
    let second = tokio::spawn(ledger::run(context, config, shutdown.clone()));

    let mut money = Inbox::open(&switchboard.client, switchboard.subjects.ledger_all()).await;
    switchboard
        .accept(
            Input::Pledge,
            &json!({"id": "p-one", "amount_cents": 30000}),
        )
        .await;
    let tasks: Vec<Value> = (0..5)
        .map(|index| {
            json!({"id": format!("t-bill-{index}"), "title": "A bill", "hours": 0.0, "slots": 0,
                   "earliest_start": hours_from_now(0), "deadline": hours_from_now(48),
                   "impact": 10.0 + f64::from(index), "money_cents": 10000})
        })
        .collect();
    switchboard
        .accept(
            Input::Need,
            &json!({"id": "n-bills", "collective": "c-1", "title": "Bills", "tasks": tasks}),
        )
        .await;
    // The pledge pays three bills of five; wait for three holds.
    for _ in 0..3 {
        money
            .next_where(|subject, _| subject.starts_with("sb.ledger.held."))
            .await;
    }
    // Both ledgers decide again on the next change: still three holds.
    switchboard
        .accept(Input::Pledge, &json!({"id": "p-two", "amount_cents": 500}))
        .await;
    next_entry(&mut money, EntryKind::Pledged, "p-two").await;
    let ledger = folded(&switchboard).await;
    let holds = ledger
        .journal()
        .iter()
        .filter(|entry| entry.kind == EntryKind::Held)
        .count();
    assert_eq!(holds, 3);
    let accounts = ledger.pledge("p-one").unwrap();
    assert_eq!(accounts.held_total(), Cents(30000));
    assert_eq!(accounts.available, Cents(0));
    shutdown.cancel();
    second.await.unwrap().unwrap();
    switchboard.stop().await;
}

/// A GET over HTTP as `principal`: status and body.
async fn http_get(base: &str, principal: &Principal, path: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(gateway_token(principal))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn http_post(base: &str, principal: &Principal, path: &str, body: &Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .bearer_auth(gateway_token(principal))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Polls a JSON view until `wanted` holds.
async fn view_until(
    base: &str,
    principal: &Principal,
    path: &str,
    wanted: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + tests::EXPECT_WITHIN;
    loop {
        let (status, text) = http_get(base, principal, path).await;
        assert_eq!(status, 200, "GET {path}: {text}");
        let body: Value = serde_json::from_str(&text).unwrap();
        if wanted(&body["view"]) {
            return body["view"].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} never showed it: {body}"
        );
        let version = body["version"].as_u64().unwrap_or(0);
        // Long poll: answers at the next change of the read model.
        let separator = if path.contains('?') { '&' } else { '?' };
        let _ = http_get(
            base,
            principal,
            &format!("{path}{separator}newer_than={version}"),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn donors_collectives_and_coordinators_each_see_their_part_of_the_money() {
    let nats = NatsServer::start().await;
    let state = tempfile::tempdir().unwrap();
    let options = Options {
        gateway: true,
        ..Options::default()
    };
    let switchboard = Switchboard::start(&nats, state.path(), options).await;
    let base = format!("http://{}", switchboard.http.unwrap());
    let mut money = Inbox::open(&switchboard.client, switchboard.subjects.ledger_all()).await;
    let coordinator = Principal::Coordinator;
    let donor = Principal::Donor("p-housing".to_owned());
    let pantry = Principal::Collective("c-pantry".to_owned());
    let other = Principal::Collective("c-other".to_owned());

    // The donor pledges through their own link; another pledge is stranded
    // by a restriction to a collective that asks for nothing.
    let (status, reply) = http_post(
        &base,
        &donor,
        "/api/pledge",
        &json!({"id": "p-housing", "amount_cents": 40000, "tags": ["housing"], "donor": "Ana"}),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    let (status, _) = http_post(
        &base,
        &donor,
        "/api/pledge",
        &json!({"id": "p-someone-else", "amount_cents": 1}),
    )
    .await;
    assert_eq!(status, 403, "a donor pledges only as their own pledge");
    switchboard
        .accept(
            Input::Pledge,
            &json!({"id": "p-stranded", "amount_cents": 7000, "collectives": ["c-nobody"]}),
        )
        .await;
    switchboard.accept(Input::Need, &pantry_need()).await;
    next_entry(&mut money, EntryKind::Held, "t-rent").await;

    // The donor sees where the money went; another donor's pledge is not theirs.
    let view = view_until(&base, &donor, "/api/view/donor", |view| {
        view["held"].as_array().is_some_and(|held| !held.is_empty())
    })
    .await;
    assert_eq!(view["held"][0]["task"], "t-rent");
    assert_eq!(view["held"][0]["amount_cents"], 40000);
    assert_eq!(view["unlocked"], json!(["t-rent"]));
    let (status, _) = http_get(&base, &donor, "/api/view/donor?id=p-stranded").await;
    assert_eq!(status, 403);

    // The collective sees the rent funded and the flyers waiting for money.
    let funding = view_until(&base, &pantry, "/api/view/funding", |view| {
        view["funded"]
            .as_array()
            .is_some_and(|funded| !funded.is_empty())
    })
    .await;
    assert_eq!(funding["funded"][0]["task"], "t-rent");
    assert_eq!(funding["funded"][0]["state"], "held");
    assert_eq!(funding["waiting"][0]["task"], "t-print");
    assert_eq!(funding["waiting"][0]["waiting_cents"], 15000);

    // Another collective may not confirm the pantry's payment; the pantry may.
    let pay = json!({"id": "pay-rent", "task": "t-rent", "reference": "transfer 9"});
    let (status, _) = http_post(&base, &other, "/api/disburse", &pay).await;
    assert_eq!(status, 403);
    let (status, reply) = http_post(&base, &pantry, "/api/disburse", &pay).await;
    assert_eq!(status, 200, "{reply}");

    // Coordinators: the pool, the stranded pledge, the transparency report.
    let pool = view_until(&base, &coordinator, "/api/view/pool", |view| {
        view["transparency"][0]["disbursed_cents"] == 40000
    })
    .await;
    assert_eq!(pool["pools"][0]["currency"], "USD");
    assert_eq!(pool["pools"][0]["pledged_cents"], 47000);
    assert_eq!(pool["pools"][0]["disbursed_cents"], 40000);
    assert_eq!(pool["stranded"][0]["pledge"], "p-stranded");
    assert_eq!(pool["stranded"][0]["available_cents"], 7000);
    assert_eq!(pool["transparency"][0]["collective"], "c-pantry");
    let (status, _) = http_get(&base, &pantry, "/api/view/pool").await;
    assert_eq!(status, 403);

    // CSV: coordinators every movement, the donor only their pledge's, and
    // the donor's name in none.
    let (status, all) = http_get(&base, &coordinator, "/api/ledger.csv").await;
    assert_eq!(status, 200);
    assert!(all.starts_with(money_csv_header()));
    assert!(all.contains("p-stranded") && all.contains("transfer 9"));
    let (_, mine) = http_get(&base, &donor, "/api/ledger.csv").await;
    assert!(mine.contains("p-housing") && !mine.contains("p-stranded"));
    let (_, theirs) = http_get(&base, &pantry, "/api/ledger.csv").await;
    assert!(theirs.contains("t-rent") && !theirs.contains("p-stranded,7000"));
    assert!(!all.contains("Ana") && !mine.contains("Ana"));
    let (status, _) = http_get(
        &base,
        &Principal::Volunteer("v-1".to_owned()),
        "/api/ledger.csv",
    )
    .await;
    assert_eq!(status, 403);

    // The donor's page, drawn on the server.
    let (status, page) = http_get(&base, &donor, "/donor").await;
    assert_eq!(status, 200);
    assert!(page.contains("Rent for the pantry") && page.contains("400.00 USD"));
    switchboard.stop().await;
}

fn money_csv_header() -> &'static str {
    gateway::money::CSV_HEADER
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn money_of_a_task_not_done_by_its_deadline_goes_back_and_an_expired_pledge_returns_to_its_donor(
) {
    let nats = NatsServer::start().await;
    let state = tempfile::tempdir().unwrap();
    // One real second is one hour of switchboard time.
    let clock = plumbing::Clock::starting_at(chrono::Utc::now(), 3600.0);
    let at = |hours: i64| {
        (clock.now() + chrono::Duration::hours(hours))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let options = Options {
        clock: clock.clone(),
        release_grace: chrono::Duration::hours(1),
        ..Options::default()
    };
    let switchboard = Switchboard::start(&nats, state.path(), options).await;
    let mut money = Inbox::open(&switchboard.client, switchboard.subjects.ledger_all()).await;
    switchboard
        .accept(
            Input::Pledge,
            &json!({"id": "p-bail", "amount_cents": 9000}),
        )
        .await;
    switchboard
        .accept(
            Input::Pledge,
            &json!({"id": "p-brief", "amount_cents": 5000, "collectives": ["c-nobody"],
                    "expires_at": at(2)}),
        )
        .await;
    switchboard
        .accept(
            Input::Need,
            &json!({"id": "n-bail", "collective": "c-fund", "title": "Bail", "tasks": [
                {"id": "t-bail", "title": "Bail for a neighbour", "hours": 0.0, "slots": 0,
                 "earliest_start": at(0), "deadline": at(3), "impact": 50.0, "money_cents": 9000}]}),
        )
        .await;
    next_entry(&mut money, EntryKind::Held, "t-bail").await;
    // The pledge nobody could use expired: all of it goes back to its donor.
    let returned = next_entry(&mut money, EntryKind::Withdrawn, "p-brief").await;
    assert_eq!(returned.total_cents(), 5000);
    assert_eq!(returned.reason.as_deref(), Some(ledger::REASON_EXPIRED));
    // Nobody marks it done: an hour after its deadline the money goes back.
    let released = next_entry(&mut money, EntryKind::Released, "t-bail").await;
    assert_eq!(released.total_cents(), 9000);
    assert_eq!(released.reason.as_deref(), Some(ledger::REASON_DEADLINE));
    let ledger = folded(&switchboard).await;
    assert_eq!(ledger.available("p-bail"), Cents(9000));
    assert_eq!(ledger.committed("t-bail"), Cents(0));
    switchboard.stop().await;
}

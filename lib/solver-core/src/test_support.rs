//! Small instances written inline for the data-driven unit tests.

use serde_json::{json, Value};

use crate::problem::Problem;

/// A volunteer available for three weeks from `now` with `hours_per_week`.
pub fn volunteer(id: &str, skills: Value, hours_per_week: f64) -> Value {
    json!({"id": id, "skills": skills, "hours_per_week": hours_per_week,
           "available_from": "2026-11-22T00:00:00Z", "available_until": "2026-12-13T00:00:00Z",
           "region": "detroit", "trust": 0})
}

/// A task open from `now` for `days`, `slots` people for `hours` each.
pub fn task(id: &str, skills: Value, hours: f64, slots: u8, days: u32, impact: f64) -> Value {
    let deadline = chrono::DateTime::parse_from_rfc3339("2026-11-22T00:00:00Z")
        .map(|now| now + chrono::Duration::days(i64::from(days)))
        .unwrap()
        .to_rfc3339();
    json!({"id": id, "need": "n1", "collective": "c1", "title": format!("task {id}"),
           "skills": skills, "hours": hours, "slots": slots,
           "earliest_start": "2026-11-22T00:00:00Z", "deadline": deadline,
           "region": null, "sensitivity": 0, "depends_on": [], "money_cents": 0,
           "impact": impact, "tags": ["housing"]})
}

pub fn instance(volunteers: Vec<Value>, tasks: Vec<Value>, pledges: Vec<Value>) -> Value {
    json!({"format": "switchboard-instance/1", "now": "2026-11-22T00:00:00Z",
           "volunteers": volunteers, "tasks": tasks, "pledges": pledges, "done": [], "pinned": []})
}

pub fn problem(instance: &Value) -> Problem {
    let instance: proto::instance::Instance = serde_json::from_value(instance.clone()).unwrap();
    Problem::from_world(&instance.validate().unwrap()).unwrap()
}

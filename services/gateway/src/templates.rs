//! The pages' HTML, written with maud: checked and compiled with the
//! gateway, nothing read from disk at run time, and every value spliced in
//! escaped by the engine (`(value)`), so a title someone typed is text,
//! never markup. Only the engine's `PreEscaped` could bypass that, and it is
//! not used here.
//!
//! The five role pages are shells: they hold no data, so they are the same
//! for everyone, and `app.js` fills them from `/api/view/*`. Their `id`s,
//! `name`s and `data-*` attributes are what the script and the browser tests
//! find, so they are part of the pages' contract. The donor's page is the
//! exception: drawn on the server with no script at all.

use maud::{html, Markup, DOCTYPE};

use crate::money::{DonorView, TaskMoney};

/// A role's page: the shared head (the one stylesheet and the one script,
/// no inline script or style, as the Content-Security-Policy demands), the
/// header with the title and who is signed in, and `content` as the main.
fn shell(
    page: &str,
    title: &str,
    sign_out: bool,
    main_class: Option<&str>,
    content: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                link rel="icon" href="data:,";
                link rel="stylesheet" href="/assets/app.css";
                script src="/assets/app.js" defer {}
                title { (title) }
            }
            body data-page=(page) {
                header class="top" {
                    h1 { (title) }
                    @if sign_out {
                        a href="/signout" { "sign out" }
                    }
                    span class="who" id="who" {}
                }
                main class=[main_class] { (content) }
            }
        }
    }
}

/// The fields of a volunteer's offer, on the landing page and their own.
fn offer_fields(skills_required: bool) -> Markup {
    html! {
        label { "Your name (only coordinators see it)" input name="name" data-field="name" autocomplete="name"; }
        label { "How to reach you (only coordinators see it)" input name="contact" data-field="contact" autocomplete="email"; }
        label { "Skills, e.g. " code { "driving:3, legal:2" } input name="skills" data-field="skills" required[skills_required]; }
        label { "Hours per week" input name="hours_per_week" data-field="hours_per_week" inputmode="decimal" value="6"; }
        label { "Available from" input name="available_from" data-field="available_from" type="date"; }
        label { "Available until" input name="available_until" data-field="available_until" type="date"; }
        label { "Region (empty: remote only)" input name="region" data-field="region"; }
    }
}

/// `/`: what the switchboard is, and the form to offer time without a link.
pub fn landing() -> Markup {
    shell(
        "landing",
        "Switchboard",
        false,
        None,
        html! {
            section {
                h2 { "Welcome" }
                p { "The switchboard puts people's weeks where they matter most: whole teams for collectives' tasks, work you can finish before you move on." }
                p { "Coordinators and collectives sign in with the link a coordinator gave them. Volunteers can use their link, or offer their time below and get their own link at once." }
                p class="muted" {
                    "Signed in already? Go to the "
                    a href="/coordinator" { "coordinators'" } ", "
                    a href="/collective" { "collective's" } " or "
                    a href="/volunteer" { "volunteer's" } " page."
                }
            }
            section id="register" {
                h2 { "Offer your time" }
                form id="offer-form" class="grid" novalidate {
                    (offer_fields(true))
                    button type="submit" { "Offer my time" }
                }
                p id="offer-result" class="notice" hidden {}
            }
        },
    )
}

/// `/coordinator`: the dashboard.
pub fn coordinator() -> Markup {
    let chart = |id: &str, source: &str, alt: &str, caption: &str| {
        html! {
            figure {
                img class="chart" id=(id) alt=(alt) src=(source);
                figcaption { (caption) }
            }
        }
    };
    shell(
        "coordinator",
        "Switchboard: coordinators",
        true,
        Some("columns"),
        html! {
            section class="wide" {
                h2 { "Today" }
                div class="stats" id="stats" {}
            }
            section class="wide" {
                h2 { "Charts" }
                div class="charts" {
                    (chart("chart-impact", "/api/charts/impact.svg", "Impact delivered over time", "Impact delivered over time"))
                    (chart("chart-hours", "/api/charts/hours.svg", "Use of volunteer hours", "Use of volunteer hours"))
                    (chart("chart-unmet", "/api/charts/unmet.svg", "Unmet demand by skill", "Unmet demand by skill (person-hours)"))
                }
            }
            section {
                h2 { "Live match stream" }
                p class="muted" { "Replayed from the start of the day, newest first." }
                div class="scroll" { ul class="list" id="stream" {} }
            }
            section {
                h2 { "Proposals and assignments" }
                div class="scroll" { ul class="list" id="assignments" {} }
            }
            section class="wide" {
                h2 { "Open needs" }
                div class="scroll" id="needs" {}
            }
            section {
                h2 { "Whom to recruit next" }
                p class="muted" { "Skills and places where open slots outnumber idle volunteers who could fill them." }
                div class="scroll" id="shortages" {}
            }
            section {
                h2 { "Idle volunteers" }
                div class="scroll" id="idle" {}
            }
            section {
                h2 { "Steer" }
                form id="pin-form" class="grid" novalidate {
                    label { "Volunteer" input name="volunteer" data-field="volunteer"; }
                    label { "Task" input name="task" data-field="task"; }
                    div class="actions" {
                        button type="submit" name="action" value="pin" { "Pin" }
                        button type="submit" name="action" value="veto" class="danger" { "Veto" }
                    }
                }
                form id="weight-form" class="grid" novalidate {
                    label { "Collective (empty: all)" input name="collective" data-field="collective"; }
                    label { "Tag (empty: all)" input name="tag" data-field="tag"; }
                    label { "Impact factor (0 < f ≤ 10)" input name="factor" data-field="factor" inputmode="decimal" value="2"; }
                    button type="submit" { "Set weight" }
                }
                p id="steer-result" class="notice" hidden {}
                h3 { "In force" }
                ul class="list" id="steering" {}
            }
            section {
                h2 { "Sign-in links" }
                form id="link-form" class="grid" novalidate {
                    label {
                        "For"
                        select name="role" data-field="role" {
                            option value="collective" { "a collective" }
                            option value="volunteer" { "a volunteer" }
                        }
                    }
                    label { "Id" input name="id" data-field="id"; }
                    button type="submit" { "Make link" }
                }
                p id="link-result" class="notice" hidden {}
            }
        },
    )
}

/// `/collective`: a collective's needs and the form to post one.
pub fn collective() -> Markup {
    shell(
        "collective",
        "Switchboard: your collective",
        true,
        None,
        html! {
            section {
                h2 { "Your needs" }
                div id="needs" { p class="muted" { "Loading…" } }
            }
            section {
                h2 { "Post a need" }
                p class="muted" { "Posting again with the same need id updates it; tasks left out are cancelled." }
                form id="need-form" novalidate {
                    div class="grid" {
                        label { "Need id" input name="id" data-field="id" placeholder="n-friday-clinic"; }
                        label { "Title" input name="title" data-field="title" placeholder="Friday clinic"; }
                    }
                    div id="tasks" {}
                    div class="actions" {
                        button type="button" class="secondary" id="add-task" { "Add a task" }
                        button type="submit" { "Post the need" }
                    }
                }
                p id="need-result" class="notice" hidden {}
            }
            section {
                h2 { "Done" }
                ul class="list" id="done" {}
            }
        },
    )
}

/// `/volunteer`: a volunteer's proposals, weeks, work done and offer.
pub fn volunteer() -> Markup {
    shell(
        "volunteer",
        "Switchboard: your weeks",
        true,
        None,
        html! {
            section {
                h2 { "Proposals and assignments" }
                ul class="list" id="assignments" { li class="muted" { "Loading…" } }
            }
            section {
                h2 { "My three weeks" }
                div class="weeks" id="weeks" {}
            }
            section {
                h2 { "What I helped finish" }
                div id="delivered" { p class="muted" { "Loading…" } }
            }
            section {
                h2 { "My offer" }
                p class="muted" id="offer-summary" {}
                form id="offer-form" class="grid" novalidate {
                    (offer_fields(false))
                    button type="submit" { "Save my offer" }
                }
                p id="offer-result" class="notice" hidden {}
            }
            section {
                h2 { "Forget me" }
                p {
                    "Deletes the key your name and contact are locked with: no copy of the switchboard's log can show them again. "
                    "What you did stays, without your name. To stop getting work too, withdraw your offer."
                }
                button type="button" class="danger" id="forget-me" { "Forget my name and contact" }
                p id="forget-result" class="notice" hidden {}
            }
        },
    )
}

/// `/vetter`: a vetter sets a volunteer's trust tier.
pub fn vetter() -> Markup {
    shell(
        "vetter",
        "Switchboard: vetting",
        true,
        None,
        html! {
            section {
                h2 { "Vouch for a volunteer" }
                p class="muted" { "Sensitive work goes only to people a vetter vouches for. Ask the volunteer for the id on their page. Setting a lower tier revokes; your name is kept with every change." }
                form id="vet-form" class="grid" novalidate {
                    label { "Volunteer id" input name="volunteer" data-field="volunteer" placeholder="v-1a2b3c"; }
                    label {
                        "Trust tier"
                        select name="trust" data-field="trust" {
                            option value="0" { "0: open work only" }
                            option value="1" { "1: vetted" }
                            option value="2" { "2: core" }
                        }
                    }
                    label { "Note for the other vetters (never shown to the volunteer)" input name="note" data-field="note"; }
                    div class="actions" { button type="submit" { "Set the tier" } }
                }
                p id="vet-result" class="notice" hidden {}
            }
        },
    )
}

/// The donor's page around `content`: no script at all, only the stylesheet.
fn donor_document(content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "Your pledge" }
                link rel="stylesheet" href="/assets/app.css";
            }
            body { main { (content) } }
        }
    }
}

/// `/donor` for anyone but a signed-in donor.
pub fn donor_sign_in() -> Markup {
    donor_document(html! {
        h1 { "Your pledge" }
        p { "Open the link you were given when you pledged to see where your money went." }
    })
}

/// Whole cents as money: `12345` is `123.45`.
fn amount(cents: u64, currency: &str) -> String {
    format!("{}.{:02} {currency}", cents / 100, cents % 100)
}

/// `/donor` for a signed-in donor: where their pledge went.
/// After `POST /donor/forget`: what became of the donor's name.
pub fn donor_forgotten(pledge: &str, reply: &proto::wire::Reply) -> Markup {
    donor_document(html! {
        h1 { "Your pledge " (pledge) }
        @if reply.ok {
            p { "Your name is forgotten: the key it was locked with is deleted. Your pledge and where its money went stay, without your name." }
        } @else {
            p { "Your name could not be forgotten just now: "
                (reply.error.as_ref().map_or("no reason given", |error| error.message.as_str()))
                ". Nothing changed; try again." }
        }
        p { a href="/donor" { "Back to your pledge" } }
    })
}

pub fn donor(view: &DonorView) -> Markup {
    let currency = view.currency.as_str();
    let task_rows = |money: &[TaskMoney]| {
        html! {
            table {
                tr { th { "task" } th { "collective" } th { "amount" } }
                @for row in money {
                    tr {
                        td { (row.title.as_deref().unwrap_or(&row.task)) }
                        td { (row.collective.as_deref().unwrap_or("")) }
                        td { (amount(row.amount_cents, currency)) }
                    }
                }
            }
        }
    };
    donor_document(html! {
        h1 { "Your pledge " (view.pledge) }
        p {
            "Pledged " (amount(view.pledged_cents, currency))
            "; available " (amount(view.available_cents, currency))
            "; given back " (amount(view.returned_cents, currency)) "."
        }
        h2 { "Held for work that will happen" }
        (task_rows(&view.held))
        h2 { "Paid out" }
        (task_rows(&view.disbursed))
        h2 { "Every movement" }
        table {
            tr { th { "when" } th { "what" } th { "task" } th { "amount" } th { "reference or reason" } }
            @for row in &view.movements {
                tr {
                    td { (row.at.format("%Y-%m-%d %H:%M").to_string()) }
                    td { (row.kind) }
                    td { (row.task.as_deref().unwrap_or("")) }
                    td { (amount(row.amount_cents, &row.currency)) }
                    td { (row.reference.as_deref().or(row.reason.as_deref()).unwrap_or("")) }
                }
            }
        }
        p {
            a href="/api/ledger.csv" { "Download as CSV" }
            " · "
            a href="/signout" { "Sign out" }
        }
        @if let Some(donor) = &view.donor {
            h2 { "Forget my name" }
            p { "Your name (" (donor) ") is locked with a key of its own. Deleting the key means no copy of the switchboard's log can show it again; your pledge and its money stay." }
        }
        form method="post" action="/donor/forget" {
            button type="submit" class="danger" { "Forget my name" }
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::money::MovementRow;

    #[test]
    fn every_role_page_loads_only_the_one_script_and_stylesheet_and_nothing_inline() {
        for page in [
            landing(),
            coordinator(),
            collective(),
            volunteer(),
            vetter(),
        ] {
            let page = page.into_string();
            assert!(
                page.starts_with("<!DOCTYPE html><html lang=\"en\">"),
                "{page}"
            );
            assert_eq!(page.matches("<script").count(), 1, "{page}");
            assert!(
                page.contains("<script src=\"/assets/app.js\" defer></script>"),
                "{page}"
            );
            assert!(
                page.contains("<link rel=\"stylesheet\" href=\"/assets/app.css\">"),
                "{page}"
            );
            assert!(
                !page.contains("<style") && !page.contains(" style="),
                "{page}"
            );
            let pieces: Vec<&str> = page.split("=\"").collect();
            for before in &pieces[..pieces.len() - 1] {
                let attribute = before.rsplit([' ', '<']).next().unwrap();
                assert!(
                    !attribute.starts_with("on"),
                    "inline handler {attribute}: {page}"
                );
            }
        }
    }

    #[test]
    fn the_shells_carry_what_the_script_finds() {
        let coordinator = coordinator().into_string();
        for wanted in [
            "data-page=\"coordinator\"",
            "<main class=\"columns\">",
            "id=\"who\"",
            "<form id=\"pin-form\" class=\"grid\" novalidate>",
            "<p id=\"steer-result\" class=\"notice\" hidden></p>",
            "Impact factor (0 &lt; f ≤ 10)",
            "src=\"/api/charts/unmet.svg\"",
        ] {
            assert!(
                coordinator.contains(wanted),
                "{wanted} missing: {coordinator}"
            );
        }
        let landing = landing().into_string();
        assert!(
            landing.contains("data-field=\"skills\" required>"),
            "{landing}"
        );
        assert!(!landing.contains("/signout"), "{landing}");
        let volunteer = volunteer().into_string();
        assert!(volunteer.contains("data-field=\"skills\">"), "{volunteer}");
        assert!(volunteer.contains("<main>"), "{volunteer}");
    }

    #[test]
    fn what_people_typed_on_the_donors_page_is_escaped() {
        let hostile = "<script>alert(\"x\")</script>";
        let escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;";
        let money = TaskMoney {
            task: "t-1".into(),
            title: Some(hostile.into()),
            collective: Some(hostile.into()),
            amount_cents: 1250,
        };
        let view = DonorView {
            pledge: "p-1".into(),
            donor: Some(hostile.into()),
            currency: "EUR".into(),
            pledged_cents: 5000,
            available_cents: 3750,
            held: vec![money.clone()],
            disbursed: vec![],
            returned_cents: 0,
            unlocked: vec!["t-1".into()],
            withdrawn: false,
            restrictions: None,
            movements: vec![MovementRow {
                sequence: 1,
                at: chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 11, 22, 9, 30, 0)
                    .unwrap(),
                entry: "e-1".into(),
                kind: "hold",
                task: Some("t-1".into()),
                collective: Some(hostile.into()),
                pledge: "p-1".into(),
                amount_cents: 1250,
                currency: "EUR".into(),
                reason: None,
                reference: Some(hostile.into()),
            }],
        };
        let page = donor(&view).into_string();
        assert!(!page.contains("<script"), "{page}");
        assert!(page.contains(&format!("<td>{escaped}</td>")), "{page}");
        assert!(page.contains("<h1>Your pledge p-1</h1>"), "{page}");
        assert!(
            page.contains("Pledged 50.00 EUR; available 37.50 EUR; given back 0.00 EUR."),
            "{page}"
        );
        assert!(
            page.contains("<td>2026-11-22 09:30</td><td>hold</td><td>t-1</td><td>12.50 EUR</td>"),
            "{page}"
        );
        let sign_in = donor_sign_in().into_string();
        assert!(!sign_in.contains("<script"), "{sign_in}");
    }
}

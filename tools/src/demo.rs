//! `switchboard up --demo`: a realistic week in a city's movement, posted
//! over NATS exactly as real clients would, with volunteers who answer.
//!
//! A dozen collectives post needs with teams, dependencies and money; donors
//! pledge, some with restrictions; volunteers arrive over time (most give
//! about three weeks); simulated volunteers accept most proposals and decline
//! some. Everything goes through the public subjects, so the demo is also a
//! living example of the wire contract.

use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use proto::subjects::Input;
use proto::wire::{
    NeedPost, PledgeOffer, Reply, TaskSpec, VolunteerMessage, VolunteerOffer, VolunteerReply,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_util::sync::CancellationToken;

/// Real seconds between two volunteers arriving.
const ARRIVAL_INTERVAL_MS: u64 = 1_200;
/// Volunteers present from the start, and arriving later.
const VOLUNTEERS_AT_START: usize = 10;
const VOLUNTEERS_LATER: usize = 40;
/// Share of proposals the simulated volunteers accept.
const ACCEPT_SHARE: f64 = 0.85;
/// How long a simulated volunteer takes to answer, in real milliseconds.
const ANSWER_DELAY_MS: (u64, u64) = (800, 3_000);
/// Attempts at one request while the services are still starting.
const REQUEST_ATTEMPTS_MAX: u32 = 50;

struct Collective {
    id: &'static str,
    needs: &'static [NeedTemplate],
}

struct NeedTemplate {
    id: &'static str,
    title: &'static str,
    tags: &'static [&'static str],
    tasks: &'static [TaskTemplate],
}

/// A task: (id, title, skills, hours, slots, start day, deadline day, in person, sensitivity, depends on, money in dollars, impact).
struct TaskTemplate(
    &'static str,
    &'static str,
    &'static [(&'static str, u8)],
    f64,
    u8,
    f64,
    f64,
    bool,
    u8,
    &'static [&'static str],
    u64,
    f64,
);

const COLLECTIVES: &[Collective] = &[
    Collective {
        id: "eastside-tenants-union",
        needs: &[NeedTemplate {
            id: "n-tenant-clinic",
            title: "Friday tenant clinic",
            tags: &["housing"],
            tasks: &[
                TaskTemplate(
                    "t-clinic-intake",
                    "Spanish intake at the tenant clinic",
                    &[("translation-es", 3), ("legal", 2)],
                    4.0,
                    2,
                    0.0,
                    5.0,
                    true,
                    0,
                    &[],
                    0,
                    24.0,
                ),
                TaskTemplate(
                    "t-clinic-flyers",
                    "Print 500 clinic flyers",
                    &[],
                    0.0,
                    0,
                    0.0,
                    4.0,
                    false,
                    0,
                    &[],
                    80,
                    6.0,
                ),
                TaskTemplate(
                    "t-clinic-followup",
                    "Follow-up calls to clinic visitors",
                    &[("phonebanking", 1)],
                    3.0,
                    2,
                    5.0,
                    12.0,
                    false,
                    0,
                    &["t-clinic-intake"],
                    0,
                    10.0,
                ),
            ],
        }],
    },
    Collective {
        id: "southwest-food-pantry",
        needs: &[NeedTemplate {
            id: "n-pantry-december",
            title: "Keep the pantry open in December",
            tags: &["food", "mutual-aid"],
            tasks: &[
                TaskTemplate(
                    "t-pantry-rent",
                    "December rent for the pantry",
                    &[],
                    0.0,
                    0,
                    0.0,
                    9.0,
                    false,
                    0,
                    &[],
                    400,
                    30.0,
                ),
                TaskTemplate(
                    "t-pantry-saturday",
                    "Saturday distribution crew",
                    &[("event-logistics", 1)],
                    5.0,
                    4,
                    0.0,
                    6.0,
                    true,
                    0,
                    &["t-pantry-rent"],
                    0,
                    28.0,
                ),
                TaskTemplate(
                    "t-pantry-driving",
                    "Deliveries to homebound neighbours",
                    &[("driving", 2)],
                    4.0,
                    2,
                    0.0,
                    7.0,
                    true,
                    0,
                    &[],
                    0,
                    18.0,
                ),
            ],
        }],
    },
    Collective {
        id: "detroit-bail-fund",
        needs: &[NeedTemplate {
            id: "n-court-watch",
            title: "Court support this month",
            tags: &["legal-defense"],
            tasks: &[
                TaskTemplate(
                    "t-court-support",
                    "Court support at arraignments",
                    &[("legal", 2)],
                    6.0,
                    2,
                    1.0,
                    14.0,
                    true,
                    1,
                    &[],
                    0,
                    26.0,
                ),
                TaskTemplate(
                    "t-bail-pool",
                    "Bail for two neighbours",
                    &[],
                    0.0,
                    0,
                    0.0,
                    3.0,
                    false,
                    0,
                    &[],
                    1500,
                    40.0,
                ),
            ],
        }],
    },
    Collective {
        id: "riverside-mutual-aid",
        needs: &[NeedTemplate {
            id: "n-winter-drive",
            title: "Winter coat drive",
            tags: &["mutual-aid"],
            tasks: &[
                TaskTemplate(
                    "t-coat-sorting",
                    "Sort and size donated coats",
                    &[],
                    3.0,
                    3,
                    0.0,
                    10.0,
                    true,
                    0,
                    &[],
                    0,
                    12.0,
                ),
                TaskTemplate(
                    "t-coat-socials",
                    "Posts and graphics for the drive",
                    &[("social-media", 2), ("graphic-design", 1)],
                    4.0,
                    1,
                    0.0,
                    6.0,
                    false,
                    0,
                    &[],
                    0,
                    8.0,
                ),
            ],
        }],
    },
    Collective {
        id: "hamtramck-legal-clinic",
        needs: &[NeedTemplate {
            id: "n-know-your-rights",
            title: "Know-your-rights workshops",
            tags: &["legal-defense", "education"],
            tasks: &[
                TaskTemplate(
                    "t-kyr-curriculum",
                    "Write the workshop handout",
                    &[("writing", 3), ("legal", 2)],
                    6.0,
                    1,
                    0.0,
                    7.0,
                    false,
                    0,
                    &[],
                    0,
                    14.0,
                ),
                TaskTemplate(
                    "t-kyr-arabic",
                    "Translate the handout to Arabic",
                    &[("translation-ar", 3)],
                    4.0,
                    1,
                    2.0,
                    10.0,
                    false,
                    0,
                    &["t-kyr-curriculum"],
                    0,
                    12.0,
                ),
                TaskTemplate(
                    "t-kyr-workshop",
                    "Facilitate two workshops",
                    &[("facilitation", 2)],
                    5.0,
                    2,
                    7.0,
                    16.0,
                    true,
                    0,
                    &["t-kyr-curriculum"],
                    0,
                    20.0,
                ),
            ],
        }],
    },
    Collective {
        id: "warehouse-workers",
        needs: &[NeedTemplate {
            id: "n-shift-change",
            title: "Shift-change outreach",
            tags: &["labor"],
            tasks: &[
                TaskTemplate(
                    "t-shift-leaflet",
                    "Leaflet the 6am shift change",
                    &[("canvassing", 2)],
                    3.0,
                    4,
                    1.0,
                    8.0,
                    true,
                    0,
                    &[],
                    0,
                    22.0,
                ),
                TaskTemplate(
                    "t-shift-data",
                    "Map survey answers by department",
                    &[("data", 3)],
                    6.0,
                    1,
                    3.0,
                    14.0,
                    false,
                    1,
                    &["t-shift-leaflet"],
                    0,
                    15.0,
                ),
            ],
        }],
    },
    Collective {
        id: "corktown-community-kitchen",
        needs: &[NeedTemplate {
            id: "n-community-dinner",
            title: "Community dinner for 120",
            tags: &["food"],
            tasks: &[
                TaskTemplate(
                    "t-dinner-groceries",
                    "Groceries for the dinner",
                    &[],
                    0.0,
                    0,
                    0.0,
                    5.0,
                    false,
                    0,
                    &[],
                    250,
                    10.0,
                ),
                TaskTemplate(
                    "t-dinner-cooks",
                    "Cook for 120 people",
                    &[("cooking", 2)],
                    6.0,
                    3,
                    4.0,
                    6.0,
                    true,
                    0,
                    &["t-dinner-groceries"],
                    0,
                    24.0,
                ),
                TaskTemplate(
                    "t-dinner-childcare",
                    "Childcare during the dinner",
                    &[("childcare", 2)],
                    4.0,
                    2,
                    4.0,
                    6.0,
                    true,
                    1,
                    &[],
                    0,
                    12.0,
                ),
            ],
        }],
    },
    Collective {
        id: "eastern-market-climate",
        needs: &[NeedTemplate {
            id: "n-heat-map",
            title: "Neighbourhood heat map",
            tags: &["climate", "media"],
            tasks: &[
                TaskTemplate(
                    "t-heat-research",
                    "Collect utility shutoff data",
                    &[("research", 2)],
                    5.0,
                    1,
                    0.0,
                    12.0,
                    false,
                    0,
                    &[],
                    0,
                    9.0,
                ),
                TaskTemplate(
                    "t-heat-web",
                    "Publish the map online",
                    &[("web-dev", 3)],
                    8.0,
                    1,
                    3.0,
                    18.0,
                    false,
                    0,
                    &["t-heat-research"],
                    0,
                    13.0,
                ),
            ],
        }],
    },
    Collective {
        id: "migrant-solidarity",
        needs: &[NeedTemplate {
            id: "n-hotline",
            title: "Hotline coverage",
            tags: &["legal-defense"],
            tasks: &[
                TaskTemplate(
                    "t-hotline-es",
                    "Answer the Spanish hotline",
                    &[("translation-es", 3)],
                    6.0,
                    3,
                    0.0,
                    12.0,
                    false,
                    1,
                    &[],
                    0,
                    30.0,
                ),
                TaskTemplate(
                    "t-hotline-phones",
                    "Two prepaid hotline phones",
                    &[],
                    0.0,
                    0,
                    0.0,
                    6.0,
                    false,
                    0,
                    &[],
                    120,
                    7.0,
                ),
            ],
        }],
    },
    Collective {
        id: "palmer-park-childcare",
        needs: &[NeedTemplate {
            id: "n-meeting-childcare",
            title: "Childcare for organizing meetings",
            tags: &["education"],
            tasks: &[TaskTemplate(
                "t-meeting-childcare",
                "Childcare at Thursday meetings",
                &[("childcare", 1), ("first-aid", 1)],
                3.0,
                2,
                0.0,
                9.0,
                true,
                1,
                &[],
                0,
                14.0,
            )],
        }],
    },
    Collective {
        id: "northend-youth-coding",
        needs: &[NeedTemplate {
            id: "n-coding-club",
            title: "After-school coding club",
            tags: &["education"],
            tasks: &[TaskTemplate(
                "t-coding-mentors",
                "Mentor teens building their first site",
                &[("web-dev", 2), ("teaching", 1)],
                4.0,
                2,
                0.0,
                20.0,
                false,
                1,
                &[],
                0,
                16.0,
            )],
        }],
    },
    Collective {
        id: "dearborn-translation-circle",
        needs: &[NeedTemplate {
            id: "n-school-letters",
            title: "School letters in Arabic",
            tags: &["education"],
            tasks: &[TaskTemplate(
                "t-letters-ar",
                "Translate school enrollment letters",
                &[("translation-ar", 2)],
                3.0,
                2,
                0.0,
                8.0,
                false,
                0,
                &[],
                0,
                11.0,
            )],
        }],
    },
];

/// Skill profiles of arriving volunteers, with how often each appears
/// (`simulate` draws its population from the same table).
pub(crate) const PROFILES: &[(&[(&str, u8)], u32)] = &[
    (&[("canvassing", 2), ("phonebanking", 2)], 10),
    (&[("translation-es", 4), ("legal", 2)], 5),
    (&[("translation-es", 3), ("phonebanking", 1)], 6),
    (&[("event-logistics", 2), ("driving", 2)], 8),
    (&[("cooking", 3), ("event-logistics", 1)], 6),
    (&[("childcare", 3), ("first-aid", 2)], 5),
    (&[("legal", 3), ("writing", 3)], 3),
    (&[("translation-ar", 4), ("writing", 2)], 4),
    (&[("web-dev", 3), ("teaching", 2), ("data", 3)], 4),
    (&[("social-media", 3), ("graphic-design", 2)], 4),
    (&[("facilitation", 3), ("canvassing", 1)], 4),
    (&[("research", 3), ("data", 2)], 3),
    (&[("driving", 3)], 5),
];

const FIRST_NAMES: &[&str] = &[
    "amara", "bilal", "carmen", "deshawn", "elena", "farah", "gabriel", "hana", "imani", "jorge",
    "kenji", "layla", "marcus", "nadia", "omar", "priya", "quinn", "rosa", "samir", "tanya",
    "umar", "valeria", "wes", "ximena", "yusuf", "zora",
];

fn at(now: DateTime<Utc>, days: f64) -> DateTime<Utc> {
    now + chrono::Duration::minutes((days * 24.0 * 60.0) as i64)
}

fn need(collective: &Collective, template: &NeedTemplate, now: DateTime<Utc>) -> NeedPost {
    let tasks = template
        .tasks
        .iter()
        .map(
            |TaskTemplate(
                id,
                title,
                skills,
                hours,
                slots,
                start,
                deadline,
                in_person,
                sensitivity,
                depends_on,
                dollars,
                impact,
            )| TaskSpec {
                id: (*id).to_owned(),
                need: None,
                collective: None,
                title: (*title).to_owned(),
                skills: skills
                    .iter()
                    .map(|(skill, level)| ((*skill).to_owned(), *level))
                    .collect(),
                hours: *hours,
                slots: *slots,
                earliest_start: at(now, *start),
                deadline: at(now, *deadline),
                region: in_person.then(|| "detroit".to_owned()),
                sensitivity: *sensitivity,
                depends_on: depends_on.iter().map(|id| (*id).to_owned()).collect(),
                money_cents: dollars * 100,
                impact: *impact,
                tags: template.tags.iter().map(|tag| (*tag).to_owned()).collect(),
                currency: None,
                shift: None,
                place: None,
                instructions: None,
                languages: Vec::new(),
            },
        )
        .collect();
    NeedPost {
        id: template.id.to_owned(),
        collective: collective.id.to_owned(),
        title: template.title.to_owned(),
        tasks,
    }
}

fn pledges(now: DateTime<Utc>) -> Vec<PledgeOffer> {
    let pledge = |id: &str,
                  dollars: u64,
                  collectives: Option<&[&str]>,
                  tags: Option<&[&str]>,
                  expires: Option<f64>| PledgeOffer {
        id: id.to_owned(),
        amount_cents: dollars * 100,
        collectives: collectives.map(|ids| ids.iter().map(|id| (*id).to_owned()).collect()),
        tags: tags.map(|tags| tags.iter().map(|tag| (*tag).to_owned()).collect()),
        expires_at: expires.map(|days| at(now, days)),
        donor: None,
        sealed: None,
        currency: None,
    };
    vec![
        pledge("p-general-fund", 500, None, None, None),
        pledge(
            "p-housing-circle",
            300,
            None,
            Some(&["housing", "food"]),
            None,
        ),
        pledge(
            "p-bail-solidarity",
            1200,
            Some(&["detroit-bail-fund"]),
            None,
            None,
        ),
        pledge(
            "p-union-local",
            400,
            None,
            Some(&["labor", "legal-defense"]),
            Some(10.0),
        ),
        pledge(
            "p-church-kitchen",
            250,
            Some(&["corktown-community-kitchen", "southwest-food-pantry"]),
            None,
            None,
        ),
    ]
}

fn volunteer(rng: &mut StdRng, index: usize, now: DateTime<Utc>) -> VolunteerOffer {
    let total: u32 = PROFILES.iter().map(|(_, weight)| weight).sum();
    let mut pick = rng.random_range(0..total);
    let profile = PROFILES
        .iter()
        .find(|(_, weight)| {
            if pick < *weight {
                true
            } else {
                pick -= weight;
                false
            }
        })
        .map(|(skills, _)| *skills)
        .unwrap_or(PROFILES[0].0);
    let name = FIRST_NAMES[index % FIRST_NAMES.len()];
    let tenure_days = rng.random_range(14.0..28.0);
    VolunteerOffer {
        id: format!("v-{name}-{index:02}"),
        skills: profile
            .iter()
            .map(|(skill, level)| ((*skill).to_owned(), *level))
            .collect(),
        hours_per_week: f64::from(rng.random_range(3u32..=12)),
        available_from: now,
        available_until: at(now, tenure_days),
        region: if rng.random_bool(0.8) {
            Some("detroit".to_owned())
        } else {
            None
        },
        trust: if rng.random_bool(0.3) { 1 } else { 0 },
        name: None,
        contact: None,
        sealed: None,
        languages: Vec::new(),
        weekly: Vec::new(),
        tz: None,
        home: None,
        max_km: None,
    }
}

/// Sends one request, retrying while the services are still starting.
async fn send<T: serde::Serialize>(
    context: &plumbing::Context,
    input: Input,
    body: &T,
) -> anyhow::Result<()> {
    let payload = Bytes::from(serde_json::to_vec(body)?);
    let subject = context.subjects.input(input);
    for _ in 0..REQUEST_ATTEMPTS_MAX {
        match context
            .client
            .request(subject.clone(), payload.clone())
            .await
        {
            Ok(message) => {
                let reply: Reply =
                    serde_json::from_slice(&message.payload).context("reading a reply")?;
                if let Some(error) = reply.error {
                    tracing::warn!(message = %error.message, "the demo's request was refused");
                }
                return Ok(());
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    anyhow::bail!("the switchboard did not answer {subject}")
}

pub async fn run(
    context: plumbing::Context,
    seed: u64,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let answering = tokio::spawn(answer_proposals(context.clone(), seed, shutdown.clone()));
    let mut rng = StdRng::seed_from_u64(seed);
    let now = context.clock.now();
    for collective in COLLECTIVES {
        for template in collective.needs {
            let body = need(collective, template, now);
            if !send_unless_stopped(&context, &shutdown, Input::Need, &body).await? {
                return stop(answering).await;
            }
        }
    }
    for pledge in pledges(now) {
        if !send_unless_stopped(&context, &shutdown, Input::Pledge, &pledge).await? {
            return stop(answering).await;
        }
    }
    for index in 0..VOLUNTEERS_AT_START + VOLUNTEERS_LATER {
        if index >= VOLUNTEERS_AT_START {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(Duration::from_millis(ARRIVAL_INTERVAL_MS)) => {}
            }
        }
        let offer = volunteer(&mut rng, index, context.clock.now());
        if !send_unless_stopped(&context, &shutdown, Input::Volunteer, &offer).await? {
            break;
        }
    }
    shutdown.cancelled().await;
    stop(answering).await
}

async fn stop(answering: tokio::task::JoinHandle<anyhow::Result<()>>) -> anyhow::Result<()> {
    answering.await.context("the demo's volunteers stopped")?
}

/// [`send`], unless the switchboard is stopping: a request cut off by the
/// services shutting down is no failure of the demo. `false` once stopping.
async fn send_unless_stopped<T: serde::Serialize>(
    context: &plumbing::Context,
    shutdown: &CancellationToken,
    input: Input,
    body: &T,
) -> anyhow::Result<bool> {
    tokio::select! {
        () = shutdown.cancelled() => Ok(false),
        sent = send(context, input, body) => match sent {
            Ok(()) => Ok(true),
            Err(_) if shutdown.is_cancelled() => Ok(false),
            Err(error) => Err(error),
        },
    }
}

/// Plays the volunteers: each proposal is accepted or declined after a pause.
async fn answer_proposals(
    context: plumbing::Context,
    seed: u64,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut inbox = context
        .client
        .subscribe(context.subjects.to_volunteer("*"))
        .await
        .context("subscribing to the volunteers' subjects")?;
    let mut rng = StdRng::seed_from_u64(seed.wrapping_add(1));
    loop {
        let message = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            message = inbox.next() => match message { Some(message) => message, None => return Ok(()) },
        };
        let Ok(proposal) = serde_json::from_slice::<VolunteerMessage>(&message.payload) else {
            continue;
        };
        let answer: VolunteerReply = if rng.random_bool(ACCEPT_SHARE) {
            proposal.accept.clone()
        } else {
            proposal.decline.clone()
        };
        let delay = Duration::from_millis(rng.random_range(ANSWER_DELAY_MS.0..ANSWER_DELAY_MS.1));
        let context = context.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if let Err(error) = send(&context, Input::Reply, &answer).await {
                tracing::warn!(error = %format!("{error:#}"), "a demo volunteer could not answer");
            }
        });
    }
}

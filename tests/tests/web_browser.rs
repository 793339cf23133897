//! The pages in a real browser: headless Debian chromium driven through
//! chromedriver with fantoccini, on a phone-sized window, against a real
//! switchboard. A collective posts a need (and first sees the API's own
//! validation message on the field at fault), a volunteer offers time and
//! accepts the proposal, and the coordinators' dashboard shows the match;
//! a collective posts a shift with its place and instructions, and the
//! volunteer proposed it sees its local time, address, map link and
//! instructions.
//! Screenshots are kept under `target/browser-artifacts/`; the browser's
//! console must hold no error.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Stdio;

use fantoccini::{Client, ClientBuilder, Locator};
use gateway::access::Principal;
use serde_json::{json, Value};
use tests::{gateway_link, NatsServer, Options, Switchboard, EXPECT_WITHIN};
use tokio::process::{Child, Command};

/// A phone's viewport in CSS pixels (a common 6-inch phone).
const PHONE_WIDTH_PX: u32 = 390;
const PHONE_HEIGHT_PX: u32 = 844;

/// chromedriver on a free loopback port, killed on drop.
struct ChromeDriver {
    _child: Child,
    url: String,
}

impl ChromeDriver {
    async fn start() -> ChromeDriver {
        let binary = ["/usr/bin/chromedriver"]
            .into_iter()
            .map(PathBuf::from)
            .chain(
                std::env::var_os("PATH")
                    .iter()
                    .flat_map(std::env::split_paths)
                    .map(|directory| directory.join("chromedriver")),
            )
            .find(|path| path.is_file())
            .expect(
                "no chromedriver: run deploy/bin/install-prerequisites (Debian's chromium-driver)",
            );
        let port = std::net::TcpListener::bind(("127.0.0.1", 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("starting chromedriver");
        let deadline = tokio::time::Instant::now() + EXPECT_WITHIN;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver did not start"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        ChromeDriver {
            _child: child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// A headless chromium with the flags this machine's closed network
    /// needs, a fresh profile, and the console log kept for the test.
    async fn browser(&self, profile: &std::path::Path) -> Client {
        let capabilities = json!({
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-quic", "--no-first-run",
                    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                    format!("--user-data-dir={}", profile.display()),
                    format!("--window-size={PHONE_WIDTH_PX},{PHONE_HEIGHT_PX}"),
                ],
            },
        });
        let capabilities = match capabilities {
            Value::Object(map) => map,
            _ => unreachable!(),
        };
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("starting chromium through chromedriver")
    }

    /// The browser's console since the last call (chromedriver's log API).
    async fn console(&self, browser: &Client) -> Vec<Value> {
        let session = browser.session_id().await.unwrap().unwrap();
        let answer: Value = reqwest::Client::new()
            .post(format!("{}/session/{session}/se/log", self.url))
            .json(&json!({"type": "browser"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["value"].as_array().cloned().unwrap_or_default()
    }
}

fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let directory = target.join("browser-artifacts");
    std::fs::create_dir_all(&directory).unwrap();
    directory
}

async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.unwrap();
    std::fs::write(artifacts().join(format!("{name}.png")), png).unwrap();
}

async fn wait_for(browser: &Client, css: &str) -> fantoccini::elements::Element {
    browser
        .wait()
        .at_most(EXPECT_WITHIN)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|error| panic!("{css} never appeared: {error}"))
}

async fn fill(browser: &Client, name: &str, value: &str) {
    let input = browser
        .find(Locator::Css(&format!("[name='{name}']")))
        .await
        .unwrap();
    input.clear().await.unwrap();
    input.send_keys(value).await.unwrap();
}

/// The page is no wider than the phone: nothing to scroll sideways.
async fn assert_fits_the_phone(browser: &Client, page: &str) {
    let widths = browser
        .execute(
            "return [document.documentElement.scrollWidth, document.documentElement.clientWidth];",
            vec![],
        )
        .await
        .unwrap();
    let (scroll, client) = (widths[0].as_u64().unwrap(), widths[1].as_u64().unwrap());
    assert!(
        scroll <= client,
        "{page} is {scroll}px wide on a {client}px screen"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_need_posted_and_accepted_in_the_browser_appears_on_the_coordinators_page() {
    let nats = NatsServer::start().await;
    let state = tempfile::tempdir().unwrap();
    let switchboard = Switchboard::start(
        &nats,
        state.path(),
        Options {
            gateway: true,
            ..Options::default()
        },
    )
    .await;
    let base = format!("http://{}", switchboard.http.unwrap());
    let driver = ChromeDriver::start().await;
    let profile = tempfile::tempdir().unwrap();
    let browser = driver.browser(profile.path()).await;
    let mut console = Vec::new();

    // A collective signs in with its link and posts a need; the first try
    // has a bad number of hours and shows the API's message on that field.
    let collective = gateway_link(&Principal::Collective("c-tenants".into()));
    browser
        .goto(&format!("{base}/signin?token={collective}"))
        .await
        .unwrap();
    wait_for(&browser, "#need-form [name='tasks.0.hours']").await;
    assert_eq!(browser.current_url().await.unwrap().path(), "/collective");
    fill(&browser, "id", "n-web").await;
    fill(&browser, "title", "Friday clinic").await;
    fill(&browser, "tasks.0.id", "t-web").await;
    fill(&browser, "tasks.0.title", "Spanish intake").await;
    fill(&browser, "tasks.0.skills", "translation-es:3").await;
    fill(&browser, "tasks.0.hours", "-4").await;
    browser
        .find(Locator::Css("#need-form button[type='submit']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let message = wait_for(&browser, "[data-error-for='tasks[0].hours']").await;
    assert!(!message.text().await.unwrap().is_empty());
    let invalid = browser
        .find(Locator::Css("[name='tasks.0.hours']"))
        .await
        .unwrap()
        .attr("aria-invalid")
        .await
        .unwrap();
    assert_eq!(invalid.as_deref(), Some("true"));
    screenshot(&browser, "collective-invalid-hours").await;
    fill(&browser, "tasks.0.hours", "3").await;
    browser
        .find(Locator::Css("#need-form button[type='submit']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&browser, "#needs [data-need='n-web'] [data-task='t-web']").await;
    assert_fits_the_phone(&browser, "the collective page").await;
    screenshot(&browser, "collective-need-posted").await;
    console.extend(driver.console(&browser).await);

    // Someone offers time on the front page, gets their own link, and
    // accepts what the switchboard proposes.
    browser.goto(&format!("{base}/signout")).await.unwrap();
    wait_for(&browser, "#offer-form").await;
    fill(&browser, "skills", "translation-es:4").await;
    fill(&browser, "hours_per_week", "6").await;
    fill(&browser, "region", "detroit").await;
    fill(&browser, "name", "Maria").await;
    browser
        .find(Locator::Css("#offer-form button[type='submit']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let link = wait_for(&browser, "#my-link").await.text().await.unwrap();
    let (_, token) = link
        .split_once("/signin?token=")
        .unwrap_or_else(|| panic!("not a sign-in link: {link}"));
    let claims = tests::gateway_config()
        .tokens()
        .unwrap()
        .verify_claims(token)
        .unwrap_or_else(|| panic!("not a valid link: {link}"));
    let Principal::Volunteer(maria) = claims.principal else {
        panic!("not a volunteer's link: {link}");
    };
    assert_fits_the_phone(&browser, "the front page").await;
    screenshot(&browser, "volunteer-registered").await;
    // She answers from the proposal's email: its accept link (as dispatch
    // writes it) signs her in and marks the answer; one press confirms.
    browser
        .goto(&format!("{link}&task=t-web&round=0&answer=accept"))
        .await
        .unwrap();
    wait_for(&browser, "[data-emailed='t-web']").await;
    let accept = wait_for(
        &browser,
        "button.emailed[data-action='accept'][data-task='t-web']",
    )
    .await;
    wait_for(&browser, "[data-task='t-web'] details.why").await;
    screenshot(&browser, "volunteer-proposal").await;
    accept.click().await.unwrap();
    wait_for(&browser, "li[data-task='t-web'][data-state='accepted']").await;
    wait_for(&browser, "[data-weeks='Now'] li").await;
    assert_fits_the_phone(&browser, "the volunteer page").await;
    screenshot(&browser, "volunteer-accepted").await;
    // She reports how far she got: a check-in that says it.
    let hours_done = wait_for(&browser, "input[data-hours-done='t-web']").await;
    hours_done.send_keys("0.5").await.unwrap();
    browser
        .find(Locator::Css(
            "button[data-action='progress'][data-task='t-web']",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&browser, "li[data-task='t-web'][data-state='checked_in']").await;
    screenshot(&browser, "volunteer-reported-progress").await;
    console.extend(driver.console(&browser).await);
    // Her own page shows her own name, opened from its sealed form; then
    // she asks to be forgotten, and it is gone from her offer.
    let name_field = || async {
        browser
            .find(Locator::Css("#offer-form [name='name']"))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .unwrap_or_default()
    };
    assert_eq!(name_field().await, "Maria", "her own name, opened for her");
    browser
        .find(Locator::Css("#forget-me"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&browser, "#forget-result:not([hidden])").await;
    assert_eq!(name_field().await, "", "forgotten");
    screenshot(&browser, "volunteer-forgotten").await;

    // A vetter vouches for Maria, who showed them the id on her page.
    let vetter = gateway_link(&Principal::Vetter("vt-rosa".into()));
    browser
        .goto(&format!("{base}/signin?token={vetter}"))
        .await
        .unwrap();
    wait_for(&browser, "#vet-form").await;
    assert_eq!(browser.current_url().await.unwrap().path(), "/vetter");
    fill(&browser, "volunteer", &maria).await;
    browser
        .find(Locator::Css(
            "#vet-form select[name='trust'] option[value='1']",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    fill(&browser, "note", "met her at the clinic").await;
    browser
        .find(Locator::Css("#vet-form button[type='submit']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let result = wait_for(&browser, "#vet-result:not([hidden])").await;
    let said = result.text().await.unwrap();
    assert!(said.contains("tier 1"), "{said}");
    assert_fits_the_phone(&browser, "the vetter's page").await;
    screenshot(&browser, "vetter-vouched").await;
    console.extend(driver.console(&browser).await);

    // The coordinators see the match on the live stream and the dashboard
    // (checked in: she reported her progress).
    let coordinator = gateway_link(&Principal::Coordinator);
    browser
        .goto(&format!("{base}/signin?token={coordinator}"))
        .await
        .unwrap();
    wait_for(
        &browser,
        "#stream li[data-kind='accepted'][data-task='t-web']",
    )
    .await;
    wait_for(
        &browser,
        "#assignments li[data-task='t-web'][data-state='checked_in']",
    )
    .await;
    wait_for(&browser, "#needs [data-task='t-web']").await;
    assert_fits_the_phone(&browser, "the coordinators' page").await;
    screenshot(&browser, "coordinator-dashboard").await;
    console.extend(driver.console(&browser).await);

    // No script error and no failed request but the deliberate refusal of
    // the bad hours (422), which the browser reports as a network error.
    let errors: Vec<&Value> = console
        .iter()
        .filter(|entry| entry["level"] == "SEVERE")
        .filter(|entry| {
            let message = entry["message"].as_str().unwrap_or_default();
            !(entry["source"] == "network" && message.contains("422"))
        })
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    browser.close().await.unwrap();
    switchboard.stop().await;
}

/// Sets a form field's value as a script would (date and time inputs take
/// keys in the browser's locale, which the test cannot know).
async fn set_value(browser: &Client, name: &str, value: &str) {
    browser
        .execute(
            "document.querySelector(`[name='${arguments[0]}']`).value = arguments[1];",
            vec![json!(name), json!(value)],
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collective_posts_a_shift_and_its_volunteer_sees_its_time_place_and_instructions() {
    let nats = NatsServer::start().await;
    let state = tempfile::tempdir().unwrap();
    let switchboard = Switchboard::start(
        &nats,
        state.path(),
        Options {
            gateway: true,
            ..Options::default()
        },
    )
    .await;
    let base = format!("http://{}", switchboard.http.unwrap());
    let driver = ChromeDriver::start().await;
    let profile = tempfile::tempdir().unwrap();
    let browser = driver.browser(profile.path()).await;

    // The collective posts a Saturday-style crew: a fixed time, a place, instructions.
    let collective = gateway_link(&Principal::Collective("c-pantry".into()));
    browser
        .goto(&format!("{base}/signin?token={collective}"))
        .await
        .unwrap();
    wait_for(&browser, "#need-form [name='tasks.0.shift_start']").await;
    fill(&browser, "id", "n-crew").await;
    fill(&browser, "title", "Distribution crew").await;
    fill(&browser, "tasks.0.id", "t-crew").await;
    fill(&browser, "tasks.0.title", "Hand out boxes").await;
    fill(&browser, "tasks.0.skills", "cooking:1").await;
    fill(&browser, "tasks.0.region", "detroit").await;
    // Tomorrow 09:00-12:00 in the browser's own time.
    let tomorrow = browser
        .execute(
            "const d = new Date(Date.now() + 86400000); const p = (n) => String(n).padStart(2, '0'); \
             return d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate());",
            vec![],
        )
        .await
        .unwrap();
    let day = tomorrow.as_str().unwrap();
    set_value(&browser, "tasks.0.shift_start", &format!("{day}T09:00")).await;
    set_value(&browser, "tasks.0.shift_end", &format!("{day}T12:00")).await;
    fill(&browser, "tasks.0.place_point", "42.3314, -83.0458").await;
    fill(&browser, "tasks.0.place_name", "Eastside pantry").await;
    fill(&browser, "tasks.0.place_address", "1 Example St, Detroit").await;
    fill(&browser, "tasks.0.instructions", "Side door; bring gloves.").await;
    browser
        .find(Locator::Css("#need-form button[type='submit']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&browser, "#needs [data-need='n-crew'] [data-task='t-crew']").await;
    // What was posted is a shift: its window and hours follow from it.
    let events = switchboard
        .stream_messages(&switchboard.subjects.events_stream())
        .await;
    let (_, posted) = events
        .iter()
        .find(|(subject, _)| subject.ends_with(".need.n-crew"))
        .unwrap();
    let task = &posted["tasks"][0];
    assert_eq!(task["hours"], json!(3.0), "{posted}");
    assert_eq!(task["earliest_start"], task["shift"]["start"], "{posted}");
    assert_eq!(task["place"]["address"], "1 Example St, Detroit");

    // Someone who cooks is proposed it, and sees when, where and how.
    switchboard
        .accept(
            proto::subjects::Input::Volunteer,
            &tests::volunteer("v-ana", json!({"cooking": 2})),
        )
        .await;
    let volunteer = gateway_link(&Principal::Volunteer("v-ana".into()));
    browser
        .goto(&format!("{base}/signin?token={volunteer}"))
        .await
        .unwrap();
    let shift = wait_for(&browser, "[data-shift='t-crew']").await;
    let when = shift.text().await.unwrap();
    assert!(
        when.contains("09:00") || when.contains("9:00"),
        "the local start time: {when}"
    );
    let place = wait_for(&browser, "[data-task='t-crew'] [data-place]").await;
    assert!(place
        .text()
        .await
        .unwrap()
        .contains("1 Example St, Detroit"));
    let map = browser
        .find(Locator::Css("[data-task='t-crew'] [data-place] a"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    assert!(map.contains("mlat=42.3314&mlon=-83.0458"), "{map}");
    let instructions = wait_for(&browser, "[data-instructions='t-crew']").await;
    assert_eq!(
        instructions.text().await.unwrap(),
        "Side door; bring gloves."
    );
    screenshot(&browser, "volunteer-shift").await;
    let errors: Vec<Value> = driver
        .console(&browser)
        .await
        .into_iter()
        .filter(|entry| entry["level"] == "SEVERE")
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    browser.close().await.unwrap();
    switchboard.stop().await;
}

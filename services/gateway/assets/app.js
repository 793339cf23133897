// The switchboard's pages, by hand: no framework, no build step.
//
// Each page fetches its view from /api/view/<role> and redraws whenever the
// server says something changed (a long poll with ?newer_than=<version>).
// Text from users is only ever set with textContent, never parsed as HTML.
// The sign-in token is an HTTP-only cookie the script never sees.
"use strict";

const STREAM_ROWS_MAX = 200; // live stream lines kept on the dashboard
const RETRY_MS = 2000;       // wait after a failed fetch before trying again

function el(tag, attributes, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

function byId(id) { return document.getElementById(id); }

function when(text) {
  if (!text) return "";
  const date = new Date(text);
  return date.toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

function money(cents) { return "$" + (cents / 100).toFixed(2); }

function badge(state) { return el("span", { class: "badge " + state }, state.replace("_", " ")); }

async function api(method, path, body) {
  const options = { method, headers: {}, credentials: "same-origin" };
  if (body !== undefined) {
    options.headers["content-type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  let payload = null;
  try { payload = await response.json(); } catch (_) { payload = null; }
  return { status: response.status, body: payload };
}

function notice(id, text, bad) {
  const box = byId(id);
  box.hidden = false;
  box.className = "notice" + (bad ? " bad" : "");
  box.textContent = text;
}

// Shows a refusal next to its field: `tasks[2].hours` finds the input whose
// data-field is that path, or the closest enclosing one (tasks[2], ...).
function showFieldError(form, error) {
  clearErrors(form);
  if (!error || !error.field) return false;
  let path = error.field;
  while (path) {
    const input = form.querySelector('[data-field="' + CSS.escape(path) + '"]');
    if (input) {
      input.setAttribute("aria-invalid", "true");
      const message = el("span", { class: "error", role: "alert", "data-error-for": error.field }, error.message);
      input.insertAdjacentElement("afterend", message);
      input.focus();
      return true;
    }
    const cut = Math.max(path.lastIndexOf("."), path.lastIndexOf("["));
    path = cut > 0 ? path.slice(0, cut) : "";
  }
  return false;
}

function clearErrors(form) {
  form.querySelectorAll(".error").forEach((node) => node.remove());
  form.querySelectorAll('[aria-invalid="true"]').forEach((node) => node.removeAttribute("aria-invalid"));
}

function refusalText(reply) {
  const error = reply.body && reply.body.error;
  if (!error) return "The switchboard did not answer (" + reply.status + ").";
  return (error.field ? error.field + ": " : "") + error.message;
}

// "driving:3, legal:2" -> {driving: 3, legal: 2}; a level that is not a
// number is sent as given so the switchboard's own message explains it.
function parseSkills(text) {
  const skills = {};
  for (const part of text.split(",")) {
    const trimmed = part.trim();
    if (!trimmed) continue;
    const [name, level] = trimmed.split(":").map((piece) => (piece || "").trim());
    const number = Number(level === undefined || level === "" ? "1" : level);
    skills[name] = Number.isFinite(number) ? number : level;
  }
  return skills;
}

function numberOr(text, fallback) {
  if (text === undefined || text.trim() === "") return fallback;
  const number = Number(text);
  return Number.isFinite(number) ? number : text;
}

function dayToTime(text, fallback) {
  if (!text) return fallback;
  return text + "T00:00:00Z";
}

function isoDay(date) { return date.toISOString().slice(0, 10); }

function isoLocal(date) {
  const shifted = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
  return shifted.toISOString().slice(0, 16);
}

// Redraws with `draw` now and whenever the view changes, until the page closes.
async function follow(path, draw) {
  let version = null;
  for (;;) {
    const query = version === null ? "" : (path.includes("?") ? "&" : "?") + "newer_than=" + version;
    let reply;
    try {
      reply = await api("GET", path + query);
    } catch (_) {
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
      continue;
    }
    if (reply.status === 401 || reply.status === 403) {
      document.querySelector("main").replaceChildren(
        el("section", {}, el("h2", {}, "Please sign in"),
          el("p", {}, "Open the sign-in link a coordinator gave you, or offer your time on the ", el("a", { href: "/" }, "front page"), ".")));
      return;
    }
    if (reply.status !== 200 || !reply.body) {
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
      continue;
    }
    version = reply.body.version;
    draw(reply.body.view);
  }
}

async function showWho() {
  const reply = await api("GET", "/api/me").catch(() => null);
  const who = byId("who");
  if (!who || !reply || reply.status !== 200) return null;
  who.textContent = reply.body.role + (reply.body.id ? " " + reply.body.id : "");
  return reply.body;
}

function whyDetails(why) {
  if (!why) return null;
  const skills = Object.entries(why.skills || {}).map(([name, [required, held]]) => name + " " + held + "/" + required);
  return el("details", { class: "why" }, el("summary", {}, "why"),
    el("ul", {},
      el("li", {}, "impact " + Number(why.impact || 0).toFixed(1)),
      skills.length ? el("li", {}, "skills (held/required): " + skills.join(", ")) : null,
      el("li", {}, "binding: " + (why.binding || "none")),
      el("li", {}, "team: " + (why.team || []).join(", ")),
      el("li", {}, "hours to spare in the window: " + Number(why.slack_hours || 0).toFixed(1)),
      el("li", {}, "hours left in tenure: " + Number(why.tenure_left_hours || 0).toFixed(0)),
      why.alternative ? el("li", {}, "alternative: " + why.alternative) : null));
}

function offerBody(form) {
  const data = new FormData(form);
  const today = new Date();
  const body = {
    skills: parseSkills(String(data.get("skills") || "")),
    hours_per_week: numberOr(String(data.get("hours_per_week") || ""), null),
    available_from: dayToTime(String(data.get("available_from") || ""), today.toISOString()),
    available_until: dayToTime(String(data.get("available_until") || ""), new Date(today.getTime() + 21 * 86400000).toISOString()),
    region: String(data.get("region") || "").trim() || null,
  };
  const name = String(data.get("name") || "").trim();
  const contact = String(data.get("contact") || "").trim();
  if (name) body.name = name;
  if (contact) body.contact = contact;
  return body;
}

function prefillDates(form) {
  const today = new Date();
  if (!form.elements.available_from.value) form.elements.available_from.value = isoDay(today);
  if (!form.elements.available_until.value) form.elements.available_until.value = isoDay(new Date(today.getTime() + 21 * 86400000));
}

// ---------------------------------------------------------------- landing

function landing() {
  const form = byId("offer-form");
  prefillDates(form);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const reply = await api("POST", "/api/register", offerBody(form));
    if (reply.status === 200 && reply.body.ok) {
      clearErrors(form);
      const box = byId("offer-result");
      box.hidden = false;
      box.className = "notice";
      box.replaceChildren("Thank you! Keep your own link to come back: ", el("a", { href: reply.body.link, id: "my-link" }, reply.body.link), " ", el("a", { href: "/volunteer" }, "Go to your page"));
    } else {
      showFieldError(form, reply.body && reply.body.error);
      notice("offer-result", refusalText(reply), true);
    }
  });
}

// ---------------------------------------------------------------- volunteer

function volunteer() {
  let me = null;
  const form = byId("offer-form");
  prefillDates(form);
  showWho().then((who) => { me = who; });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!me) return;
    const body = offerBody(form);
    body.id = me.id;
    const reply = await api("POST", "/api/volunteer", body);
    if (reply.status === 200) { clearErrors(form); notice("offer-result", "Saved."); }
    else { showFieldError(form, reply.body && reply.body.error); notice("offer-result", refusalText(reply), true); }
  });
  const forget = byId("forget-me");
  if (forget) forget.addEventListener("click", async () => {
    if (!me) return;
    const reply = await api("POST", "/api/forget", { kind: "volunteer", id: me.id });
    if (reply.status === 200) {
      form.elements.name.value = "";
      form.elements.contact.value = "";
      notice("forget-result", "Forgotten: your name and contact can no longer be read.");
    } else notice("forget-result", refusalText(reply), true);
  });
  let filled = false;
  follow("/api/view/volunteer", (view) => {
    currentVolunteer = view.volunteer;
    if (view.offer && !filled) {
      filled = true;
      const offer = view.offer;
      form.elements.name.value = offer.name || "";
      form.elements.contact.value = offer.contact || "";
      form.elements.skills.value = Object.entries(offer.skills).map(([name, level]) => name + ":" + level).join(", ");
      form.elements.hours_per_week.value = offer.hours_per_week;
      form.elements.available_from.value = offer.available_from.slice(0, 10);
      form.elements.available_until.value = offer.available_until.slice(0, 10);
      form.elements.region.value = offer.region || "";
    }
    byId("offer-summary").textContent = view.offer
      ? view.hours_committed.toFixed(1) + " hours committed of " + view.hours_offered.toFixed(0) + " you still offer."
      : "Tell the switchboard what you can do and when.";
    drawMyAssignments(view);
    drawWeeks(view);
    byId("delivered").replaceChildren(view.delivered.length
      ? el("p", { "data-impact": view.impact_delivered.toFixed(1) }, "You helped finish " + view.delivered.length + " task" + (view.delivered.length === 1 ? "" : "s") + " (" + view.hours_delivered.toFixed(1) + " h): "
        + view.delivered.map((done) => done.title + " for " + done.collective).join("; ") + ". Your share of their impact: " + view.impact_delivered.toFixed(1) + ".")
      : el("p", { class: "muted" }, "Nothing finished yet."));
  });
}

let currentVolunteer = null; // the signed-in volunteer's id, from their view
// The answer an email link chose (`/volunteer?task=..&answer=..`), if any.
const emailedAnswer = (() => {
  const query = new URLSearchParams(location.search);
  return { task: query.get("task"), action: query.get("answer") };
})();

function answer(task, action, round) {
  return async (event) => {
    const button = event.currentTarget;
    button.disabled = true;
    const reply = await api("POST", "/api/reply", { volunteer: currentVolunteer, task, action, round });
    if (reply.status !== 200) {
      button.disabled = false;
      alertInline(button, refusalText(reply));
    }
  };
}

// "How far I got", for flexible work: the hours of their part done, so
// the switchboard charges them only the rest (a check-in as well).
function progressReport(item) {
  const id = "hours-done-" + item.task;
  const input = el("input", { type: "number", id, min: "0", max: String(item.hours), step: "0.25", inputmode: "decimal", "data-hours-done": item.task });
  const send = async (event) => {
    const button = event.currentTarget;
    const hours = Number(input.value);
    if (input.value === "" || !Number.isFinite(hours) || hours < 0) {
      alertInline(button, "Say how many hours of your part you have done, 0 or more.");
      return;
    }
    button.disabled = true;
    const reply = await api("POST", "/api/reply", { volunteer: currentVolunteer, task: item.task, action: "progress", round: item.round, hours_done: hours });
    button.disabled = false;
    if (reply.status !== 200) alertInline(button, refusalText(reply));
  };
  return el("span", { class: "progress-report" },
    el("label", { for: id }, "Hours done so far "), input, " ",
    el("button", { class: "secondary", onclick: send, "data-action": "progress", "data-task": item.task }, "Report hours done"));
}

function alertInline(anchor, text) {
  const message = el("p", { class: "error", role: "alert" }, text);
  anchor.closest("li, section, tr").append(message);
}

function drawMyAssignments(view) {
  const list = byId("assignments");
  const rows = view.assignments.filter((item) => ["proposed", "accepted", "checked_in", "completed"].includes(item.state));
  if (!rows.length) {
    list.replaceChildren(el("li", { class: "muted" }, "Nothing proposed yet. The switchboard will propose work that fits your skills and weeks."));
    return;
  }
  list.replaceChildren(...rows.map((item) => {
    const actions = [];
    if (item.state === "proposed") {
      actions.push(el("button", { onclick: answer(item.task, "accept", item.round), "data-action": "accept", "data-task": item.task }, "Accept"));
      actions.push(el("button", { class: "secondary", onclick: answer(item.task, "decline", item.round), "data-action": "decline", "data-task": item.task }, "Decline"));
    } else if (item.state === "accepted") {
      actions.push(el("button", { onclick: answer(item.task, "checkin", item.round), "data-action": "checkin", "data-task": item.task }, "Check in"));
      actions.push(el("button", { class: "danger", onclick: answer(item.task, "drop", item.round), "data-action": "drop", "data-task": item.task }, "I can't do it"));
    } else if (item.state === "checked_in") {
      actions.push(el("button", { onclick: answer(item.task, "done", item.round), "data-action": "done", "data-task": item.task }, "My part is done"));
      actions.push(el("button", { class: "danger", onclick: answer(item.task, "drop", item.round), "data-action": "drop", "data-task": item.task }, "I can't do it"));
    }
    if ((item.state === "accepted" || item.state === "checked_in") && !item.shift && item.hours > 0) {
      actions.push(progressReport(item));
    }
    // An answer chosen in an email link: its button is marked and focused,
    // one press away. The link itself never answers: mail scanners open links.
    const chosen = emailedAnswer.task === item.task
      ? actions.find((button) => button.dataset.action === emailedAnswer.action) : null;
    if (chosen) {
      chosen.classList.add("emailed");
      setTimeout(() => chosen.focus(), 0);
    }
    return el("li", { "data-task": item.task, "data-state": item.state },
      chosen ? el("p", { class: "notice", "data-emailed": item.task }, "You chose “" + chosen.textContent + "” in your email: press it to confirm.") : null,
      el("b", {}, item.title), " ", badge(item.state),
      item.shift
        ? el("div", { "data-shift": item.task }, shiftText(item.shift))
        : el("div", { class: "muted" }, item.hours + " h, " + when(item.earliest_start) + " – " + when(item.deadline) + (item.region ? ", " + item.region : ", remote")),
      item.place ? placeLine(item.place) : null,
      item.instructions ? el("p", { "data-instructions": item.task }, item.instructions) : null,
      item.state === "proposed" ? el("div", { class: "muted" }, "Answer by " + when(item.respond_by)) : null,
      whyDetails(item.why),
      actions.length ? el("div", { class: "actions" }, actions) : null);
  }));
}

// A shift in the reader's own time: day, date, start and end.
function shiftText(shift) {
  const start = new Date(shift.start), end = new Date(shift.end);
  const day = start.toLocaleDateString(undefined, { weekday: "long", month: "short", day: "numeric" });
  const time = (at) => at.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
  return day + ", " + time(start) + "–" + time(end);
}

// Where: the name and address, and a map link built from the coordinates.
function placeLine(place) {
  const map = "https://www.openstreetmap.org/?mlat=" + place.lat + "&mlon=" + place.lon + "#map=17/" + place.lat + "/" + place.lon;
  const words = [place.name, place.address].filter(Boolean).join(", ") || (place.lat + ", " + place.lon);
  return el("div", { "data-place": "" }, words, " (", el("a", { href: map, rel: "noopener" }, "map"), ")");
}

function drawWeeks(view) {
  const titles = {};
  for (const item of view.assignments) titles[item.task] = item.title;
  const column = (name, tasks) => el("div", { "data-weeks": name }, el("b", {}, name),
    tasks.length ? el("ul", {}, tasks.map((task) => el("li", {}, titles[task] || task))) : el("p", { class: "muted" }, "nothing"));
  byId("weeks").replaceChildren(column("Now", view.three_weeks.now), column("Next", view.three_weeks.next), column("Later", view.three_weeks.later));
}

// ---------------------------------------------------------------- collective

let taskRows = 0;

function taskFieldset(index) {
  const now = new Date();
  const field = (label, name, attributes) => el("label", {}, label,
    el("input", Object.assign({ name: "tasks." + index + "." + name, "data-field": "tasks[" + index + "]." + name }, attributes || {})));
  return el("fieldset", { "data-field": "tasks[" + index + "]", "data-task-index": index },
    el("legend", {}, "Task " + (index + 1)),
    el("div", { class: "grid" },
      field("Task id", "id", { placeholder: "t-intake" }),
      field("Title", "title", { placeholder: "Spanish intake" }),
      field("Skills, e.g. legal:3", "skills", {}),
      field("Hours each", "hours", { inputmode: "decimal", value: "2" }),
      field("People", "slots", { inputmode: "numeric", value: "1" }),
      field("Earliest start", "earliest_start", { type: "datetime-local", value: isoLocal(now) }),
      field("Deadline", "deadline", { type: "datetime-local", value: isoLocal(new Date(now.getTime() + 7 * 86400000)) }),
      field("Region (empty: remote)", "region", {}),
      field("Money needed ($)", "money_cents", { inputmode: "decimal", value: "0" }),
      field("Impact", "impact", { inputmode: "decimal", value: "10" }),
      field("Tags, comma separated", "tags", {}),
      field("Trust needed (0-2)", "sensitivity", { inputmode: "numeric", value: "0" }),
      field("Depends on (task ids)", "depends_on", {}),
      // A fixed time for the whole team: its window and hours follow from it.
      field("Shift starts (optional)", "shift_start", { type: "datetime-local", "data-field": "tasks[" + index + "].shift.start" }),
      field("Shift ends", "shift_end", { type: "datetime-local", "data-field": "tasks[" + index + "].shift.end" }),
      field("Place: latitude, longitude", "place_point", { placeholder: "42.3314, -83.0458", "data-field": "tasks[" + index + "].place.lat" }),
      field("Place name", "place_name", { "data-field": "tasks[" + index + "].place.name" }),
      field("Address", "place_address", { "data-field": "tasks[" + index + "].place.address" }),
      field("Instructions for the team", "instructions", { "data-field": "tasks[" + index + "].instructions" })));
}

// A task's optional shift, place and instructions, as the contract spells them.
function shiftAndPlace(task) {
  const extra = {};
  const start = task("shift_start"), end = task("shift_end");
  if (start || end) {
    extra.shift = { start: start ? new Date(start).toISOString() : null, end: end ? new Date(end).toISOString() : null };
    if (start && end) {
      extra.earliest_start = extra.shift.start;
      extra.deadline = extra.shift.end;
      extra.hours = (new Date(end) - new Date(start)) / 3600000;
    }
  }
  const point = task("place_point").split(",").map((part) => part.trim()).filter(Boolean);
  const name = task("place_name").trim(), address = task("place_address").trim();
  if (point.length || name || address) {
    extra.place = { lat: numberOr(point[0], null), lon: numberOr(point[1], null) };
    if (name) extra.place.name = name;
    if (address) extra.place.address = address;
  }
  if (task("instructions").trim()) extra.instructions = task("instructions").trim();
  return extra;
}

function listOf(text) { return text.split(",").map((part) => part.trim()).filter(Boolean); }

function needBody(form, collective) {
  const value = (name) => String(form.elements[name] ? form.elements[name].value : "");
  const tasks = [];
  for (let index = 0; index < taskRows; index += 1) {
    const task = (name) => value("tasks." + index + "." + name);
    const dollars = numberOr(task("money_cents"), 0);
    tasks.push(Object.assign({
      id: task("id").trim(),
      title: task("title").trim(),
      skills: parseSkills(task("skills")),
      hours: numberOr(task("hours"), null),
      slots: numberOr(task("slots"), null),
      earliest_start: task("earliest_start") ? new Date(task("earliest_start")).toISOString() : null,
      deadline: task("deadline") ? new Date(task("deadline")).toISOString() : null,
      region: task("region").trim() || null,
      money_cents: typeof dollars === "number" ? Math.round(dollars * 100) : dollars,
      impact: numberOr(task("impact"), null),
      tags: listOf(task("tags")),
      sensitivity: numberOr(task("sensitivity"), 0),
      depends_on: listOf(task("depends_on")),
    }, shiftAndPlace(task)));
  }
  return { id: value("id").trim(), collective, title: value("title").trim(), tasks };
}

function collective() {
  let me = null;
  const form = byId("need-form");
  const addTask = () => { byId("tasks").append(taskFieldset(taskRows)); taskRows += 1; };
  addTask();
  byId("add-task").addEventListener("click", addTask);
  showWho().then((who) => { me = who; });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!me) return;
    const reply = await api("POST", "/api/need", needBody(form, me.id));
    if (reply.status === 200) { clearErrors(form); notice("need-result", "Posted. The switchboard is looking for people."); }
    else { showFieldError(form, reply.body && reply.body.error); notice("need-result", refusalText(reply), true); }
  });
  follow("/api/view/collective", (view) => {
    const needs = byId("needs");
    needs.replaceChildren(...(view.needs.length ? view.needs.map((need) => needCard(need, true)) : [el("p", { class: "muted" }, "No open needs. Post one below.")]));
    byId("done").replaceChildren(...(view.done.length ? view.done.map((done) => el("li", {}, done.task + " (" + done.need + "), impact " + done.impact + ", " + when(done.at))) : [el("li", { class: "muted" }, "Nothing completed yet.")]));
  });
}

function completeButton(task) {
  return el("button", {
    class: "secondary", "data-action": "complete", "data-task": task,
    onclick: async (event) => {
      const button = event.currentTarget;
      button.disabled = true;
      const reply = await api("POST", "/api/complete", { task });
      if (reply.status !== 200) { button.disabled = false; alertInline(button, refusalText(reply)); }
    },
  }, "Confirm completion");
}

function needCard(need, withComplete) {
  return el("div", { "data-need": need.id },
    el("h3", {}, need.title + " ", el("span", { class: "muted" }, need.id + (withComplete ? "" : " · " + need.collective))),
    el("ul", { class: "list" }, need.tasks.map((task) => {
      const slots = task.slots;
      const staffing = slots ? task.staffed + "/" + slots + " staffed" + (task.proposed ? ", " + task.proposed + " asked" : "") : "money only";
      const funding = task.money_cents ? ", " + (task.funding_known ? money(task.funded_cents) + " of " : "? of ") + money(task.money_cents) + " funded" : "";
      return el("li", { "data-task": task.id },
        el("b", {}, task.title), " ", el("span", { class: "muted" }, task.id),
        el("div", {}, staffing + funding + ", due " + when(task.deadline)),
        task.team.length ? el("div", { class: "muted" }, "team: ", task.team.map((member) => el("span", {}, member.volunteer + " ", badge(member.state), " "))) : null,
        el("div", { class: "actions" }, completeButton(task.id)));
    })));
}

// ---------------------------------------------------------------- coordinator

async function steer(body, resultId) {
  const reply = await api("POST", "/api/steer", body);
  if (reply.status === 200) notice(resultId, "Done: " + body.action + ".");
  else notice(resultId, refusalText(reply), true);
  return reply;
}

function steerButtons(volunteerId, task) {
  return el("div", { class: "actions" },
    el("button", { class: "secondary", "data-action": "pin", onclick: () => steer({ action: "pin", volunteer: volunteerId, task }, "steer-result") }, "Pin"),
    el("button", { class: "danger", "data-action": "veto", onclick: () => steer({ action: "veto", volunteer: volunteerId, task }, "steer-result") }, "Veto"));
}

function streamLine(kind, event) {
  return el("li", { "data-kind": kind, "data-volunteer": event.volunteer, "data-task": event.task },
    badge(kind), " ", el("b", {}, event.volunteer), " → ", event.task,
    el("span", { class: "muted" }, " " + when(event.at)),
    kind === "proposed" ? el("span", { class: "muted" }, " impact " + Number(event.impact).toFixed(1) + ", " + event.collective) : null,
    event.reason ? el("div", { class: "muted" }, event.reason) : null,
    kind === "proposed" ? whyDetails(event.why) : null);
}

function table(headers, rows) {
  if (!rows.length) return el("p", { class: "muted" }, "none");
  return el("table", {}, el("thead", {}, el("tr", {}, headers.map((header) => el("th", {}, header)))),
    el("tbody", {}, rows.map((row) => el("tr", {}, row.map((cell) => el("td", {}, cell))))));
}

function coordinator() {
  showWho();
  const stream = byId("stream");
  const source = new EventSource("/api/stream");
  for (const kind of ["proposed", "accepted", "declined", "expired", "checked_in", "released", "completed"]) {
    source.addEventListener(kind, (message) => {
      let event;
      try { event = JSON.parse(message.data); } catch (_) { return; }
      stream.prepend(streamLine(kind, event));
      while (stream.children.length > STREAM_ROWS_MAX) stream.lastElementChild.remove();
    });
  }
  const pinForm = byId("pin-form");
  pinForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(pinForm);
    const action = event.submitter ? event.submitter.value : "pin";
    const reply = await steer({ action, volunteer: String(data.get("volunteer")).trim(), task: String(data.get("task")).trim() }, "steer-result");
    if (reply.status !== 200) showFieldError(pinForm, reply.body && reply.body.error); else clearErrors(pinForm);
  });
  const weightForm = byId("weight-form");
  weightForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(weightForm);
    const reply = await steer({
      action: "weight",
      collective: String(data.get("collective")).trim() || null,
      tag: String(data.get("tag")).trim() || null,
      factor: numberOr(String(data.get("factor")), null),
    }, "steer-result");
    if (reply.status !== 200) showFieldError(weightForm, reply.body && reply.body.error); else clearErrors(weightForm);
  });
  const linkForm = byId("link-form");
  linkForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(linkForm);
    const reply = await api("POST", "/api/links", { role: String(data.get("role")), id: String(data.get("id")).trim() });
    if (reply.status === 200) {
      clearErrors(linkForm);
      const box = byId("link-result");
      box.hidden = false;
      box.className = "notice";
      box.replaceChildren("Send this link: ", el("a", { href: reply.body.link }, reply.body.link));
    } else {
      showFieldError(linkForm, reply.body && reply.body.error);
      notice("link-result", refusalText(reply), true);
    }
  });
  let drawn = 0;
  follow("/api/view/coordinator", (view) => {
    drawn += 1;
    const stat = (label, value) => el("div", { class: "stat" }, el("b", {}, value), label);
    const live = view.assignments.length;
    byId("stats").replaceChildren(
      stat("impact delivered", view.impact_delivered.toFixed(0)),
      stat("tasks done", view.tasks_delivered),
      stat("active volunteers", view.volunteers_active),
      stat("idle volunteers", view.idle_volunteers.length),
      stat("live assignments", live),
      stat("to recruit", view.shortages.reduce((sum, row) => sum + row.recruit, 0)));
    for (const chart of ["impact", "hours", "unmet"]) byId("chart-" + chart).src = "/api/charts/" + chart + ".svg?v=" + drawn;
    byId("assignments").replaceChildren(...(live ? view.assignments.map((row) => el("li", { "data-volunteer": row.volunteer, "data-task": row.task, "data-state": row.state },
      el("b", {}, row.volunteer), " → ", row.title, " ", badge(row.state),
      el("span", { class: "muted" }, " " + row.collective + ", " + when(row.at)),
      whyDetails(row.why), steerButtons(row.volunteer, row.task))) : [el("li", { class: "muted" }, "none yet")]));
    byId("needs").replaceChildren(...(view.needs.length ? view.needs.map((need) => needCard(need, false)) : [el("p", { class: "muted" }, "No open needs.")]));
    byId("shortages").replaceChildren(table(["skill", "where", "open slots", "idle who could", "recruit"],
      view.shortages.map((row) => [row.skill, row.region || "remote", row.people_needed, row.people_idle, el("b", {}, row.recruit)])));
    const steering = view.steering;
    const standing = [
      ...steering.weights.map((weight) => el("li", { "data-weight": weight.factor }, "impact ×" + weight.factor + " for " + (weight.collective || "every collective") + (weight.tag ? ", tag " + weight.tag : ""))),
      ...steering.pinned.map((pair) => el("li", { "data-pinned": pair.task }, "pinned " + pair.volunteer + " → " + pair.task)),
      ...steering.vetoed.map((pair) => el("li", { "data-vetoed": pair.task }, "vetoed " + pair.volunteer + " → " + pair.task)),
    ];
    byId("steering").replaceChildren(...(standing.length ? standing : [el("li", { class: "muted" }, "no weights, pins or vetoes")]));
    byId("idle").replaceChildren(table(["id", "name", "contact", "skills", "region", "until"],
      view.idle_volunteers.map((person) => [person.id, person.name || "", person.contact || "",
        Object.entries(person.skills).map(([name, level]) => name + ":" + level).join(", "), person.region || "remote", when(person.available_until)])));
  });
}

// ---------------------------------------------------------------- vetter

async function vetter() {
  const me = await showWho();
  const form = byId("vet-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const note = String(data.get("note")).trim();
    const body = {
      volunteer: String(data.get("volunteer")).trim(),
      trust: Number(data.get("trust")),
      vetter: me ? me.id : "",
      note: note || null,
    };
    const reply = await api("POST", "/api/vet", body);
    if (reply.status === 200) {
      clearErrors(form);
      notice("vet-result", "Done: " + body.volunteer + " is now tier " + body.trust + ".");
    } else {
      showFieldError(form, reply.body && reply.body.error);
      notice("vet-result", refusalText(reply), true);
    }
  });
}

const pages = { landing, volunteer, collective, coordinator, vetter };
document.addEventListener("DOMContentLoaded", () => {
  const page = pages[document.body.dataset.page];
  if (page) page();
});

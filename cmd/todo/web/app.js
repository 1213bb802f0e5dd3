// The todo page: the lists, a day's entries, add, edit and delete, over
// the server's JSON API. Plain JavaScript, no build step, no dependency.
//
// Text from the server (list names, titles, error reasons) is only ever
// written with textContent, never parsed as HTML. The view (list and day)
// lives in the URL's fragment, #list=bob&date=2013-12-19, so that a reload
// or a bookmark shows the same day.
//
// A server that needs a token (todo serve -tokens) answers 401: the page
// then asks for the token, once, and posts it to /session, which checks
// it and sets it in a cookie no script can read (HttpOnly, SameSite=Strict)
// that the browser sends from then on. The page never keeps the token
// itself: not in storage, not in a variable, not in a cookie it can read.
//
// The page is live: it reads a day of the list with the list's revision,
// then follows the list's changes from that revision (GET
// /lists/{list}/events, server-sent events, through an EventSource), so
// that what another tab, the command line or any client adds, edits or
// deletes shows as it is made. The EventSource reconnects by itself (after
// a restart of the server, say), resuming after the last change it got;
// when the server no longer keeps the changes after it, the page reads
// the day again and follows from there.

const $ = (id) => document.getElementById(id);

// How many times a failed request is tried in all, when it failed in a way
// a retry may cure (no answer, or 503), and the longest wait between tries.
const attempts = 3;
const maxRetryWait = 5000;

const view = { list: "", date: "" };

// APIError is a failed request: the server's one-line reason, and the
// input it concerns when the server names it ({"error":..., "field":...}).
class APIError extends Error {
  constructor(status, message, field) {
    super(message);
    this.status = status;
    this.field = field || "";
  }
}

function pad(n) {
  return String(n).padStart(2, "0");
}

// today is the local date, as a date input writes it.
function today() {
  const d = new Date();
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

// newKey returns a fresh Idempotency-Key. crypto.randomUUID exists only in
// secure contexts (https, or the loopback address); getRandomValues
// exists everywhere.
function newKey() {
  if (crypto.randomUUID) {
    return crypto.randomUUID();
  }
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// api sends a request to the JSON API and returns its parsed answer (null
// for 204). A write carries key as its Idempotency-Key, the same on each
// try, so that the server applies it once however often it is sent. A
// request is tried again when no answer came or the answer was 503.
async function api(method, path, body, key) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
  }
  if (key) {
    headers["Idempotency-Key"] = key;
  }
  for (let attempt = 1; ; attempt++) {
    let resp;
    try {
      resp = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
        credentials: "same-origin",
      });
    } catch (e) {
      if (attempt < attempts) {
        say("No answer from the server; trying again…");
        await sleep(1000);
        continue;
      }
      throw new APIError(0, `no answer from the server (${e.message})`);
    }
    if (resp.status === 503 && attempt < attempts) {
      const after = Number(resp.headers.get("Retry-After"));
      say("The server is busy; trying again…");
      await sleep(Number.isFinite(after) && after >= 0 ? Math.min(after * 1000, maxRetryWait) : 1000);
      continue;
    }
    if (resp.status === 204) {
      return null;
    }
    if (resp.status === 401) {
      needSignIn(signedIn ? "The server no longer takes your token: sign in again." : "");
      throw new APIError(401, "sign in to go on");
    }
    const text = await resp.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!resp.ok) {
      const reason = data && typeof data.error === "string" ? data.error : `${resp.status} ${resp.statusText}`.trim();
      const field = data && typeof data.field === "string" ? data.field : "";
      throw new APIError(resp.status, reason, field);
    }
    return data;
  }
}

// nextPath returns the request for the page after the one path answered,
// from its "next": a path or URL of this server, or a cursor to pass as
// "after".
function nextPath(path, next) {
  if (next === undefined || next === null || next === "") {
    return "";
  }
  const s = String(next);
  if (s.startsWith("/") || /^https?:/i.test(s)) {
    const u = new URL(s, location.href);
    return u.origin === location.origin ? u.pathname + u.search : "";
  }
  const u = new URL(path, location.href);
  u.searchParams.set("after", s);
  return u.pathname + u.search;
}

function listPath(list) {
  return `/lists/${encodeURIComponent(list)}/entries`;
}

// Messages.

// say announces a status to everyone: it is shown, and read by screen
// readers (the element is a polite live region).
function say(text) {
  $("status").textContent = text;
}

// showFieldError shows message next to input, in the element that
// describes it (its aria-describedby), and marks the input invalid. A
// reason of the API, written for programs (`missing or empty "title"`),
// is said as a person would ("Write a title."); one the page does not know
// is shown as it came.
function showFieldError(input, message) {
  const count = (n) => Number(n).toLocaleString("en");
  const said = [
    [/^missing or empty "title"$|^invalid title: empty$/, () => "Write a title."],
    [/^invalid title: nothing but spaces/, () => "Write a title: spaces alone do not make one."],
    [/^(?:invalid title: |title is )\d+ bytes, more than (\d+)$/,
      (m) => `Shorten the title: it may be ${count(m[1])} bytes long at most (a letter takes one or two, an emoji four).`],
    [/^invalid title: contains the control character/, () => "Keep the title on one line, without control characters."],
    [/^invalid title: not valid UTF-8$/, () => "The title holds characters that cannot be read: type it again."],
    [/^missing or empty "date"$/, () => "Choose a day."],
    [/^invalid date .*: no such day in the calendar$/, () => "That day is not in the calendar: choose another."],
    [/^invalid date /, () => "Choose a day, written like 2013-12-19."],
    [/^invalid list name: empty$/, () => "Name a list: an existing one, or a new one to add entries to."],
    [/^invalid list name: \d+ bytes, more than (\d+)$/, (m) => `Shorten the list's name: it may be ${count(m[1])} bytes long at most.`],
    [/^invalid list name .*: contains a NUL byte$/, () => "Take the NUL character out of the list's name."],
    [/^invalid list name .*: not valid UTF-8$/, () => "The list's name holds characters that cannot be read: type it again."],
  ];
  for (const [pattern, words] of said) {
    const m = pattern.exec(message);
    if (m) {
      message = words(m);
      break;
    }
  }
  const slot = $(input.getAttribute("aria-describedby"));
  slot.textContent = message;
  slot.hidden = false;
  input.setAttribute("aria-invalid", "true");
}

// clearErrors hides the errors shown in scope (a form, or the whole
// document), in the list and day picker, and in the general error area.
function clearErrors(scope) {
  for (const s of new Set([scope, $("pick")])) {
    for (const input of s.querySelectorAll("[aria-invalid]")) {
      input.removeAttribute("aria-invalid");
    }
    for (const slot of s.querySelectorAll(".error")) {
      slot.textContent = "";
      slot.hidden = true;
    }
  }
  $("error").textContent = "";
  $("error").hidden = true;
}

// showError shows a failed request's reason next to the input it concerns,
// among inputs (by field name), and moves the focus there; or, when the
// server named no input or one not on the form, in the general error area.
function showError(err, inputs) {
  if (err instanceof APIError && err.status === 401) {
    return; // the sign-in form says it
  }
  const input = err instanceof APIError && err.field ? inputs[err.field] : undefined;
  say("");
  if (input) {
    showFieldError(input, err.message);
    input.focus();
    return;
  }
  $("error").textContent = err.message;
  $("error").hidden = false;
}

// The view.

function readHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  view.list = p.get("list") || "";
  view.date = p.get("date") || today();
  $("list").value = view.list;
  $("date").value = view.date;
}

function hashOf(list, date) {
  const p = new URLSearchParams();
  if (list) {
    p.set("list", list);
  }
  p.set("date", date);
  return "#" + p.toString();
}

// show moves the view to list and date; the hashchange that follows loads
// it (and a reload shows it again).
function show(list, date) {
  const hash = hashOf(list, date);
  if (location.hash === hash) {
    load();
  } else {
    location.hash = hash;
  }
}

// Lists.

let listsNext = "";

async function loadLists() {
  const ul = $("lists");
  const names = $("list-names");
  try {
    const data = await api("GET", "/lists");
    ul.replaceChildren();
    names.replaceChildren();
    appendLists(data.lists || []);
    listsNext = nextPath("/lists", data.next);
  } catch (err) {
    showError(err, {});
    listsNext = "";
  }
  $("no-lists").hidden = ul.children.length > 0;
  $("lists-more").hidden = !listsNext;
}

function appendLists(lists) {
  for (const name of lists) {
    const a = document.createElement("a");
    a.textContent = name;
    a.href = hashOf(name, view.date);
    if (name === view.list) {
      a.setAttribute("aria-current", "page");
    }
    const li = document.createElement("li");
    li.append(a);
    $("lists").append(li);
    const option = document.createElement("option");
    option.value = name;
    $("list-names").append(option);
  }
}

async function moreLists() {
  try {
    const data = await api("GET", listsNext);
    appendLists(data.lists || []);
    listsNext = nextPath(listsNext, data.next);
  } catch (err) {
    showError(err, {});
  }
  $("lists-more").hidden = !listsNext;
}

function markCurrentList() {
  for (const a of $("lists").querySelectorAll("a")) {
    a.href = hashOf(a.textContent, view.date);
    if (a.textContent === view.list) {
      a.setAttribute("aria-current", "page");
    } else {
      a.removeAttribute("aria-current");
    }
  }
}

// Entries.

let entriesNext = "";

// loads counts the reads of the entries begun: a read answered after a
// later one began is dropped, whatever order the answers come in.
let loads = 0;

function entriesPath() {
  return `${listPath(view.list)}?date=${encodeURIComponent(view.date)}`;
}

async function loadEntries() {
  const ul = $("entries");
  $("entries-heading").textContent = view.list ? `${view.list}, ${view.date}` : "Entries";
  $("add").hidden = !view.list;
  if (!view.list) {
    stopFollowing();
    ul.replaceChildren();
    $("no-entries").hidden = true;
    $("entries-more").hidden = true;
    return;
  }
  const mine = ++loads;
  live.reading++; // the changes that come meanwhile wait for the read
  try {
    const data = await api("GET", entriesPath());
    if (mine !== loads) {
      return; // a later read shows the list
    }
    ul.replaceChildren();
    appendEntries(data.entries || []);
    entriesNext = nextPath(entriesPath(), data.next);
    if (typeof data.revision === "number") {
      follow(view.list, data.revision);
    } else {
      stopFollowing(); // a server that does not tell revisions has no events
    }
  } catch (err) {
    if (mine !== loads) {
      return;
    }
    ul.replaceChildren();
    entriesNext = "";
    showError(err, { list: $("list"), date: $("date") });
  } finally {
    live.reading--;
    if (live.reading === 0) {
      const waiting = live.waiting;
      live.waiting = [];
      for (const change of waiting) {
        applyChange(change);
      }
    }
  }
  $("no-entries").hidden = ul.children.length > 0;
  $("entries-more").hidden = !entriesNext;
}

async function moreEntries() {
  try {
    const data = await api("GET", entriesNext);
    appendEntries(data.entries || []);
    entriesNext = nextPath(entriesNext, data.next);
  } catch (err) {
    showError(err, {});
  }
  $("entries-more").hidden = !entriesNext;
}

function appendEntries(entries) {
  for (const e of entries) {
    $("entries").append(entryRow(e));
  }
}

// entryRow is an entry as the list shows it: its title, its id, and the
// buttons that edit and delete it, named after it for screen readers.
function entryRow(e) {
  const li = $("entry-row").content.firstElementChild.cloneNode(true);
  li.dataset.id = e.id;
  li.entry = e;
  li.querySelector(".title").textContent = e.title;
  li.querySelector(".id").textContent = `#${e.id}`;
  li.querySelector(".edit").setAttribute("aria-label", `Edit “${e.title}”`);
  li.querySelector(".delete").setAttribute("aria-label", `Delete “${e.title}”`);
  li.querySelector(".edit").addEventListener("click", () => startEdit(li));
  li.querySelector(".delete").addEventListener("click", () => remove(li));
  return li;
}

async function load() {
  readHash();
  markCurrentList();
  await loadEntries();
}

// Live updates.

// live is the page's event stream: the list it follows, and the revision
// the entries shown stand at. Changes that come while the entries are
// being read wait for the read (reading counts those in flight), and are
// then applied if they are newer than what it read.
const live = { list: "", source: null, rev: 0, reading: 0, waiting: [], retry: 0 };

// follow follows the changes of list after revision rev, the revision of
// the entries just read: with the stream open on list already, it only
// notes rev; otherwise it opens one from rev.
function follow(list, rev) {
  live.rev = rev;
  if (live.source && live.list === list) {
    return;
  }
  stopFollowing();
  live.list = list;
  const source = new EventSource(`/lists/${encodeURIComponent(list)}/events?from=${rev}`);
  live.source = source;
  source.addEventListener("open", () => {
    document.body.dataset.live = "true";
  });
  source.addEventListener("message", (m) => {
    let change;
    try {
      change = JSON.parse(m.data);
    } catch {
      return;
    }
    if (live.reading > 0) {
      live.waiting.push(change);
    } else {
      applyChange(change);
    }
  });
  // The server no longer keeps the changes after the revision the stream
  // asked for: read the day again, and follow from there.
  source.addEventListener("gone", () => {
    stopFollowing();
    loadEntries();
  });
  source.addEventListener("error", () => {
    document.body.dataset.live = "false";
    if (source.readyState === EventSource.CLOSED) {
      // Refused (the server answered other than a stream), which the
      // EventSource does not retry: try again in a while, from a read.
      stopFollowing();
      live.retry = setTimeout(() => {
        if (view.list === list) {
          loadEntries();
        }
      }, 5000);
    }
  });
}

function stopFollowing() {
  clearTimeout(live.retry);
  if (live.source) {
    live.source.close();
  }
  live.source = null;
  live.list = "";
  document.body.dataset.live = "false";
}

// applyChange shows a change of the list followed, unless what is shown
// holds it already.
function applyChange(change) {
  if (typeof change.revision !== "number" || change.revision <= live.rev) {
    return;
  }
  live.rev = change.revision;
  const e = change.entry;
  const ul = $("entries");
  const row = ul.querySelector(`li[data-id="${Number(e.id)}"]`);
  if (change.kind === "deleted" || e.date !== view.date) {
    if (row) {
      removeRow(row, change.kind === "deleted" ? `“${row.entry.title}” was deleted.` : "");
    }
  } else if (row) {
    replaceRow(row, e);
  } else {
    insertRow(e);
  }
  $("no-entries").hidden = ul.children.length > 0;
}

// insertRow shows an entry in its place, by id, among those shown; one
// past them is left to the More button, if there are more.
function insertRow(e) {
  const ul = $("entries");
  const after = [...ul.children].find((li) => Number(li.dataset.id) > e.id);
  if (after) {
    after.before(entryRow(e));
  } else if (!entriesNext) {
    ul.append(entryRow(e));
  }
}

// replaceRow shows an entry's new date and title. A row being edited
// keeps its form, and Cancel brings the new row back.
function replaceRow(row, e) {
  const fresh = entryRow(e);
  if (row.original) {
    row.original = fresh;
    row.entry = e;
    return;
  }
  const focused = row.contains(document.activeElement) ? document.activeElement.className : "";
  row.replaceWith(fresh);
  if (focused) {
    const again = fresh.querySelector(`.${focused.split(" ")[0]}`);
    if (again) {
      again.focus();
    }
  }
}

// removeRow takes a row away, moving the focus, if it was in it, to the
// next row, or the one before, or the new entry's title; said is what the
// status says, if anything.
function removeRow(row, said) {
  if (row.contains(document.activeElement)) {
    const neighbour = row.nextElementSibling || row.previousElementSibling;
    const button = neighbour ? neighbour.querySelector("button") : null;
    (button || $("title")).focus();
  }
  row.remove();
  if (said && row.original) {
    say(said); // the entry being edited is gone
  }
}

// Add.

async function add(event) {
  event.preventDefault();
  const form = $("add");
  clearErrors(form);
  const title = $("title").value;
  const list = view.list;
  const date = view.date;
  if (form.getAttribute("aria-busy") === "true") {
    return;
  }
  form.setAttribute("aria-busy", "true");
  try {
    const e = await api("POST", listPath(list), { date, title }, newKey());
    $("title").value = "";
    say(`Added “${e.title}” to ${list} on ${e.date}.`);
    await Promise.all([loadEntries(), loadLists()]);
    $("title").focus();
  } catch (err) {
    showError(err, { title: $("title"), date: $("date"), list: $("list") });
  } finally {
    form.removeAttribute("aria-busy");
  }
}

// Edit.

function startEdit(li) {
  const e = li.entry;
  const row = $("entry-edit").content.firstElementChild.cloneNode(true);
  row.entry = e;
  row.dataset.id = e.id;
  row.original = li; // the row Cancel puts back; a change of the entry meanwhile replaces it
  const form = row.querySelector("form");
  form.setAttribute("aria-label", `Edit “${e.title}”`);
  const date = row.querySelector("input.date");
  const title = row.querySelector("input.title");
  for (const [input, label, error, name] of [
    [date, row.querySelector(".date-label"), row.querySelector(".date-error"), "date"],
    [title, row.querySelector(".title-label"), row.querySelector(".title-error"), "title"],
  ]) {
    input.id = `edit-${name}-${e.id}`;
    label.htmlFor = input.id;
    error.id = `${input.id}-error`;
    input.setAttribute("aria-describedby", error.id);
  }
  date.value = e.date;
  title.value = e.title;
  // Cancel puts the entry's row back, as it was (or as another client
  // changed it meanwhile), and the focus on its Edit button.
  const cancel = () => {
    row.replaceWith(row.original);
    row.original.querySelector(".edit").focus();
  };
  row.querySelector(".cancel").addEventListener("click", cancel);
  row.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape") {
      ev.preventDefault();
      cancel();
    }
  });
  form.addEventListener("submit", (ev) => save(ev, row, date, title));
  li.replaceWith(row);
  title.focus();
  title.select();
}

async function save(event, row, date, title) {
  event.preventDefault();
  const form = row.querySelector("form");
  clearErrors(form);
  if (form.getAttribute("aria-busy") === "true") {
    return;
  }
  form.setAttribute("aria-busy", "true");
  const e = row.entry;
  const list = view.list;
  try {
    const saved = await api("PATCH", `${listPath(list)}/${e.id}`, { date: date.value, title: title.value }, newKey());
    say(saved.date === view.date ? `Saved “${saved.title}”.` : `Saved “${saved.title}”, now on ${saved.date}.`);
    await loadEntries();
    const again = $("entries").querySelector(`li[data-id="${saved.id}"] .edit`);
    (again || $("entries-heading")).focus();
  } catch (err) {
    showError(err, { title, date, list: $("list") });
  } finally {
    form.removeAttribute("aria-busy");
  }
}

// Delete.

async function remove(li) {
  const e = li.entry;
  const list = view.list;
  clearErrors(document);
  // Where the focus goes once the row is gone: the next row, or the one
  // before, or the new entry's title.
  const neighbour = li.nextElementSibling || li.previousElementSibling;
  const neighbourID = neighbour ? neighbour.dataset.id : "";
  for (const b of li.querySelectorAll("button")) {
    b.disabled = true;
  }
  try {
    await api("DELETE", `${listPath(list)}/${e.id}`, undefined, newKey());
    say(`Deleted “${e.title}”.`);
    await loadEntries();
    const next = neighbourID ? $("entries").querySelector(`li[data-id="${neighbourID}"] .delete`) : null;
    (next || $("title")).focus();
  } catch (err) {
    for (const b of li.querySelectorAll("button")) {
      b.disabled = false;
    }
    showError(err, {});
  }
}

// Signing in and out.

// signedIn is whether the server named who the page is: it needs a token,
// and the cookie holds one it takes.
let signedIn = false;

// session asks the server who the page is signed in as: "open" when the
// server needs no token (it has no /session), "in" when the cookie holds
// a token it takes, "out" when it holds none.
async function session() {
  let resp;
  try {
    resp = await fetch("/session", { headers: { Accept: "application/json" }, cache: "no-store", credentials: "same-origin" });
  } catch {
    return "open"; // the lists' requests will say what is wrong
  }
  if (resp.status === 401) {
    return "out";
  }
  if (!resp.ok) {
    return "open";
  }
  const who = await resp.json();
  showAccount(who.name);
  return "in";
}

function showAccount(name) {
  signedIn = true;
  $("signed-in-as").textContent = `Signed in as ${name}`;
  $("account").hidden = false;
}

// needSignIn shows the sign-in form, with message (if any) as its error,
// in place of the lists.
function needSignIn(message) {
  stopFollowing();
  signedIn = false;
  $("account").hidden = true;
  $("app").hidden = true;
  $("sign-in").hidden = false;
  clearErrors($("sign-in"));
  if (message) {
    showFieldError($("token"), message);
  }
  $("token").focus();
}

async function signIn(event) {
  event.preventDefault();
  const form = $("sign-in");
  clearErrors(form);
  const token = $("token").value.trim();
  if (!token) {
    showFieldError($("token"), "Paste your token.");
    $("token").focus();
    return;
  }
  if (form.getAttribute("aria-busy") === "true") {
    return;
  }
  form.setAttribute("aria-busy", "true");
  try {
    let resp;
    try {
      resp = await fetch("/session", {
        method: "POST",
        headers: { Accept: "application/json", "Content-Type": "application/json" },
        body: JSON.stringify({ token }),
        cache: "no-store",
        credentials: "same-origin",
      });
    } catch (e) {
      showFieldError($("token"), `No answer from the server (${e.message}).`);
      return;
    }
    let data = null;
    try {
      data = await resp.json();
    } catch {
      data = null;
    }
    if (!resp.ok) {
      showFieldError($("token"), data && typeof data.error === "string" ? data.error : `${resp.status} ${resp.statusText}`);
      $("token").focus();
      return;
    }
    $("token").value = "";
    showAccount(data.name);
    form.hidden = true;
    $("app").hidden = false;
    say(`Signed in as ${data.name}.`);
    await Promise.all([loadLists(), load()]);
  } finally {
    form.removeAttribute("aria-busy");
  }
}

async function signOut() {
  try {
    await fetch("/session", { method: "DELETE", cache: "no-store", credentials: "same-origin" });
  } catch (e) {
    showError(new APIError(0, `no answer from the server (${e.message}): still signed in`), {});
    return;
  }
  stopFollowing();
  $("lists").replaceChildren();
  $("list-names").replaceChildren();
  $("entries").replaceChildren();
  needSignIn("");
  say("Signed out.");
}

// Start.

function start() {
  $("pick").addEventListener("submit", (event) => {
    event.preventDefault();
    clearErrors(document);
    const list = $("list").value;
    const date = $("date").value;
    if (!list) {
      showFieldError($("list"), "Name a list: an existing one, or a new one to add entries to.");
      $("list").focus();
      return;
    }
    if (!date) {
      showFieldError($("date"), "Choose a day.");
      $("date").focus();
      return;
    }
    show(list, date);
  });
  $("date").addEventListener("change", () => {
    if ($("date").value) {
      show(view.list, $("date").value);
    }
  });
  $("today").addEventListener("click", () => show(view.list, today()));
  $("add").addEventListener("submit", add);
  $("lists-more").addEventListener("click", moreLists);
  $("entries-more").addEventListener("click", moreEntries);
  // A new view reads the lists again too: another tab may have made one.
  window.addEventListener("hashchange", () => {
    clearErrors(document);
    Promise.all([load(), loadLists()]);
  });

  $("sign-in").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", signOut);

  readHash();
  session().then((state) => {
    if (state === "out") {
      needSignIn("");
      return undefined;
    }
    return loadLists().then(() => {
      // With no list chosen, show the first one there is.
      const first = $("lists").querySelector("a");
      if (!view.list && first) {
        history.replaceState(null, "", hashOf(first.textContent, view.date));
      }
      return load();
    });
  }).then(() => {
    document.body.dataset.ready = "true";
  });
}

start();

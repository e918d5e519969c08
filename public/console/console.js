// The stepwatch operator console: plain DOM over the documented HTTP API (/openapi.json), no build
// step. Everything the API returns is put on the page with textContent (never parsed as HTML), and
// the bearer token lives only in this tab's sessionStorage.

const TOKEN_KEY = "stepwatch.api_token";
const TERMINAL = ["completed", "failed", "cancelled", "expired"];
const PAGE = "20";
// Bumped by every render; a slow answer for a page the operator has left is dropped.
let renderToken = 0;

const main = /** @type {HTMLElement} */ (document.getElementById("main"));
const notice = /** @type {HTMLElement} */ (document.getElementById("notice"));
const forget = /** @type {HTMLButtonElement} */ (document.getElementById("forget"));
const openForm = /** @type {HTMLFormElement} */ (document.getElementById("open"));
const openInput = /** @type {HTMLInputElement} */ (document.getElementById("open-id"));

// Signed in: the token can be forgotten and ids opened; signed out, neither is offered.
const signedIn = (yes) => {
  forget.hidden = !yes;
  openForm.hidden = !yes;
};

/** An error answer of the API ({error:{code,message,issues?}}), or a network failure (status 0). */
class ApiError extends Error {
  constructor(status, code, message, issues) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.issues = issues ?? [];
  }
}

// ---- token ----------------------------------------------------------------------------------------

const getToken = () => sessionStorage.getItem(TOKEN_KEY);

function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
  signedIn(false);
}

/** Shows the token form; `reason` says why it is asked (again). */
function askToken(reason) {
  signedIn(false);
  renderToken += 1;
  const input = el("input", {
    id: "token",
    type: "password",
    autocomplete: "off",
    required: true,
    spellcheck: "false",
  });
  const form = el(
    "form",
    { "aria-label": "API token" },
    el("label", { for: "token" }, "Bearer token (API_TOKEN)", input),
    el("button", { type: "submit", class: "primary" }, "Use token"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = input.value.trim();
    if (!value) return;
    sessionStorage.setItem(TOKEN_KEY, value);
    signedIn(true);
    say("ok", "Token kept for this browser tab only.");
    route();
  });
  main.replaceChildren(
    el(
      "section",
      { class: "token" },
      el("h2", { tabindex: "-1" }, "Sign in"),
      el(
        "p",
        {},
        "The console calls the stepwatch API with its bearer token. It is kept in this tab's session storage only, never in a cookie, and forgotten when the tab closes.",
      ),
      reason ? el("p", { class: "error", role: "alert" }, reason) : null,
      form,
    ),
  );
  input.focus();
}

forget.addEventListener("click", () => {
  forgetToken();
  say("ok", "Token forgotten.");
  askToken();
});

// ---- API ----------------------------------------------------------------------------------------------

/** Calls the API; resolves to the JSON body (null for 204), rejects with an ApiError. */
async function api(method, path, body) {
  const token = getToken();
  if (!token) {
    askToken();
    throw new ApiError(401, "unauthorized", "no token");
  }
  const headers = { authorization: `Bearer ${token}`, accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      cache: "no-store",
      credentials: "omit",
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  } catch (error) {
    throw new ApiError(
      0,
      "network_error",
      `network error: ${error instanceof Error ? error.message : error}`,
    );
  }
  if (response.status === 204) return null;
  let json = null;
  try {
    json = await response.json();
  } catch {
    json = null;
  }
  if (response.ok) return json;
  const answer = json && typeof json === "object" ? json.error : undefined;
  const failure = new ApiError(
    response.status,
    answer?.code ?? "http_error",
    answer?.message ?? `HTTP ${response.status}`,
    answer?.issues,
  );
  if (response.status === 401) {
    forgetToken();
    askToken(`The API refused the token (${failure.message}). Enter it again.`);
  }
  throw failure;
}

const query = (params) => {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(name, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
};
const enc = encodeURIComponent;

// ---- DOM helpers ------------------------------------------------------------------------------------

/** An element with attributes and children; strings become text nodes, never markup. */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === undefined || value === null) continue;
    node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Number.POSITIVE_INFINITY)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

const link = (href, text) => el("a", { href }, text);
const stateTag = (state) => el("span", { class: `state state-${state}` }, state ?? "–");
const time = (seconds) =>
  typeof seconds === "number" && Number.isFinite(seconds)
    ? el(
        "time",
        { datetime: new Date(seconds * 1000).toISOString() },
        `${new Date(seconds * 1000).toISOString().slice(0, 19).replace("T", " ")}Z`,
      )
    : "–";
const dash = (value) => (value === null || value === undefined || value === "" ? "–" : String(value));

function table(headings, rows, empty = "Nothing here.") {
  if (rows.length === 0) return el("p", { class: "muted" }, empty);
  return el(
    "table",
    {},
    el(
      "thead",
      {},
      el(
        "tr",
        {},
        headings.map((h) => el("th", { scope: "col" }, h)),
      ),
    ),
    el(
      "tbody",
      {},
      rows.map((cells) =>
        el(
          "tr",
          {},
          cells.map((cell) =>
            el("td", cell?.cls ? { class: cell.cls } : {}, cell?.cls ? cell.content : cell),
          ),
        ),
      ),
    ),
  );
}
const actions = (...buttons) => ({ cls: "actions", content: buttons });

function facts(pairs) {
  return el(
    "dl",
    { class: "facts" },
    // A null pair is a fact this object does not have (no error, no incomplete reason).
    pairs.filter(Boolean).map(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]),
  );
}

/** Answers an action visibly: `kind` is "ok" or "error". */
function say(kind, message) {
  notice.hidden = false;
  notice.className = `notice ${kind}`;
  notice.setAttribute("role", kind === "error" ? "alert" : "status");
  notice.textContent = message;
}

function describe(error) {
  if (!(error instanceof ApiError)) return error instanceof Error ? error.message : String(error);
  const issues = error.issues.map((issue) => `${issue.path || "(body)"}: ${issue.message}`);
  return [error.message, ...issues].join(" — ");
}

/** A button running `task`; its answer (or the API's error message) is shown in the notice. */
function action(label, task, attrs = {}) {
  const button = el("button", { type: "button", ...attrs }, label);
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const message = await task();
      if (message) say("ok", message);
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 401)) say("error", describe(error));
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

// ---- routing ----------------------------------------------------------------------------------------

/** `#/steps?status=failed` → { path: ["steps"], params }. */
function parseHash() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [path = "", search = ""] = hash.split("?", 2);
  return {
    path: path.split("/").filter(Boolean).map(decodeURIComponent),
    params: new URLSearchParams(search),
  };
}

const setHash = (path, params = {}) => {
  const hash = `#/${path}${query(params)}`;
  // The same address fires no hashchange: render again (a filter applied twice, a cleared form).
  if (location.hash === hash) route();
  else location.hash = hash;
};

/**
 * The address that shows `id`, told by its prefix: OpenAI's `resp_` (a response) and `sess_` (an
 * agent session), a run's `run_`; anything else is taken for a step's id.
 */
function pageOf(id) {
  if (id.startsWith("resp_")) return `responses/${enc(id)}`;
  if (id.startsWith("sess_")) return `sessions/${enc(id)}`;
  if (id.startsWith("run_")) return `runs/${enc(id)}`;
  return `steps/${enc(id)}`;
}

openForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const id = openInput.value.trim();
  if (!id) return;
  openInput.value = "";
  setHash(pageOf(id));
});

async function route() {
  if (!getToken()) {
    askToken();
    return;
  }
  signedIn(true);
  const { path, params } = parseHash();
  const [section = "steps", id] = path;
  // A response is a run too (SPEC §9), and a session a thread: their own pages show more (events,
  // hydration, the raw object), so a run address of one opens that page instead.
  if (section === "runs" && id && pageOf(id) !== `runs/${enc(id)}`) {
    history.replaceState(null, "", `#/${pageOf(id)}`);
    return route();
  }
  const current = ++renderToken;
  const shown = location.hash;
  for (const a of document.querySelectorAll(".top nav a")) {
    if (a.getAttribute("href") === `#/${section}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const view = {
    steps: id ? () => stepView(id) : () => stepsView(params),
    runs: () => runView(id ?? "", params),
    responses: () => responseView(id ?? "", params),
    sessions: () => sessionView(id ?? ""),
    sources: () => sourcesView(),
    deliveries: () => deliveriesView(params),
    sinks: () => sinksView(),
    quarantine: id ? () => quarantineItemView(id) : () => quarantineView(params),
  }[section];
  const isCurrent = () => current === renderToken;
  main.setAttribute("aria-busy", "true");
  try {
    const content = view
      ? await view()
      : [el("h2", { tabindex: "-1" }, "Not found"), el("p", {}, "No such page.")];
    if (!isCurrent()) return;
    main.replaceChildren(...content.flat(Number.POSITIVE_INFINITY).filter((node) => node != null));
  } catch (error) {
    if (!isCurrent() || (error instanceof ApiError && error.status === 401)) return;
    main.replaceChildren(
      el("h2", { tabindex: "-1" }, "Could not load this page"),
      el("p", { class: "error", role: "alert" }, describe(error)),
    );
  } finally {
    if (isCurrent()) {
      main.removeAttribute("aria-busy");
      // Which address the content shows (for scripts and tests driving the page).
      main.dataset.shows = shown;
    }
  }
  if (isCurrent()) main.querySelector("h2")?.focus();
}

window.addEventListener("hashchange", route);

// ---- steps ------------------------------------------------------------------------------------------

// datetime-local values are read and written as UTC, like every time the console shows.
const toInputTime = (seconds) => (seconds ? new Date(Number(seconds) * 1000).toISOString().slice(0, 16) : "");
// An input names a minute: "since" is its first second, "until" its last.
const fromInputTime = (value, end = false) =>
  value ? String(Math.floor(Date.parse(`${value}:00Z`) / 1000) + (end ? 59 : 0)) : "";

async function stepsView(params) {
  const filters = {
    status: params.get("status") ?? "",
    assistant_id: params.get("assistant_id") ?? "",
    since: params.get("since") ?? "",
    until: params.get("until") ?? "",
    limit: params.get("limit") ?? "",
  };
  const page = await api(
    "GET",
    `/v1/run-steps${query({ ...filters, limit: filters.limit || PAGE, cursor: params.get("cursor") })}`,
  );
  const status = el(
    "select",
    { id: "f-status", name: "status" },
    el("option", { value: "" }, "any terminal"),
    TERMINAL.map((s) => el("option", { value: s, selected: filters.status === s }, s)),
  );
  const assistant = el("input", {
    id: "f-assistant",
    name: "assistant_id",
    value: filters.assistant_id,
    placeholder: "asst_…",
  });
  const since = el("input", { id: "f-since", type: "datetime-local", value: toInputTime(filters.since) });
  const until = el("input", { id: "f-until", type: "datetime-local", value: toInputTime(filters.until) });
  const form = el(
    "form",
    { class: "filters", "aria-label": "Step filters" },
    el("label", { for: "f-status" }, "Status", status),
    el("label", { for: "f-assistant" }, "Assistant", assistant),
    el("label", { for: "f-since" }, "Since (UTC)", since),
    el("label", { for: "f-until" }, "Until (UTC)", until),
    el("button", { type: "submit", class: "primary" }, "Apply"),
    el("button", { type: "reset" }, "Clear"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    setHash("steps", {
      status: status.value,
      assistant_id: assistant.value.trim(),
      limit: filters.limit,
      since: fromInputTime(since.value),
      until: fromInputTime(until.value, true),
    });
  });
  form.addEventListener("reset", (event) => {
    event.preventDefault();
    setHash("steps");
  });
  return [
    el("h2", { tabindex: "-1" }, "Recent steps"),
    el("p", { class: "muted" }, "Terminal steps across runs, newest first."),
    form,
    stepTable(page.data, true),
    pager("steps", filters, page.next_cursor, params.get("cursor")),
  ];
}

function stepTable(steps, withRun) {
  return table(
    ["Updated", "Step", "Status", ...(withRun ? ["Run"] : []), "Assistant", "Type", "Error"],
    steps.map((s) => [
      time(s.updated_at),
      link(`#/steps/${enc(s.id)}`, s.id),
      stateTag(s.status),
      ...(withRun ? [link(`#/runs/${enc(s.run_id)}`, s.run_id)] : []),
      dash(s.assistant_id),
      dash(s.type),
      s.last_error ? `${s.last_error.code}: ${s.last_error.message}` : "–",
    ]),
    "No steps match.",
  );
}

function pager(path, params, nextCursor, cursor) {
  return el(
    "nav",
    { class: "pager", "aria-label": "Pages" },
    cursor ? link(`#/${path}${query(params)}`, "⟵ First page") : null,
    nextCursor ? link(`#/${path}${query({ ...params, cursor: nextCursor })}`, "Next page ⟶") : null,
  );
}

async function runView(runId, params) {
  const [rollup, page] = await Promise.all([
    api("GET", `/v1/runs/${enc(runId)}`),
    api("GET", `/v1/runs/${enc(runId)}/steps${query({ limit: "100", cursor: params.get("cursor") })}`),
  ]);
  const counts = rollup.steps;
  return [
    el("h2", { tabindex: "-1" }, `Run ${rollup.run_id}`),
    facts([
      ["Thread", rollup.thread_id],
      ["Assistant", rollup.assistant_id],
      [
        "Steps",
        `${counts.total} total: ${counts.completed} completed, ${counts.failed} failed, ${counts.in_progress} in progress, ${counts.cancelled} cancelled, ${counts.expired} expired`,
      ],
      [
        "Tokens",
        `${rollup.usage.total_tokens} (prompt ${rollup.usage.prompt_tokens}, completion ${rollup.usage.completion_tokens})`,
      ],
      ["First created", time(rollup.first_created_at)],
      ["Last updated", time(rollup.last_updated_at)],
    ]),
    el("h3", {}, "Steps in order"),
    stepTable(page.data, false),
    pager(`runs/${enc(runId)}`, {}, page.next_cursor, params.get("cursor")),
  ];
}

async function stepView(stepId) {
  const step = await api("GET", `/v1/run-steps/${enc(stepId)}`);
  const { deliveries, received_at, updated_at, conflicts, ...snapshot } = step;
  return [
    el("h2", { tabindex: "-1" }, `Step ${step.id}`),
    facts([
      ["Status", stateTag(step.status)],
      ["Run", link(`#/runs/${enc(step.run_id)}`, step.run_id)],
      ["Assistant", dash(step.assistant_id)],
      ["Received", time(received_at)],
      ["Updated", time(updated_at)],
      ["Conflicting statuses ignored", String(conflicts)],
    ]),
    el("h3", {}, "Deliveries"),
    deliveryTable(deliveries, { withSubject: false, withLog: true }),
    el("h3", {}, "Snapshot"),
    el(
      "pre",
      { class: "snapshot", tabindex: "0", "aria-label": "Step snapshot JSON" },
      JSON.stringify(snapshot, null, 2),
    ),
  ];
}

// ---- responses and agent sessions (SPEC §9) -------------------------------------------------------

const tokens = (usage, input = "input_tokens", output = "output_tokens") =>
  usage && typeof usage === "object"
    ? `${dash(usage.total_tokens)} (input ${dash(usage[input])}, output ${dash(usage[output])})`
    : "–";

const errorText = (error) =>
  error === null || error === undefined || error === ""
    ? null
    : typeof error === "object"
      ? `${dash(error.code)}: ${dash(error.message)}`
      : String(error);

/** The OpenAI events of a response or session and where each one's hydration stands. */
function eventTable(events) {
  return table(
    ["Event", "Type", "Hydration", "Attempts", "Last error", "Received", "Hydrated", "Next attempt"],
    events.map((e) => [
      el("span", { class: "mono" }, e.id),
      e.type,
      stateTag(e.hydration),
      String(e.attempts),
      dash(e.last_error),
      time(e.received_at),
      time(e.hydrated_at),
      time(e.next_attempt_at),
    ]),
    "No events.",
  );
}

/** The raw object as OpenAI's API answered it, without what stepwatch adds. */
function rawObject(stored, label) {
  const { events, deliveries, received_at, updated_at, hydrated_at, ...raw } = stored;
  return el("pre", { class: "snapshot", tabindex: "0", "aria-label": label }, JSON.stringify(raw, null, 2));
}

async function responseView(id, params) {
  const [r, page] = await Promise.all([
    api("GET", `/v1/responses/${enc(id)}`),
    api("GET", `/v1/runs/${enc(id)}/steps${query({ limit: "100", cursor: params.get("cursor") })}`),
  ]);
  const error = errorText(r.error);
  const incomplete = r.incomplete_details?.reason;
  return [
    el("h2", { tabindex: "-1" }, `Response ${r.id}`),
    facts([
      ["Status", stateTag(r.status)],
      ["Model", dash(r.model)],
      [
        "Prompt",
        r.prompt?.id ? `${r.prompt.id}${r.prompt.version ? ` (version ${r.prompt.version})` : ""}` : "–",
      ],
      error ? ["Error", error] : null,
      incomplete ? ["Incomplete reason", String(incomplete)] : null,
      ["Tokens", tokens(r.usage)],
      ["Conversation", dash(r.conversation?.id)],
      ["Created", time(r.created_at)],
      ["Received", time(r.received_at)],
      ["Updated", time(r.updated_at)],
      ["Hydrated", time(r.hydrated_at)],
    ]),
    el("h3", {}, "Events"),
    eventTable(r.events),
    el("h3", {}, "Deliveries"),
    deliveryTable(r.deliveries, { withSubject: false, withLog: true }),
    el("h3", {}, "Steps (its output items)"),
    table(
      ["#", "Step", "Type", "Status", "Error"],
      page.data.map((s) => [
        String(s.position ?? "–"),
        el("span", { class: "mono" }, s.id),
        dash(s.type),
        stateTag(s.status),
        s.last_error ? `${s.last_error.code}: ${s.last_error.message}` : "–",
      ]),
      "No output item is a step yet.",
    ),
    pager(`responses/${enc(id)}`, {}, page.next_cursor, params.get("cursor")),
    el("h3", {}, "Response object"),
    rawObject(r, "Response JSON"),
  ];
}

// What a required action asks, in a few words: the function, server or origin concerned.
function actionText(action) {
  if (!action || typeof action !== "object") return dash(action);
  const request = action.request && typeof action.request === "object" ? action.request : {};
  const detail = action.function?.name ?? action.name ?? request.name ?? request.origin ?? request.type;
  return detail ? `${dash(action.type)}: ${detail}` : dash(action.type);
}

async function sessionView(id) {
  const s = await api("GET", `/v1/agent-sessions/${enc(id)}`);
  const agent = s.agent && typeof s.agent === "object" ? s.agent : {};
  const required = Array.isArray(s.required_actions) ? s.required_actions : [];
  const error = errorText(s.error);
  return [
    el("h2", { tabindex: "-1" }, `Agent session ${s.id}`),
    facts([
      ["Status", stateTag(s.status)],
      ["Agent", agent.name ? `${agent.name} (${dash(agent.id)})` : dash(agent.id)],
      ["Model", dash(agent.model)],
      [
        "Required action",
        required.length
          ? el(
              "ul",
              { class: "plain" },
              required.map((a) => el("li", {}, actionText(a))),
            )
          : "–",
      ],
      error ? ["Error", error] : null,
      ["Tokens", tokens(s.usage)],
      ["Last active", time(s.last_active_at)],
      ["Received", time(s.received_at)],
      ["Updated", time(s.updated_at)],
      ["Hydrated", time(s.hydrated_at)],
    ]),
    el("h3", {}, "Events"),
    eventTable(s.events),
    el(
      "p",
      { class: "muted" },
      "Each event owes its own notifications; they are listed under ",
      link("#/deliveries", "Deliveries"),
      ".",
    ),
    el("h3", {}, "Session object"),
    rawObject(s, "Session JSON"),
  ];
}

async function sourcesView() {
  let sources;
  try {
    sources = await api("GET", "/v1/sources");
  } catch (error) {
    // Without OPENAI_WEBHOOK_SECRET the server has no live producer and no /v1/sources.
    if (!(error instanceof ApiError && error.status === 404)) throw error;
    sources = { data: [{ name: "openai", state: "unconfigured", unmounted: true }] };
  }
  return [
    el("h2", { tabindex: "-1" }, "Sources"),
    el(
      "p",
      { class: "muted" },
      "Live producers: whether their API answers stepwatch's fetches, and which events wait to be hydrated.",
    ),
    el(
      "p",
      {},
      action("Refresh", async () => {
        await route();
        return "";
      }),
    ),
    table(
      ["Producer", "State", "Last success", "Last failure", "Pending hydrations", "Oldest pending"],
      sources.data.map((p) => [
        p.name,
        [
          stateTag(p.state),
          p.unmounted
            ? el("div", { class: "muted" }, "Not configured on this server (OPENAI_WEBHOOK_SECRET).")
            : null,
        ],
        time(p.last_success_at),
        p.last_failure ? [time(p.last_failure.at), el("div", { class: "muted" }, p.last_failure.error)] : "–",
        p.unmounted ? "–" : String(p.pending_hydrations),
        p.oldest_pending_age_s === null || p.oldest_pending_age_s === undefined
          ? "–"
          : `${p.oldest_pending_age_s} s`,
      ]),
      "No live producer.",
    ),
  ];
}

// ---- deliveries -------------------------------------------------------------------------------------

/**
 * What a delivery is about, linked to its page: a step, a response, or the agent session whose
 * event owes it (its subject id is that event's; the session is its run). A delivery of an older
 * server without `subject` is a step's.
 */
function subjectOf(d) {
  const subject = d.subject ?? { kind: "run_step", id: d.step_id };
  if (subject.kind === "response") {
    return [el("span", { class: "muted" }, "response "), link(`#/responses/${enc(subject.id)}`, subject.id)];
  }
  if (subject.kind === "agent_session") {
    return [el("span", { class: "muted" }, "session "), link(`#/sessions/${enc(d.run_id)}`, d.run_id)];
  }
  return subject.id ? link(`#/steps/${enc(subject.id)}`, subject.id) : "–";
}

function deliveryTable(deliveries, { withSubject, withLog }) {
  const rows = [];
  for (const d of deliveries) {
    rows.push([
      el("span", { class: "mono" }, d.id),
      ...(withSubject ? [subjectOf(d)] : []),
      d.sink,
      d.event,
      stateTag(d.state),
      String(d.attempts),
      dash(d.last_error),
      time(d.next_attempt_at),
      deliveryActions(d),
    ]);
    if (withLog && d.recent_attempts.length > 0) {
      rows.push([
        {
          cls: "log",
          content: [
            el("span", { class: "muted" }, `Attempt log of ${d.id}`),
            table(
              ["#", "At", "Status", "Latency", "Error"],
              d.recent_attempts.map((a) => [
                String(a.attempt),
                time(a.at),
                a.status === null ? "no answer" : String(a.status),
                `${a.latency_ms} ms`,
                dash(a.error),
              ]),
            ),
          ],
        },
      ]);
    }
  }
  const headings = [
    "Delivery",
    ...(withSubject ? ["Subject"] : []),
    "Sink",
    "Event",
    "State",
    "Attempts",
    "Last error",
    "Next attempt",
    "Actions",
  ];
  const node = table(headings, rows, "No deliveries.");
  // Attempt log rows span the whole table.
  for (const cell of node.querySelectorAll("td.log")) cell.setAttribute("colspan", String(headings.length));
  return node;
}

function deliveryActions(d) {
  const after = (verb) => async () => {
    const result = await api("POST", `/v1/deliveries/${enc(d.id)}/${verb}`);
    await route();
    const how = result.state === "delivered" ? "delivered" : `now ${result.state}`;
    const why = result.last_error ? ` (${result.last_error})` : "";
    return `${verb === "retry" ? "Retried" : "Resent"} ${result.id}: ${how} after attempt ${result.attempts}${why}.`;
  };
  return actions(
    d.state === "dead" ? action("Retry now", after("retry"), { "aria-label": `Retry ${d.id} now` }) : null,
    d.state === "delivered" ? action("Resend", after("resend"), { "aria-label": `Resend ${d.id}` }) : null,
  );
}

async function deliveriesView(params) {
  const state = params.get("state") === "pending" ? "pending" : "dead";
  const sink = params.get("sink") ?? "";
  const [page, sinks] = await Promise.all([
    api("GET", `/v1/deliveries${query({ state, sink, limit: PAGE, cursor: params.get("cursor") })}`),
    api("GET", "/v1/sinks"),
  ]);
  const names = sinks.data.map((s) => s.name);
  const stateSelect = el(
    "select",
    { id: "d-state" },
    ["dead", "pending"].map((s) => el("option", { value: s, selected: s === state }, s)),
  );
  const sinkSelect = el(
    "select",
    { id: "d-sink" },
    el("option", { value: "" }, "every sink"),
    names.map((n) => el("option", { value: n, selected: n === sink }, n)),
  );
  const filters = el(
    "form",
    { class: "filters", "aria-label": "Delivery filters" },
    el("label", { for: "d-state" }, "State", stateSelect),
    el("label", { for: "d-sink" }, "Sink", sinkSelect),
    el("button", { type: "submit", class: "primary" }, "Show"),
  );
  filters.addEventListener("submit", (event) => {
    event.preventDefault();
    setHash("deliveries", { state: stateSelect.value, sink: sinkSelect.value });
  });

  const bulkSink = el(
    "select",
    { id: "b-sink", required: true },
    names.map((n) => el("option", { value: n, selected: n === sink }, n)),
  );
  const bulkSince = el("input", { id: "b-since", type: "datetime-local" });
  const bulkUntil = el("input", { id: "b-until", type: "datetime-local" });
  const bulkButton = el("button", { type: "submit" }, "Retry dead deliveries");
  const bulk = el(
    "form",
    { class: "inline", "aria-label": "Bulk retry" },
    el("label", { for: "b-sink" }, "Sink", bulkSink),
    el("label", { for: "b-since" }, "Died since (UTC)", bulkSince),
    el("label", { for: "b-until" }, "Died until (UTC)", bulkUntil),
    bulkButton,
  );
  bulk.addEventListener("submit", async (event) => {
    event.preventDefault();
    bulkButton.disabled = true;
    try {
      const body = { sink: bulkSink.value };
      if (bulkSince.value) body.since = Number(fromInputTime(bulkSince.value));
      if (bulkUntil.value) body.until = Number(fromInputTime(bulkUntil.value, true));
      const result = await api("POST", "/v1/deliveries/retry", body);
      await route();
      say(
        "ok",
        `Queued ${result.queued} dead deliveries of ${body.sink} for retry${result.more ? "; more match: retry again to queue them" : ""}.`,
      );
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 401)) say("error", describe(error));
    } finally {
      bulkButton.disabled = false;
    }
  });

  return [
    el("h2", { tabindex: "-1" }, `${state === "dead" ? "Dead" : "Pending"} deliveries`),
    filters,
    deliveryTable(page.data, { withSubject: true, withLog: false }),
    pager("deliveries", { state, sink }, page.next_cursor, params.get("cursor")),
    el("h3", {}, "Bulk retry"),
    el("p", { class: "muted" }, "Makes a sink's dead deliveries pending again; the sweeper sends them."),
    names.length ? bulk : el("p", { class: "muted" }, "No sinks are configured."),
  ];
}

// ---- sinks ------------------------------------------------------------------------------------------

async function sinksView() {
  const sinks = await api("GET", "/v1/sinks");
  const sinkAction = (name, verb, label) =>
    action(
      label,
      async () => {
        const result = await api("POST", `/v1/sinks/${enc(name)}/${verb}`);
        await route();
        return `Sink ${result.name} is now ${result.state}.`;
      },
      { "aria-label": `${label} ${name}` },
    );
  return [
    el("h2", { tabindex: "-1" }, "Sinks"),
    table(
      [
        "Sink",
        "Type",
        "State",
        "Failures in a row",
        "Last success",
        "Last failure",
        "Next probe",
        "Pending",
        "Oldest pending",
        "Actions",
      ],
      sinks.data.map((s) => [
        s.name,
        s.type,
        [stateTag(s.state), s.disabled_reason ? el("div", { class: "muted" }, s.disabled_reason) : null],
        String(s.consecutive_failures),
        s.last_success ? [time(s.last_success.at), ` (${dash(s.last_success.status)})`] : "–",
        s.last_failure ? [time(s.last_failure.at), el("div", { class: "muted" }, s.last_failure.error)] : "–",
        time(s.next_probe_at),
        String(s.pending),
        s.oldest_pending_age_s === null ? "–" : `${s.oldest_pending_age_s} s`,
        actions(
          s.state === "disabled"
            ? sinkAction(s.name, "enable", "Enable")
            : sinkAction(s.name, "disable", "Disable"),
          action(
            "Send test",
            async () => {
              const result = await api("POST", `/v1/sinks/${enc(s.name)}/test`);
              if (!result.ok) {
                throw new Error(
                  `Test of ${result.sink} failed: ${dash(result.error)} (status ${dash(result.status)}, ${result.latency_ms} ms)`,
                );
              }
              return `Test of ${result.sink} delivered: HTTP ${dash(result.status)} in ${result.latency_ms} ms.`;
            },
            { "aria-label": `Send a test to ${s.name}` },
          ),
        ),
      ]),
      "No sinks are configured (NOTIFY_SINKS).",
    ),
  ];
}

// ---- quarantine -------------------------------------------------------------------------------------

async function quarantineList(params) {
  try {
    return await api("GET", `/v1/quarantine${query({ limit: PAGE, cursor: params.get("cursor") })}`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return null;
    throw error;
  }
}

async function replay(id) {
  const result = await api("POST", `/v1/quarantine/${enc(id)}/replay`);
  await route();
  return `Replayed ${id}: step ${result.step_id} ${result.outcome} (${dash(result.status)}).`;
}

async function quarantineView(params) {
  const page = await quarantineList(params);
  if (page === null) {
    return [
      el("h2", { tabindex: "-1" }, "Quarantine"),
      el("p", { class: "muted", id: "quarantine-unavailable" }, "Quarantine not available on this server."),
    ];
  }
  return [
    el("h2", { tabindex: "-1" }, "Quarantine"),
    el("p", { class: "muted" }, "Signed events that failed validation, newest first."),
    table(
      ["Received", "Event", "Webhook id", "Status", "Error", "Size", "State", "Actions"],
      page.data.map((q) => [
        time(q.received_at),
        link(`#/quarantine/${enc(q.id)}`, q.id),
        dash(q.webhook_id),
        String(q.status),
        `${q.error.code}: ${q.error.message}`,
        `${q.body_bytes} B`,
        stateTag(q.state),
        actions(
          q.state === "quarantined"
            ? action("Replay", () => replay(q.id), { "aria-label": `Replay ${q.id}` })
            : null,
        ),
      ]),
      "Nothing is quarantined.",
    ),
    pager("quarantine", {}, page.next_cursor, params.get("cursor")),
  ];
}

async function quarantineItemView(id) {
  const q = await api("GET", `/v1/quarantine/${enc(id)}`);
  const remove = action("Delete", async () => {
    if (!window.confirm(`Delete quarantined event ${q.id}? This cannot be undone.`)) return "";
    await api("DELETE", `/v1/quarantine/${enc(q.id)}`);
    setHash("quarantine");
    return `Deleted ${q.id}.`;
  });
  const body =
    typeof q.body === "string"
      ? q.body
      : typeof q.body_base64 === "string"
        ? `(not UTF-8; base64) ${q.body_base64}`
        : "";
  return [
    el("h2", { tabindex: "-1" }, `Quarantined event ${q.id}`),
    facts([
      ["State", stateTag(q.state)],
      ["Received", time(q.received_at)],
      ["Expires", time(q.expires_at)],
      ["Webhook id", dash(q.webhook_id)],
      ["Webhook timestamp", time(q.webhook_timestamp)],
      ["Refused with", `${q.status} ${q.error.code}: ${q.error.message}`],
      ["Replayed", time(q.replayed_at)],
    ]),
    q.error.issues?.length
      ? [
          el("h3", {}, "Issues"),
          el(
            "ul",
            {},
            q.error.issues.map((issue) =>
              el("li", {}, el("code", {}, issue.path || "(body)"), ` ${issue.message}`),
            ),
          ),
        ]
      : null,
    el(
      "p",
      {},
      q.state === "quarantined" ? action("Replay", () => replay(q.id), { class: "primary" }) : null,
      " ",
      remove,
    ),
    el("h3", {}, "Headers"),
    table(
      ["Name", "Value"],
      Object.entries(q.headers ?? {}).map(([name, value]) => [el("code", {}, name), String(value)]),
      "No headers kept.",
    ),
    el("h3", {}, `Body (${q.body_bytes} bytes)`),
    el("pre", { tabindex: "0", "aria-label": "Quarantined body" }, body),
  ];
}

// ---- start ------------------------------------------------------------------------------------------

if (!location.hash) history.replaceState(null, "", "#/steps");
route();

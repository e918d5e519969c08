import pLimit, { type LimitFunction } from "p-limit";
import type { AgentSessionObject } from "../domain/openai/agent-session-object.js";
import { newEventRecord, type OpenAiEventRecord } from "../domain/openai/openai-event-record.js";
import { parseOpenAiWebhookEvent } from "../domain/openai/openai-webhook-event.js";
import { isTerminalResponseStatus, type ResponseObject } from "../domain/openai/response-object.js";
import type { Refusal } from "../domain/quarantined-request.js";
import { shuffled } from "../domain/shuffled.js";
import type { ApplyOutcome } from "../domain/state-rules.js";
import { AGENT_SESSION_KIND } from "../domain/subjects/agent-session-kind.js";
import { RESPONSE_KIND } from "../domain/subjects/response-kind.js";
import type { Notifier } from "../notify/notifier.js";
import { describeError, type Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import type { OpenAiApiClient } from "../sources/openai-api-client.js";
import type { DeliveryStore } from "../store/delivery-store.js";
import { hydrationLeaseKey, type OpenAiEventStore } from "../store/openai-event-store.js";
import type { QuarantineStore } from "../store/quarantine-store.js";
import type { ResponseStore } from "../store/response-store.js";
import type { SessionStore } from "../store/session-store.js";
import { keepRefused, readJsonBody, refusal, type SignedRequest } from "./keep-refused.js";

/** What became of an OpenAI event (SPEC §9). */
export type OpenAiIngestAnswer =
  | {
      readonly kind: "recorded";
      readonly eventId: string;
      readonly type: string;
      readonly outcome: "accepted" | "duplicate";
      /** The first hydration, to run after the answer; null for a duplicate. */
      readonly hydration: Promise<void> | null;
    }
  | { readonly kind: "ignored"; readonly eventId: string; readonly type: string }
  | { readonly kind: "refused"; readonly refusal: Refusal; readonly quarantineId: string };

/** What one hydration sweep did. */
export interface HydrationReport {
  readonly attempts: number;
  readonly hydrated: number;
  readonly retrying: number;
  readonly failed: number;
  /** It stopped on its time, attempt or page budget with work left: sweep again soon. */
  readonly exhausted: boolean;
}

/** Where OpenAI's API stands for this deployment, as `GET /v1/sources` shows it. */
export interface SourceState {
  readonly name: "openai";
  /** `ok` after a success; `unauthorized` after a 401/403 (events wait); `failing` after other errors; `unconfigured` without OPENAI_API_KEY. */
  readonly state: "ok" | "unauthorized" | "failing" | "unconfigured" | "unknown";
  readonly lastSuccessAtMs: number | null;
  readonly lastFailure: { readonly atMs: number; readonly error: string } | null;
}

/** What the OpenAI ingest needs. */
export interface OpenAiIngestDeps {
  readonly events: OpenAiEventStore;
  readonly responses: ResponseStore;
  /** Agent sessions' newest objects; absent, a session's event keeps its snapshot only. */
  readonly sessions?: SessionStore | undefined;
  readonly quarantine: QuarantineStore;
  /** Leases of the hydration shards (the delivery store's: one lease mechanism for every sweeper). */
  readonly leases: Pick<DeliveryStore, "acquireLease" | "releaseLease">;
  /** OpenAI's API; null without OPENAI_API_KEY: events are recorded and wait, visibly. */
  readonly api: OpenAiApiClient | null;
  readonly notifier?: Notifier | undefined;
  readonly logger: Logger;
  readonly metrics?: Metrics | undefined;
  readonly quarantineDays: number;
  /** Fetches in flight from this process at once (OPENAI_HYDRATION_CONCURRENCY). */
  readonly concurrency: number;
  /** The API's per-request time-out: a lease outlasts the fetches it covers by it. */
  readonly timeoutMs: number;
  /** Hydrations one sweep may attempt at most (a Worker invocation's subrequests are limited); unlimited when absent. */
  readonly maxAttemptsPerSweep?: number | undefined;
  readonly nowMs?: () => number;
  readonly random?: () => number;
}

// A retried fetch waits 1 s, doubling to 5 min at most: an API outage of any length is waited
// out (SPEC §9: nothing is lost within the retention), and a recovered API drains in minutes.
const FIRST_RETRY_MS = 1_000;
const LONGEST_RETRY_MS = 300_000;
// A key OpenAI refuses is tried again every minute: an operator who fixes it sees events flow.
const UNAUTHORIZED_RETRY_MS = 60_000;
const SWEEP_PAGE = 50;
/** Pages one sweep reads from one shard at most (then it says it is exhausted, and sweeps again). */
const MAX_PAGES_PER_SHARD = 20;
/** First hydrations waiting for this process's lane beyond this are left to the sweepers. */
const MAX_WAITING = 1_000;
const LEASE_MARGIN_MS = 5_000;

/**
 * OpenAI's platform webhooks (SPEC §9): a thin event is recorded once, by its id, before its
 * answer; its subject (a response, an agent session) is then fetched from the API, right after
 * the answer and by the sweepers until it is, applied under the state rules, and its transition's
 * notifications go out through the same pipeline as a run step's. Fetches run in their own lane
 * (a per-process bound), so a slow API never slows a sink, and a slow sink never slows a fetch.
 */
export class OpenAiIngest {
  readonly #d: OpenAiIngestDeps;
  readonly #nowMs: () => number;
  readonly #random: () => number;
  readonly #lane: LimitFunction;
  // First hydrations started after an answer and not yet settled: what drain() waits for.
  readonly #inFlight = new Set<Promise<void>>();
  #source: SourceState;
  /** The API answered again after failing: the next sweep fetches what waits out its backoff. */
  #catchUp = false;

  constructor(deps: OpenAiIngestDeps) {
    this.#d = deps;
    this.#nowMs = deps.nowMs ?? Date.now;
    this.#random = deps.random ?? Math.random;
    this.#lane = pLimit(deps.concurrency);
    this.#source = {
      name: "openai",
      state: deps.api ? "unknown" : "unconfigured",
      lastSuccessAtMs: null,
      lastFailure: null,
    };
  }

  /** Verifiable by the edge, then read and recorded here; a refused body is quarantined. */
  async ingest(request: SignedRequest): Promise<OpenAiIngestAnswer> {
    const result = this.#read(request.body);
    if (!result.ok) {
      const { quarantine, quarantineDays } = this.#d;
      const quarantineId = await keepRefused(
        quarantine,
        request,
        result.refusal,
        quarantineDays,
        this.#nowMs(),
        "openai",
      );
      this.#d.metrics?.openAiEvent("unknown", result.refusal.code);
      return { kind: "refused", refusal: result.refusal, quarantineId };
    }
    const { event } = result;
    if (event.kind === "ignored") {
      this.#d.metrics?.openAiEvent(event.type, "ignored");
      return { kind: "ignored", eventId: event.id, type: event.type };
    }
    const now = this.#nowMs();
    const inline = event.inline ? { object: event.inline, raw: event.data } : undefined;
    // The first hydration is this instance's to make, unless its lane already holds a burst's
    // worth: then it is left to the sweepers at once rather than queued in memory without bound.
    const firstHere = (this.#d.api !== null || inline !== undefined) && this.#lane.pendingCount < MAX_WAITING;
    const fresh = newEventRecord(
      {
        id: event.id,
        type: event.type,
        kind: event.kind,
        subjectId: event.subjectId,
        createdAt: event.createdAt,
      },
      now,
    );
    // A sweeper takes an event only once its first attempt has had its time (a fetch's time-out
    // twice and a margin, as a delivery's prompt lease), so the two never fetch it at once.
    const record = firstHere
      ? { ...fresh, nextAttemptMs: now + 2 * this.#d.timeoutMs + LEASE_MARGIN_MS }
      : fresh;
    const accepted = await this.#d.events.record(record);
    this.#d.metrics?.openAiEvent(event.type, accepted ? "accepted" : "duplicate");
    return {
      kind: "recorded",
      eventId: event.id,
      type: event.type,
      outcome: accepted ? "accepted" : "duplicate",
      // A duplicate's first hydration is its original's: the sweepers retry it, not every copy.
      // A relayed event carries its object (a relay saw it in the stream): applied as it came,
      // with no fetch; a thin one is fetched.
      hydration: accepted && firstHere ? this.#track(record, request.requestId, inline) : null,
    };
  }

  /** Where the API stands, as this process last saw it. */
  get source(): SourceState {
    return this.#source;
  }

  /**
   * Resolves when every first hydration started so far (and the notifications it sends) has
   * finished: Lambda freezes the environment once its handler returns, so it waits for this first.
   */
  async drain(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }

  /**
   * Fetches every hydration due now, shard by shard under a lease, until done, `deadlineMs`, or
   * `maxAttemptsPerSweep` attempts.
   */
  async sweep(deadlineMs: number): Promise<HydrationReport> {
    const report = { attempts: 0, hydrated: 0, retrying: 0, failed: 0, exhausted: false };
    if (!this.#d.api) return report;
    const { events, leases } = this.#d;
    // Once the API answers again after failing, what waits out its backoff is fetched now: a
    // recovered API is not left idle while events sit behind their next attempt.
    const catchUp = this.#catchUp;
    this.#catchUp = false;
    const dueUpTo = () => (catchUp ? Number.MAX_SAFE_INTEGER : this.#nowMs());
    let left = this.#d.maxAttemptsPerSweep ?? Number.POSITIVE_INFINITY;
    const seen = new Set<string>();
    // The notifications the sweep's hydrations set off: awaited before it returns (outside the
    // lane), so a runtime that ends with its invocation (a Worker's cron) sends them too.
    const notified: Promise<void>[] = [];
    const shards = Array.from({ length: events.hydrationShards }, (_, i) => i);
    for (const shard of shuffled(shards, this.#random)) {
      if (this.#nowMs() >= deadlineMs || left <= 0) {
        report.exhausted = true;
        break;
      }
      let due = await events.findDue(shard, dueUpTo(), Math.min(SWEEP_PAGE, left));
      if (due.length === 0) continue;
      const key = hydrationLeaseKey(shard);
      const version = await leases.acquireLease(
        key,
        deadlineMs + this.#d.timeoutMs + LEASE_MARGIN_MS,
        this.#nowMs(),
      );
      if (version === null) continue;
      try {
        // Page after page while the shard has due events, its budget and time allowing: a backlog
        // drains at the lane's speed, not a page per sweep interval.
        for (let page = 0; due.length > 0; page++) {
          const fresh = due.filter((d) => !seen.has(d.id));
          // Only events this sweep already tried (rescheduled, or an index lagging its items): done here.
          if (fresh.length === 0) break;
          if (page === MAX_PAGES_PER_SHARD || this.#nowMs() >= deadlineMs || left <= 0) {
            report.exhausted = true;
            break;
          }
          for (const d of fresh) seen.add(d.id);
          // Read consistently under the lease: the index only says what may be due.
          // At most `left` (the page asked for no more): the cap holds within a shard too.
          const ready = (await events.getMany(fresh.map((d) => d.id))).filter(
            (e) => e.hydration === "pending" && (catchUp || (e.nextAttemptMs ?? 0) <= this.#nowMs()),
          );
          left -= ready.length;
          const outcomes = await Promise.all(
            ready.map((record) =>
              this.#nowMs() < deadlineMs
                ? this.#lane(() => this.#hydrate(record, undefined, undefined, notified))
                : null,
            ),
          );
          for (const outcome of outcomes) {
            if (outcome === null) continue;
            report.attempts++;
            if (outcome === "hydrated") report.hydrated++;
            else if (outcome === "pending") report.retrying++;
            else report.failed++;
          }
          due = await events.findDue(shard, dueUpTo(), Math.min(SWEEP_PAGE, Math.max(left, 1)));
        }
      } finally {
        await leases.releaseLease(key, version);
      }
    }
    await Promise.all(notified);
    return report;
  }

  #read(body: Uint8Array) {
    const read = readJsonBody(body);
    if (!read.ok) return read;
    const parsed = parseOpenAiWebhookEvent(read.json);
    if (!parsed.ok) {
      return {
        ok: false as const,
        refusal: refusal(422, "invalid_payload", "not a valid OpenAI webhook event", parsed.issues),
      };
    }
    return { ok: true as const, event: parsed.event };
  }

  // The first hydration, started after the answer, in the lane; never rejects (the sweepers retry).
  #track(record: OpenAiEventRecord, requestId: string, inline?: Inline): Promise<void> {
    if (!this.#d.api && !inline) return Promise.resolve();
    // The hydration holds a lane slot; its notifications are awaited after, outside the lane: a
    // slow sink never holds up a fetch, and the task (a Worker's waitUntil) still covers them.
    const notified: Promise<void>[] = [];
    const task = new Promise<void>((resolve) => setTimeout(resolve, 0))
      .then(() => this.#lane(() => this.#hydrate(record, requestId, inline, notified)))
      .then(() => Promise.all(notified))
      .then(
        () => undefined,
        (error: unknown) => {
          this.#d.logger.warn("hydration failed; a sweep retries it", {
            request_id: requestId,
            event_id: record.id,
            error: describeError(error),
          });
        },
      );
    this.#inFlight.add(task);
    void task.finally(() => this.#inFlight.delete(task));
    return task;
  }

  // Fetches the event's subject (or takes the one it carried), applies it, settles the event; the
  // event's new state.
  async #hydrate(
    record: OpenAiEventRecord,
    requestId?: string,
    inline?: Inline,
    notified: Promise<void>[] = [],
  ): Promise<OpenAiEventRecord["hydration"]> {
    const api = this.#d.api;
    // Stryker disable next-line ConditionalExpression: sweep and #track return before calling without an API.
    if (!api && !inline) return record.hydration;
    const started = this.#nowMs();
    const fetched = inline
      ? { ok: true as const, value: inline.object, raw: inline.raw }
      : record.kind === "response"
        ? await (api as OpenAiApiClient).getResponse(record.subjectId)
        : await (api as OpenAiApiClient).getSession(record.subjectId);
    const ended = this.#nowMs();
    const attempts = record.attempts + 1;
    const context = { request_id: requestId, event_id: record.id, subject_id: record.subjectId };
    if (!fetched.ok) {
      this.#d.metrics?.hydration(record.kind, fetched.kind, (ended - started) / 1000);
      this.#noteFailure(fetched.kind, fetched.message, ended);
      const final = fetched.kind === "not_found" || fetched.kind === "invalid";
      const next: OpenAiEventRecord = {
        ...record,
        attempts,
        hydration: final ? fetched.kind : "pending",
        lastError: fetched.message,
        nextAttemptMs: final ? null : ended + this.#retryDelay(attempts, fetched.kind, fetched.retryAfterMs),
        version: record.version + 1,
      };
      await this.#d.events.replace(next);
      this.#d.logger.info("hydration", {
        ...context,
        attempt: attempts,
        outcome: fetched.kind,
        status: fetched.status,
      });
      return next.hydration;
    }
    this.#d.metrics?.hydration(record.kind, inline ? "relayed" : "hydrated", (ended - started) / 1000);
    // A relayed object says nothing of the API's health.
    if (!inline) this.#noteSuccess(ended);
    const hydrated: OpenAiEventRecord = {
      ...record,
      attempts,
      hydration: "hydrated",
      lastError: null,
      nextAttemptMs: null,
      hydratedAtMs: ended,
      version: record.version + 1,
    };
    if (record.kind === "response") {
      const raw = fetched.raw as Record<string, unknown>;
      const { outcome, notify } = await this.#applyResponse(
        fetched.value as ResponseObject,
        raw,
        record,
        ended,
        requestId,
      );
      // The event is settled before its notifications go: whoever receives one and reads the
      // response back finds its event hydrated (it once read "pending" while the sink was answering).
      // A store error here leaves them to the outbox recovery, as an instance dying here would.
      await this.#d.events.replace(hydrated);
      // Handed back to whoever started the hydration, who awaits it outside the lane: the lane's
      // slot is free as soon as the event is settled, and no sink can hold up a fetch.
      if (notify) notified.push(notify());
      this.#d.logger.info("hydration", {
        ...context,
        attempt: attempts,
        outcome,
        status: (fetched.value as ResponseObject).status,
      });
    } else {
      // A session's event keeps the session as fetched now: what its notification says.
      const raw = fetched.raw as Record<string, unknown>;
      await this.#d.sessions?.apply({
        session: fetched.value as AgentSessionObject,
        document: raw,
        eventId: record.id,
        eventCreatedAt: record.createdAt,
        hydratedAtMs: ended,
      });
      // Handed back, as a response's: awaited outside the lane by whoever started the hydration.
      // The intents are written with the snapshot, in the one write that settles the event, and
      // its outbox entry with them: a crash before the deliveries are recorded loses none.
      const { notifier } = this.#d;
      const word = record.type.slice(`${AGENT_SESSION_KIND.eventPrefix}.`.length);
      const subject = AGENT_SESSION_KIND.view(raw);
      const intents = notifier ? notifier.intentsFor(subject, word) : [];
      const owed = intents.length > 0 ? { sinks: intents.map((i) => i.sink), word, atMs: ended } : undefined;
      if ((await this.#d.events.replace(hydrated, raw, owed)) && notifier && intents.length > 0) {
        notified.push(
          notifier.deliverPrompt({
            ref: { kind: "agent_session", id: record.id, runId: record.subjectId },
            subject,
            document: raw,
            intents,
            ...(requestId ? { requestId } : {}),
          }),
        );
      }
      this.#d.logger.info("hydration", { ...context, attempt: attempts, outcome: "hydrated" });
    }
    return "hydrated";
  }

  async #applyResponse(
    response: ResponseObject,
    document: Record<string, unknown>,
    record: OpenAiEventRecord,
    hydratedAtMs: number,
    requestId: string | undefined,
  ): Promise<{ outcome: ApplyOutcome; notify: (() => Promise<void>) | null }> {
    const { notifier } = this.#d;
    const terminal = isTerminalResponseStatus(response.status);
    const subject = RESPONSE_KIND.view(document);
    const intents = notifier && terminal ? notifier.intentsFor(subject, response.status) : [];
    const outcome = await this.#d.responses.apply({
      response,
      document,
      eventId: record.id,
      hydratedAtMs,
      intents,
    });
    if (outcome === "conflict") {
      this.#d.logger.warn("conflicting terminal status ignored", {
        request_id: requestId,
        response_id: response.id,
        status: response.status,
      });
    }
    const notifies = notifier && intents.length > 0 && (outcome === "created" || outcome === "updated");
    const notify = notifies
      ? () =>
          notifier.deliverPrompt({
            ref: { kind: "response", id: response.id, runId: response.id },
            subject,
            document,
            intents,
            ...(requestId ? { requestId } : {}),
          })
      : null;
    return { outcome, notify };
  }

  #retryDelay(attempts: number, kind: string, retryAfterMs: number | null): number {
    if (kind === "unauthorized") return UNAUTHORIZED_RETRY_MS;
    const backoff = FIRST_RETRY_MS * 2 ** (attempts - 1);
    // ±10% jitter, so a recovered API is not met by every pending event at once; the cap applies
    // after it (a jittered 5 min once waited 5.5).
    const jittered = Math.min(LONGEST_RETRY_MS, backoff * (0.9 + 0.2 * this.#random()));
    return Math.round(Math.max(jittered, Math.min(retryAfterMs ?? 0, LONGEST_RETRY_MS)));
  }

  #noteSuccess(atMs: number) {
    if (this.#source.state !== "ok") this.#d.logger.info("OpenAI API reachable", { source: "openai" });
    if (this.#source.state === "failing" || this.#source.state === "unauthorized") this.#catchUp = true;
    this.#source = { ...this.#source, state: "ok", lastSuccessAtMs: atMs };
  }

  #noteFailure(kind: string, error: string, atMs: number) {
    // 404 and unreadable answers say nothing of the API's health; the rest do.
    if (kind === "not_found" || kind === "invalid") return;
    const state = kind === "unauthorized" ? "unauthorized" : "failing";
    // One line per change, not per event: a revoked key during a burst is one line.
    if (this.#source.state !== state) {
      this.#d.logger.warn(
        state === "unauthorized"
          ? "OpenAI refused OPENAI_API_KEY: events wait until it is fixed"
          : "OpenAI API failing: events wait and are retried",
        { source: "openai", error },
      );
    }
    this.#source = { ...this.#source, state, lastFailure: { atMs, error } };
  }
}

/** The object a relayed event carried, as validated and as received. */
interface Inline {
  readonly object: ResponseObject | AgentSessionObject;
  readonly raw: Record<string, unknown>;
}

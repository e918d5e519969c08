import {
  type Delivery,
  deliveryView,
  missingSubject,
  newDelivery,
  parseDeliveryId,
  type SubjectRef,
} from "../domain/delivery.js";
import { notificationMessageId } from "../domain/notification-payloads.js";
import { revived } from "../domain/retry-policy.js";
import type { RunStep, RunStepStatus } from "../domain/run-step-schema.js";
import type { SinkConfig } from "../domain/sink-config-schema.js";
import type { SinkHealth } from "../domain/sink-health.js";
import { RUN_STEP_KIND } from "../domain/subjects/run-step-kind.js";
import type { DeliveryNotifier } from "../notify/delivery-notifier.js";
import type { LogFields } from "../observability/logger.js";
import {
  type DeliveryStore,
  type SinkBacklog,
  type SinkHealthStore,
  subjectKeyOf,
} from "../store/delivery-store.js";
import type { Page } from "../store/step-store.js";

/** A delivery with the state an operator sees (parked while its sink is disabled). */
export interface DeliveryView {
  readonly delivery: Delivery;
  readonly state: "pending" | "parked" | "delivered" | "dead";
  readonly nextAttemptMs: number | null;
}

/** A sink with its health and backlog. */
export interface SinkView {
  readonly config: SinkConfig;
  /** The `whpk_` key its `v1a` signatures verify with, when it signs with one. */
  readonly publicKey: string | null;
  readonly health: SinkHealth;
  readonly backlog: SinkBacklog;
}

/** Outcome of an operator's action on one delivery. */
export type DeliveryActionResult =
  | { readonly kind: "done"; readonly delivery: DeliveryView }
  | { readonly kind: "not_found" }
  | { readonly kind: "invalid_state"; readonly message: string };

/** Outcome of a sink test. */
export interface SinkTestResult {
  readonly ok: boolean;
  readonly status: number | null;
  readonly latencyMs: number;
  readonly error: string | null;
  readonly webhookId: string | null;
}

/** What the operations need. */
export interface DeliveryOperationsDeps {
  readonly deliveries: DeliveryStore;
  readonly health: SinkHealthStore;
  readonly notifier: DeliveryNotifier;
  readonly sinkConfigs: readonly SinkConfig[];
  /** Each Ed25519-signing sink's `whpk_` public key, by sink name (derived when its key was imported). */
  readonly publicKeys: ReadonlyMap<string, string>;
  /** Per-attempt time-out: how long an operator's retry holds a delivery away from sweepers. */
  readonly timeoutMs: number;
  readonly nowMs?: () => number;
}

/** Dead deliveries a bulk retry makes due per second, so a recovered sink is not flooded. */
const BULK_RETRY_PER_SECOND = 100;
const HOLD_MARGIN_MS = 5_000;

/**
 * The operator's delivery and sink actions (SPEC §5, §6), between the HTTP routes and the stores:
 * each route handler is a call to one of these.
 */
export class DeliveryOperations {
  readonly #d: DeliveryOperationsDeps;
  readonly #nowMs: () => number;

  constructor(deps: DeliveryOperationsDeps) {
    this.#d = deps;
    this.#nowMs = deps.nowMs ?? Date.now;
  }

  /** The operations' clock, Unix ms. */
  nowMs(): number {
    return this.#nowMs();
  }

  /** Whether `name` is a configured sink. */
  hasSink(name: string): boolean {
    return this.#d.sinkConfigs.some((config) => config.name === name);
  }

  /**
   * The deliveries of one step, one per sink its terminal transition owes. A delivery not yet
   * recorded is being attempted right now (or its instance died and the outbox recovery will
   * record it): it shows as pending, with no attempt yet.
   */
  forStep(step: {
    readonly id: string;
    readonly runId: string;
    readonly status: RunStepStatus;
    readonly owedSinks: readonly string[];
    /** When the terminal transition was applied: an unrecorded delivery was created then. */
    readonly appliedAtMs: number;
  }): Promise<DeliveryView[]> {
    // Stryker disable next-line ConditionalExpression,StringLiteral: only a terminal apply sets owed sinks, so an in_progress step gives [] either way.
    if (step.status === "in_progress") return Promise.resolve([]);
    return this.forSubject(
      { kind: "run_step", id: step.id, runId: step.runId },
      `run_step.${step.status}`,
      step,
    );
  }

  /** The deliveries a subject's transition owes (see {@link forStep}), of any kind of subject. */
  async forSubject(
    subject: SubjectRef,
    event: string,
    owed: { readonly owedSinks: readonly string[]; readonly appliedAtMs: number },
  ): Promise<DeliveryView[]> {
    const found = await this.#d.deliveries.getMany(
      owed.owedSinks.map((sink) => ({ kind: subject.kind, subjectId: subject.id, sink })),
    );
    const bySink = new Map(found.map((d) => [d.sink, d]));
    const all = owed.owedSinks.map(
      (sink) =>
        bySink.get(sink) ?? {
          ...newDelivery({ sink, event }, subject, owed.appliedAtMs),
          nextAttemptMs: null,
        },
    );
    return this.#views(all);
  }

  /** Pending (parked included) or dead deliveries, of one sink or all, page by page. */
  async list(
    state: "pending" | "dead",
    sink: string | undefined,
    limit: number,
    cursor: string | null,
  ): Promise<Page<DeliveryView>> {
    const sinks = sink === undefined ? this.#d.sinkConfigs.map((c) => c.name) : [sink];
    const page = await this.#d.deliveries.list(state, sinks, limit, cursor);
    return { items: await this.#views(page.items), nextCursor: page.nextCursor };
  }

  /**
   * Retries a dead delivery now: takes it directly (pending, held from sweepers for one attempt's
   * time), attempts it, and records the outcome with a fresh retry schedule.
   */
  async retry(id: string, context: LogFields = {}): Promise<DeliveryActionResult> {
    const found = await this.#find(id);
    if (!found) return { kind: "not_found" };
    if (found.state !== "dead") {
      return {
        kind: "invalid_state",
        message: `delivery is ${found.state}; only dead deliveries are retried`,
      };
    }
    const now = this.#nowMs();
    const held = { ...revived(found, now + this.#d.timeoutMs + HOLD_MARGIN_MS), version: found.version + 1 };
    if (!(await this.#d.deliveries.replace(held))) {
      return { kind: "invalid_state", message: "delivery changed meanwhile; read it again" };
    }
    return this.#attemptAndRecord(held, (after) => after, context);
  }

  /**
   * Sends a delivered notification again, with the same `webhook-id` so a receiver that has it
   * drops it. One attempt: it joins the attempt log; the delivery stays delivered whatever it gives.
   */
  async resend(id: string, context: LogFields = {}): Promise<DeliveryActionResult> {
    const found = await this.#find(id);
    if (!found) return { kind: "not_found" };
    if (found.state !== "delivered") {
      return { kind: "invalid_state", message: `delivery is ${found.state}; only delivered ones are resent` };
    }
    return this.#attemptAndRecord(
      found,
      (after) => ({ ...after, state: "delivered", lastError: found.lastError, nextAttemptMs: null }),
      context,
    );
  }

  /**
   * Makes a sink's dead deliveries that died in `[sinceMs, untilMs]` pending again, paced at
   * {@link BULK_RETRY_PER_SECOND} a second from now; at most `limit` per call.
   */
  async bulkRetry(
    sink: string,
    sinceMs: number,
    untilMs: number,
    limit: number,
  ): Promise<{ queued: number; more: boolean }> {
    const dead = await this.#d.deliveries.deadBetween(sink, sinceMs, untilMs, limit + 1);
    const now = this.#nowMs();
    let queued = 0;
    for (const delivery of dead.slice(0, limit)) {
      const due = now + Math.floor(queued / BULK_RETRY_PER_SECOND) * 1000;
      if (await this.#d.deliveries.replace({ ...revived(delivery, due), version: delivery.version + 1 }))
        queued++;
    }
    return { queued, more: dead.length > limit };
  }

  /** Every configured sink with its health and backlog. */
  sinks(): Promise<SinkView[]> {
    return Promise.all(this.#d.sinkConfigs.map((config) => this.#sinkView(config)));
  }

  /** One sink, or null when no sink has that name. */
  async sink(name: string): Promise<SinkView | null> {
    const config = this.#d.sinkConfigs.find((c) => c.name === name);
    return config ? this.#sinkView(config) : null;
  }

  /** Disables a sink: its deliveries are parked until it is enabled again. */
  async disable(name: string): Promise<SinkView | null> {
    if (!this.hasSink(name)) return null;
    this.#d.notifier.rememberHealth(await this.#d.health.disable(name, "disabled by an operator"));
    return this.sink(name);
  }

  /** Enables a sink: healthy, failures forgotten; its parked deliveries drain at the next sweep. */
  async enable(name: string): Promise<SinkView | null> {
    if (!this.hasSink(name)) return null;
    this.#d.notifier.rememberHealth(await this.#d.health.enable(name));
    return this.sink(name);
  }

  /** Sends a test notification (marked as one, signed like any other) and reports the outcome. */
  async test(name: string): Promise<SinkTestResult | null> {
    const config = this.#d.sinkConfigs.find((c) => c.name === name);
    // Stryker disable next-line ConditionalExpression: the notifier has the same sinks, so sendTest answers null for this name too, sending nothing.
    if (!config) return null;
    const now = this.#nowMs();
    const step = testStep(now);
    const document = step as unknown as Record<string, unknown>;
    const sent = await this.#d.notifier.sendTest(name, {
      event: "run_step.completed",
      subjectId: step.id,
      subject: RUN_STEP_KIND.view(document),
      document,
      test: true,
    });
    if (!sent) return null;
    const { result, latencyMs } = sent;
    return {
      ok: result.ok,
      status: result.status ?? null,
      latencyMs,
      error: result.ok ? null : result.error,
      webhookId:
        config.type === "webhook" ? await notificationMessageId(step.id, "run_step.completed", name) : null,
    };
  }

  async #attemptAndRecord(
    delivery: Delivery,
    settle: (after: Delivery) => Delivery,
    context: LogFields,
  ): Promise<DeliveryActionResult> {
    const documents = await this.#d.deliveries.subjects([delivery]);
    // A subject gone before its delivery (RETENTION_DAYS: a retried delivery's ttl is renewed, its
    // subject's is not): dead, with the reason, rather than sent empty.
    const stored = documents.get(subjectKeyOf(delivery));
    const after = stored
      ? await this.#d.notifier.attemptNow(delivery, stored, context)
      : { ...delivery, state: "dead" as const, lastError: missingSubject(delivery), nextAttemptMs: null };
    const recorded = { ...settle(after), version: delivery.version + 1 };
    if (!(await this.#d.deliveries.replace(recorded))) {
      return { kind: "invalid_state", message: "delivery changed while it was attempted; read it again" };
    }
    const [view] = await this.#views([recorded]);
    return { kind: "done", delivery: view as DeliveryView };
  }

  async #find(id: string): Promise<Delivery | null> {
    const parts = parseDeliveryId(id);
    if (!parts || !this.hasSink(parts.sink)) return null;
    return this.#d.deliveries.get(parts);
  }

  async #views(deliveries: readonly Delivery[]): Promise<DeliveryView[]> {
    const sinks = [...new Set(deliveries.map((d) => d.sink))];
    const disabled = new Set<string>();
    for (const sink of sinks) {
      if ((await this.#d.notifier.sinkHealth(sink)).state === "disabled") disabled.add(sink);
    }
    return deliveries.map((delivery) => ({
      delivery,
      ...deliveryView(delivery, disabled.has(delivery.sink)),
    }));
  }

  async #sinkView(config: SinkConfig): Promise<SinkView> {
    const [health, backlog] = await Promise.all([
      this.#d.health.get(config.name),
      this.#d.deliveries.backlog(config.name),
    ]);
    return {
      config,
      publicKey: this.#d.publicKeys.get(config.name) ?? null,
      health: this.#d.notifier.rememberHealth(health),
      backlog,
    };
  }
}

// A step that looks like any other, so receivers exercise their real handling; `test: true` marks it.
function testStep(nowMs: number): RunStep {
  const at = Math.floor(nowMs / 1000);
  return {
    id: `step_test_${nowMs.toString(36)}`,
    object: "thread.run.step",
    created_at: at,
    assistant_id: "asst_test",
    thread_id: "thread_test",
    run_id: "run_test",
    type: "message_creation",
    status: "completed",
    step_details: { type: "message_creation", message_creation: { message_id: "msg_test" } },
    last_error: null,
    expired_at: null,
    cancelled_at: null,
    failed_at: null,
    completed_at: at,
    metadata: { stepwatch_test: "true" },
    usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 },
  } as RunStep;
}

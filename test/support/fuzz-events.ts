import fc from "fast-check";
import { makeStep, makeToolCallsStep } from "./run-steps.js";

/** One fuzz case: a body to sign and send, and what a read-back must show if it was stored. */
export interface FuzzCase {
  readonly body: string;
  /** The step id, when the body carries a readable one. */
  readonly stepId: string | null;
  /** The document (the RunStepObject as sent) a stored step must read back as. */
  readonly document: unknown;
}

/** Statuses a fuzzed request may be answered with (SPEC §3); anything else is a failure. */
export const DOCUMENTED_STATUSES = new Set([200, 400, 413, 422]);

/** Error codes those answers may carry. */
export const DOCUMENTED_CODES = new Set(["invalid_json", "invalid_payload", "payload_too_large"]);

/** Fields the API adds to a stored step's document when it is read back. */
export const ADDED_FIELDS = ["received_at", "updated_at", "conflicts", "deliveries"] as const;

// Number tokens JSON.stringify never writes, spliced into the text: out of range, expanding when
// stored, beyond double precision, negative zero, subnormal, huge exponents.
const NUMBER_TOKENS = [
  "1e400",
  "-1e400",
  "1e20",
  "-1e20",
  "1e200",
  "12345678901234567890",
  "-0",
  "1e-400",
  "5e-324",
  "0.1000000000000000055511151231257827",
  "1E+2",
  "9007199254740993",
] as const;
const TOKEN = (i: number) => `"\u0000NUM${i}\u0000"`;

// Values that stress the schema and the store in particular.
const specialValue = fc.oneof(
  fc.constantFrom(
    ...NUMBER_TOKENS.map((_, i) => `\u0000NUM${i}\u0000`),
    null,
    true,
    [],
    {},
    "",
    -1,
    1.5,
    1e15,
    Number.MAX_SAFE_INTEGER,
    "\ud800",
    "line\nbreak\u001b[31m",
  ),
  fc.string({ unit: "grapheme", minLength: 500, maxLength: 700 }),
  fc.string({ minLength: 1000, maxLength: 3000 }).map((s) => s.padEnd(1000, "é")),
  fc.constant(JSON.parse('{"__proto__":1,"constructor":{"prototype":2},"prototype":"x"}') as unknown),
  fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 4 }),
);

const anyValue = fc.oneof(
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 3, arbitrary: specialValue },
);

type Mutation =
  | { readonly kind: "delete"; readonly pick: number }
  | { readonly kind: "set"; readonly pick: number; readonly value: unknown }
  | { readonly kind: "add"; readonly pick: number; readonly key: string; readonly value: unknown };

const KEYS = [
  "__proto__",
  "constructor",
  "prototype",
  "extra",
  "metadata",
  "id",
  "type",
  "status",
  "x".repeat(70),
];

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant("delete" as const), pick: fc.nat() }),
  fc.record({ kind: fc.constant("set" as const), pick: fc.nat(), value: anyValue }),
  fc.record({
    kind: fc.constant("add" as const),
    pick: fc.nat(),
    key: fc.oneof(fc.constantFrom(...KEYS), fc.string({ maxLength: 8 })),
    value: anyValue,
  }),
);

// Every container and leaf of a document, as paths of keys.
function pathsOf(value: unknown, path: Array<string | number> = [], out: Array<Array<string | number>> = []) {
  out.push(path);
  if (Array.isArray(value)) for (const [i, v] of value.entries()) pathsOf(v, [...path, i], out);
  else if (typeof value === "object" && value !== null)
    for (const key of Object.keys(value))
      pathsOf((value as Record<string, unknown>)[key], [...path, key], out);
  return out;
}

function containerAt(
  root: unknown,
  path: ReadonlyArray<string | number>,
): Record<string | number, unknown> | null {
  let node = root;
  for (const key of path) {
    if (typeof node !== "object" || node === null) return null;
    node = (node as Record<string | number, unknown>)[key];
  }
  return typeof node === "object" && node !== null ? (node as Record<string | number, unknown>) : null;
}

function define(target: Record<string | number, unknown>, key: string | number, value: unknown) {
  // A defined property, so `__proto__` is data (as JSON.parse makes it), not the prototype.
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

function apply(doc: unknown, m: Mutation): void {
  const paths = pathsOf(doc).filter((p) => p.length > 0);
  const path = paths[m.pick % Math.max(1, paths.length)];
  if (!path) return;
  const parent = containerAt(doc, path.slice(0, -1));
  const key = path.at(-1) as string | number;
  if (!parent) return;
  if (m.kind === "delete") {
    if (Array.isArray(parent)) parent.splice(Number(key), 1);
    else delete parent[key];
  } else if (m.kind === "set") {
    define(parent, key, structuredClone(m.value));
  } else {
    const target = containerAt(doc, path) ?? parent;
    if (!Array.isArray(target)) define(target, m.key, structuredClone(m.value));
  }
}

const STATUSES = ["in_progress", "completed", "failed", "cancelled", "expired"] as const;

/**
 * Valid run step events, each mutated a few ways (keys deleted, values replaced by hostile ones,
 * keys added), in one of the three envelopes, with a step id unique to the case so that a stored
 * one reads back as exactly what was sent.
 */
export function fuzzCases(prefix: string): fc.Arbitrary<FuzzCase> {
  let counter = 0;
  return fc
    .record({
      tools: fc.boolean(),
      status: fc.constantFrom(...STATUSES),
      envelope: fc.constantFrom("bare", "stream", "webhook", "delta"),
      mutations: fc.array(mutation, { minLength: 0, maxLength: 3 }),
      // One case in twenty is cut short somewhere.
      truncate: fc.oneof({ weight: 19, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.nat() }),
    })
    .map(({ tools, status, envelope, mutations, truncate }) => {
      const stepId = `${prefix}_${counter++}`;
      const step = (tools ? makeToolCallsStep : makeStep)({ id: stepId, run_id: `${prefix}_run`, status });
      for (const m of mutations) apply(step, m);
      // The API's own fields of a read-back would shadow these: not a document fuzz can compare.
      for (const field of ADDED_FIELDS) delete step[field];
      const body =
        envelope === "bare"
          ? step
          : envelope === "stream"
            ? { event: `thread.run.step.${status === "in_progress" ? "created" : status}`, data: step }
            : envelope === "webhook"
              ? {
                  id: `evt_${stepId}`,
                  object: "event",
                  type: `thread.run.step.${status}`,
                  created_at: 1,
                  data: step,
                }
              : {
                  event: "thread.run.step.delta",
                  data: { id: stepId, object: "thread.run.step.delta", delta: step },
                };
      let text = JSON.stringify(body);
      NUMBER_TOKENS.forEach((token, i) => {
        text = text.replaceAll(TOKEN(i), token);
      });
      if (truncate !== null) text = text.slice(0, truncate % text.length);
      let document: unknown = null;
      try {
        const parsed = JSON.parse(text) as Record<string, unknown>;
        document = envelope === "bare" ? parsed : parsed.data;
      } catch {
        document = null;
      }
      return { body: text, stepId: typeof step.id === "string" ? step.id : null, document };
    });
}

/** A read-back step without the fields the API adds, as JSON text in its stored key order. */
export function readBackDocument(response: Record<string, unknown>): string {
  const copy = { ...response };
  for (const field of ADDED_FIELDS) delete copy[field];
  return JSON.stringify(copy);
}

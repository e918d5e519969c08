/**
 * How a response too large for one stored item is kept (issue 20: a response can be far larger
 * than DynamoDB's 400 KB item, and no item write may fail on size). Stored documents are deflated,
 * so a response of well over a megabyte of JSON still fits whole; past that, its output items keep
 * what identifies them and what a notification reads (id, type, status, role, name, call_id,
 * error, the first characters of their text) and the document says so in `stepwatch_truncated`,
 * with where the whole object is: nothing is dropped silently, and the API still has it all.
 */
export const TRUNCATION_MARK = "stepwatch_truncated";

/** The fields of an output item kept when a response is cut to fit. */
const KEPT_ITEM_FIELDS = [
  "id",
  "type",
  "status",
  "role",
  "name",
  "call_id",
  "error",
  "server_label",
] as const;
/** How much of an item's text is kept when it is cut. */
const KEPT_TEXT = 500;

/** A cut-down response: every output item summarised, marked as cut, with where to read it whole. */
export function truncatedResponse(
  document: Record<string, unknown>,
  originalBytes: number,
): Record<string, unknown> {
  const output = Array.isArray(document.output) ? document.output : [];
  return {
    ...document,
    // Instructions and tools can be long too; they are what the caller sent, not what happened.
    ...(typeof document.instructions === "string" ? { instructions: clip(document.instructions) } : {}),
    tools: Array.isArray(document.tools) ? document.tools.length : document.tools,
    output: output.map(summarise),
    [TRUNCATION_MARK]: {
      reason: "the response is larger than one stored item",
      original_bytes: originalBytes,
      output_items: output.length,
      whole_object: `GET /responses/${String(document.id ?? "")}`,
    },
  };
}

/** The last resort: a response reduced to what identifies it and says how it ended. */
export function minimalResponse(
  document: Record<string, unknown>,
  originalBytes: number,
): Record<string, unknown> {
  const keep = [
    "id",
    "object",
    "created_at",
    "completed_at",
    "status",
    "model",
    "error",
    "incomplete_details",
    "usage",
    "prompt",
    "conversation",
    "metadata",
  ];
  return {
    ...Object.fromEntries(keep.filter((key) => key in document).map((key) => [key, document[key]])),
    output: [],
    [TRUNCATION_MARK]: {
      reason: "the response is larger than one stored item, even with its output summarised",
      original_bytes: originalBytes,
      output_items: Array.isArray(document.output) ? document.output.length : 0,
      whole_object: `GET /responses/${String(document.id ?? "")}`,
    },
  };
}

function summarise(item: unknown): unknown {
  if (typeof item !== "object" || item === null || Array.isArray(item)) return item;
  const record = item as Record<string, unknown>;
  const kept: Record<string, unknown> = {};
  for (const field of KEPT_ITEM_FIELDS) if (field in record) kept[field] = record[field];
  const text = firstText(record);
  if (text !== null) kept.text_preview = clip(text);
  return kept;
}

// The first text an item carries: a message's output_text, a reasoning summary, tool arguments.
function firstText(item: Record<string, unknown>): string | null {
  for (const key of ["arguments", "code", "output", "text"]) {
    if (typeof item[key] === "string") return item[key] as string;
  }
  for (const key of ["content", "summary"]) {
    const parts = item[key];
    if (!Array.isArray(parts)) continue;
    for (const part of parts) {
      if (
        typeof part === "object" &&
        part !== null &&
        typeof (part as { text?: unknown }).text === "string"
      ) {
        return (part as { text: string }).text;
      }
    }
  }
  return null;
}

const clip = (text: string) => (text.length > KEPT_TEXT ? `${text.slice(0, KEPT_TEXT)}…` : text);

import {
  decodeCursor,
  encodeCursor,
  type Item,
  isKeyPart,
  alias as n,
  outboxPartition,
  outboxSortKey,
  toStoredStep,
} from "./item-codec.js";
import { compareKeys } from "./key-order.js";
import type { Page, StoredStep, TerminalStepQuery } from "./step-store.js";
import { InvalidCursorError } from "./store-errors.js";
import type { Table } from "./table.js";
import { TABLE_SCHEMA } from "./table-schema.js";

const A = TABLE_SCHEMA.attributes;
const OUTBOX = TABLE_SCHEMA.indexes.outbox;
const OUTBOX_RANGE = `${n(A.outboxShard)} = :ob AND ${n(A.appliedAtMs)} BETWEEN :lo AND :hi`;
// Pages read from one partition of a filtered terminal listing before it gives what it has.
const TERMINAL_LIST_PAGES = 5;

/**
 * Terminal steps across runs, newest first, read from the outbox index (every terminal apply
 * writes the step's entry there): each status's partitions merged, the documents from the table.
 */
export class TerminalStepListing {
  readonly #table: Table;

  constructor(table: Table) {
    this.#table = table;
  }

  async listTerminal(query: TerminalStepQuery): Promise<Page<StoredStep>> {
    const scope = terminalScope(query);
    const before = query.cursor === null ? null : decodeTerminalCursor(query.cursor, scope);
    const lowest = outboxSortKey(query.sinceMs, "");
    // Above every entry applied at untilMs, whatever its step id: "$" follows the "#" after the time.
    const highest = before ?? `${outboxSortKey(query.untilMs, "").slice(0, -1)}$`;
    const partitions = query.statuses.flatMap((status) =>
      Array.from({ length: TABLE_SCHEMA.outboxShards }, (_, shard) => outboxPartition(status, shard)),
    );
    // Each partition's newest `limit` below the position hold the page: merge them, newest first.
    const found = await Promise.all(
      partitions.map((partition) => this.#newestIn(partition, lowest, highest, before, query)),
    );
    // A partition that stopped reading before `limit` matches (a sparse assistant filter) has
    // unread entries below where it stopped: this page goes no lower, or they would be skipped.
    // Positions compare in DynamoDB's order (compareKeys), or a page could end where the next
    // query would not go on from.
    let frontier: string | undefined;
    for (const f of found) {
      if (f.stoppedAt !== undefined && (frontier === undefined || compareKeys(f.stoppedAt, frontier) > 0))
        frontier = f.stoppedAt;
    }
    const candidates = found
      .flatMap((f) => f.entries)
      .filter((entry) => frontier === undefined || compareKeys(entry.sortKey, frontier) >= 0)
      .sort((a, b) => compareKeys(b.sortKey, a.sortKey));
    const page = candidates.slice(0, query.limit);
    const more = candidates.length > query.limit || found.some((f) => f.more);
    const items = await this.#table.getMany(
      "listTerminal",
      page.map((entry) => entry.key),
      undefined,
      { consistent: false },
    );
    const last = page.at(-1);
    return {
      items: page.flatMap((entry) => {
        const item = items.get(entry.key);
        return item ? [toStoredStep(item)] : [];
      }),
      nextCursor: more
        ? encodeCursor({
            ...scope,
            before:
              page.length < query.limit && frontier !== undefined ? frontier : (last?.sortKey ?? highest),
          })
        : null,
    };
  }

  // The newest entries of one outbox partition within [lowest, highest] (highest itself excluded
  // when it is a cursor's position), at most `limit` after the assistant filter, a few pages at most.
  async #newestIn(
    partition: string,
    lowest: string,
    highest: string,
    before: string | null,
    query: TerminalStepQuery,
  ): Promise<{ entries: { sortKey: string; key: string }[]; more: boolean; stoppedAt: string | undefined }> {
    const entries: { sortKey: string; key: string }[] = [];
    const filter = query.assistantId === undefined ? undefined : `${n(A.assistantId)} = :asst`;
    let start: Item | undefined;
    for (let pages = 0; pages < TERMINAL_LIST_PAGES; pages++) {
      const result = await this.#table.query({
        operation: "listTerminal",
        index: OUTBOX.name,
        condition: OUTBOX_RANGE,
        filter,
        values: {
          ":ob": { S: partition },
          ":lo": { S: lowest },
          ":hi": { S: highest },
          ...(query.assistantId === undefined ? {} : { ":asst": { S: query.assistantId } }),
        },
        forward: false,
        limit: query.limit + 1,
        start,
      });
      // Stryker disable next-line ArrayDeclaration: a Query's result always holds Items (empty when nothing matched).
      for (const item of result.Items ?? []) {
        // Stryker disable next-line StringLiteral,OptionalChaining: an outbox index item always carries its sort key.
        const sortKey = item[A.appliedAtMs]?.S ?? "";
        // Stryker disable next-line StringLiteral,OptionalChaining: an index item always carries the table's key.
        if (sortKey !== before) entries.push({ sortKey, key: item[A.key]?.S ?? "" });
      }
      start = result.LastEvaluatedKey;
      if (!start || entries.length >= query.limit) break;
    }
    // Stopped on the page cap with fewer than `limit`: nothing below this was read.
    // Stryker disable next-line OptionalChaining: a LastEvaluatedKey of an index query holds the index's keys.
    const stoppedAt = start && entries.length < query.limit ? start[A.appliedAtMs]?.S : undefined;
    return {
      // Stryker disable next-line MethodExpression: a partition's entries past its newest `limit` are never among the page's newest `limit`, and it has more either way.
      entries: entries.slice(0, query.limit),
      more: entries.length > query.limit || start !== undefined,
      stoppedAt,
    };
  }
}

// What a terminal listing's cursor is tied to: the same filters must come with it.
function terminalScope(query: TerminalStepQuery) {
  return {
    // Stryker disable next-line StringLiteral: terminal status names run together only one way, so no two lists of them join alike.
    statuses: query.statuses.join(","),
    since: query.sinceMs,
    until: query.untilMs,
    assistant: query.assistantId ?? null,
  };
}

const TERMINAL_CURSOR_FIELDS = ["statuses", "since", "until", "assistant", "before"];

function decodeTerminalCursor(cursor: string, scope: ReturnType<typeof terminalScope>): string {
  const position = decodeCursor(cursor) as Record<string, unknown> | undefined;
  const before = position?.before;
  // An outbox sort key (`<13 digits>#<step id>`) within the listing's time range: one below
  // `since` or above `until` would turn the index's BETWEEN upside down, which DynamoDB refuses.
  if (
    typeof position !== "object" ||
    position === null ||
    Array.isArray(position) ||
    Object.keys(position).length !== TERMINAL_CURSOR_FIELDS.length ||
    !isKeyPart(before, "sort") ||
    !/^\d{13}#./s.test(before) ||
    Number(before.slice(0, 13)) < scope.since ||
    Number(before.slice(0, 13)) > scope.until
  ) {
    throw new InvalidCursorError("cursor is not one this API returned");
  }
  const same = Object.entries(scope).every(([key, value]) => position[key] === value);
  if (!same) throw new InvalidCursorError("cursor belongs to a listing with other filters");
  return before;
}

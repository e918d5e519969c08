import { alias as n, num } from "./item-codec.js";
import type { Table } from "./table.js";
import { TABLE_SCHEMA } from "./table-schema.js";

const A = TABLE_SCHEMA.attributes;
const LEASE = `SET ${n(A.leaseUntil)} = :until, ${n(A.version)} = if_not_exists(${n(A.version)}, :zero) + :one`;
const LEASE_FREE = `attribute_not_exists(${n(A.leaseUntil)}) OR ${n(A.leaseUntil)} < :now`;
const RELEASE = `SET ${n(A.leaseUntil)} = :zero`;
const AT_VERSION = `${n(A.version)} = :version`;

/**
 * Leases on the table (a sink's queue shard, its probe): one item each, taken while free or run
 * out, each taking numbered by the item's version so that only its holder gives it back.
 */
export class DeliveryLeases {
  readonly #table: Table;

  constructor(table: Table) {
    this.#table = table;
  }

  /** Takes the lease until `untilMs` if it is free at `nowMs`: its new version, or null when held. */
  async acquire(key: string, untilMs: number, nowMs: number): Promise<number | null> {
    const result = await this.#table.update(
      "acquireLease",
      key,
      LEASE,
      LEASE_FREE,
      {
        ":until": { N: String(untilMs) },
        ":now": { N: String(nowMs) },
        ":zero": { N: "0" },
        ":one": { N: "1" },
      },
      { values: "UPDATED_NEW" },
    );
    // Stryker disable next-line OptionalChaining: UPDATED_NEW always answers the version it has just set.
    return result.ok ? num(result.old?.[A.version]) : null;
  }

  /** Gives back the lease taken as `version`. */
  async release(key: string, version: number): Promise<void> {
    // Refused when someone took it over after it ran out: theirs now, nothing to give back.
    await this.#table.update("releaseLease", key, RELEASE, AT_VERSION, {
      ":zero": { N: "0" },
      ":version": { N: String(version) },
    });
  }
}

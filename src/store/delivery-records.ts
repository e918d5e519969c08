import type { AttributeValue } from "@aws-sdk/client-dynamodb";
import type { Delivery, DeliveryRef } from "../domain/delivery.js";
import { type SubjectDocument, type SubjectKey, subjectKeyOf } from "./delivery-store.js";
import {
  decodeDelivery,
  decodeDocument,
  deliveryKey,
  encodeDelivery,
  fitsKey,
  alias as n,
  numOrNull,
  subjectItemKey,
} from "./item-codec.js";
import type { Table } from "./table.js";
import { TABLE_SCHEMA } from "./table-schema.js";

const A = TABLE_SCHEMA.attributes;
const NEW_ONLY = `attribute_not_exists(${n(A.key)})`;
const AT_VERSION = `${n(A.version)} = :version`;

/** Settings of the delivery records. */
export interface DeliveryRecordsOptions {
  /** Seconds a delivery is kept after its last write; 0 keeps it forever. */
  readonly retentionS: number;
  readonly nowMs: () => number;
}

/**
 * Delivery items, and the subjects' documents they send. Every delivery write is a whole-item put
 * conditional on the version its writer read, so concurrent writers (sweepers, the prompt path,
 * operators) never overwrite each other's outcome.
 */
export class DeliveryRecords {
  readonly #table: Table;
  readonly #options: DeliveryRecordsOptions;

  constructor(table: Table, options: DeliveryRecordsOptions) {
    this.#table = table;
    this.#options = options;
  }

  /** Writes a new delivery; false when one with its key exists. */
  create(delivery: Delivery): Promise<boolean> {
    return this.#put(delivery, NEW_ONLY);
  }

  /** Replaces a delivery still at `next.version - 1`; false when another writer changed it since. */
  replace(next: Delivery): Promise<boolean> {
    return this.#put(next, AT_VERSION, { ":version": { N: String(next.version - 1) } });
  }

  async get(ref: DeliveryRef): Promise<Delivery | null> {
    const key = deliveryKey(ref);
    if (!fitsKey(key)) return null;
    const item = await this.#table.get("getDelivery", key);
    return item ? decodeDelivery(item) : null;
  }

  async getMany(refs: readonly DeliveryRef[]): Promise<Delivery[]> {
    const wanted = refs.map(deliveryKey).filter((key) => fitsKey(key));
    const found = await this.#table.getMany("getDeliveries", wanted);
    return wanted.flatMap((key) => {
      const item = found.get(key);
      return item ? [decodeDelivery(item)] : [];
    });
  }

  async subjects(refs: readonly SubjectKey[]): Promise<Map<string, SubjectDocument>> {
    const keys = [...new Set(refs.map(subjectItemKey))].filter((key) => fitsKey(key));
    const found = await this.#table.getMany("readDocuments", keys, [A.document, A.stalledAt]);
    const documents = new Map<string, SubjectDocument>();
    for (const ref of refs) {
      const item = found.get(subjectItemKey(ref));
      if (item?.[A.document] === undefined) continue;
      documents.set(subjectKeyOf(ref), {
        document: decodeDocument(item),
        stalledAtMs: numOrNull(item[A.stalledAt]),
      });
    }
    return documents;
  }

  #put(delivery: Delivery, condition: string, values?: Record<string, AttributeValue>): Promise<boolean> {
    const { retentionS, nowMs } = this.#options;
    const ttl = retentionS > 0 ? Math.floor(nowMs() / 1000) + retentionS : null;
    return this.#table.put("writeDelivery", encodeDelivery(delivery, ttl), condition, values);
  }
}

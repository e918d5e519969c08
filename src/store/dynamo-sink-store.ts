import {
  type AttributeValue,
  type DynamoDBClient,
  GetItemCommand,
  UpdateItemCommand,
} from "@aws-sdk/client-dynamodb";
import { type SinkHealth, unknownSinkHealth } from "../domain/sink-health.js";
import type { SinkHealthStore } from "./delivery-store.js";
import { decodeSinkHealth, type Item, keyOf, alias as n, namesFor, sinkKey } from "./item-codec.js";
import { guardStore, isConditionalFailure, toStoreError } from "./store-errors.js";
import { TABLE_SCHEMA } from "./table-schema.js";

const A = TABLE_SCHEMA.attributes;

const BUMP_VERSION = `${n(A.version)} = if_not_exists(${n(A.version)}, :zero) + :one`;
const SUCCESS = `SET ${n(A.lastSuccessAt)} = :at, ${n(A.lastSuccessStatus)} = :status, ${n(A.failures)} = :zero, ${n(A.health)} = :healthy, ${n(A.probeLevel)} = :zero, ${BUMP_VERSION} REMOVE ${n(A.probeAt)}`;
const SUCCESS_WHILE_DISABLED = `SET ${n(A.lastSuccessAt)} = :at, ${n(A.lastSuccessStatus)} = :status, ${BUMP_VERSION}`;
const NOT_DISABLED = `attribute_not_exists(${n(A.health)}) OR ${n(A.health)} <> :disabled`;
const LAST_FAILURE = `SET ${n(A.lastFailureAt)} = :at, ${n(A.lastFailureStatus)} = :status, ${n(A.lastFailureError)} = :error, ${BUMP_VERSION}`;
const FAILURE = `${LAST_FAILURE}, ${n(A.failures)} = if_not_exists(${n(A.failures)}, :zero) + :one`;
const BEFORE_NO_SUCCESS = `attribute_not_exists(${n(A.lastSuccessAt)}) OR ${n(A.lastSuccessAt)} <= :at`;
const PROBE_FAILED = `, ${n(A.probeAt)} = :probe, ${n(A.probeLevel)} = if_not_exists(${n(A.probeLevel)}, :zero) + :one`;
const BECOME_FAILING = `SET ${n(A.health)} = :failing, ${n(A.probeAt)} = :probe, ${n(A.probeLevel)} = :zero, ${BUMP_VERSION}`;
const IS_HEALTHY = `(attribute_not_exists(${n(A.health)}) OR ${n(A.health)} = :healthy) AND ${n(A.failures)} >= :threshold`;
const DISABLE = `SET ${n(A.health)} = :disabled, ${n(A.disabledReason)} = :reason, ${BUMP_VERSION}`;
const ENABLE = `SET ${n(A.health)} = :healthy, ${n(A.failures)} = :zero, ${n(A.probeLevel)} = :zero, ${BUMP_VERSION} REMOVE ${n(A.disabledReason)}, ${n(A.probeAt)}`;

const ZERO = { N: "0" };
const ONE = { N: "1" };
const statusValue = (status: number | null): AttributeValue =>
  status === null ? { NULL: true } : { N: String(status) };

/** Settings of the DynamoDB-backed sink health store. */
export interface DynamoSinkStoreOptions {
  readonly client: DynamoDBClient;
  readonly tableName: string;
}

/** {@link SinkHealthStore} on DynamoDB: one item per sink, changed only by atomic updates. */
export class DynamoSinkStore implements SinkHealthStore {
  readonly #client: DynamoDBClient;
  readonly #table: string;

  constructor(options: DynamoSinkStoreOptions) {
    this.#client = options.client;
    this.#table = options.tableName;
  }

  async get(sink: string): Promise<SinkHealth> {
    const { Item: item } = await guardStore(
      "getSink",
      this.#client.send(
        new GetItemCommand({ TableName: this.#table, Key: keyOf(sinkKey(sink)), ConsistentRead: true }),
      ),
    );
    return item ? decodeSinkHealth(sink, item) : unknownSinkHealth(sink);
  }

  async recordSuccess(sink: string, status: number | null, atMs: number): Promise<SinkHealth> {
    const values = {
      ":at": { N: String(atMs) },
      ":status": statusValue(status),
      ":zero": ZERO,
      ":one": ONE,
    };
    const healed = await this.#update(sink, SUCCESS, NOT_DISABLED, {
      ...values,
      ":healthy": { S: "healthy" },
      ":disabled": { S: "disabled" },
    });
    // A disabled sink stays disabled until an operator enables it; its last success is still news.
    return healed ?? ((await this.#update(sink, SUCCESS_WHILE_DISABLED, undefined, values)) as SinkHealth);
  }

  async recordFailure(
    sink: string,
    failure: { status: number | null; error: string; atMs: number },
    options: { failingAfter: number; nextProbeAtMs: number; probe: boolean; counts: boolean },
  ): Promise<SinkHealth> {
    const values: Record<string, AttributeValue> = {
      ":at": { N: String(failure.atMs) },
      ":status": statusValue(failure.status),
      ":error": { S: failure.error },
      ":zero": ZERO,
      ":one": ONE,
    };
    if (options.probe) values[":probe"] = { N: String(options.nextProbeAtMs) };
    const withProbe = (update: string) => (options.probe ? update + PROBE_FAILED : update);
    // A failure counts only if no later success was recorded first: writes from several attempts
    // and instances can land out of order, and a success in between means "not in a row".
    const counted = options.counts
      ? await this.#update(sink, withProbe(FAILURE), BEFORE_NO_SUCCESS, values)
      : null;
    const after =
      counted ?? ((await this.#update(sink, withProbe(LAST_FAILURE), undefined, values)) as SinkHealth);
    if (after.state !== "healthy" || after.consecutiveFailures < options.failingAfter) return after;
    // Exactly one instance turns it failing, whichever failure crossed the threshold first.
    const failing = await this.#update(sink, BECOME_FAILING, IS_HEALTHY, {
      ":failing": { S: "failing" },
      ":healthy": { S: "healthy" },
      ":probe": { N: String(options.nextProbeAtMs) },
      ":threshold": { N: String(options.failingAfter) },
      ":zero": ZERO,
      ":one": ONE,
    });
    return failing ?? this.get(sink);
  }

  async disable(sink: string, reason: string): Promise<SinkHealth> {
    return (await this.#update(sink, DISABLE, undefined, {
      ":disabled": { S: "disabled" },
      ":reason": { S: reason },
      ":zero": ZERO,
      ":one": ONE,
    })) as SinkHealth;
  }

  async enable(sink: string): Promise<SinkHealth> {
    return (await this.#update(sink, ENABLE, undefined, {
      ":healthy": { S: "healthy" },
      ":zero": ZERO,
      ":one": ONE,
    })) as SinkHealth;
  }

  // One atomic update returning the new health; null when its condition did not hold.
  async #update(
    sink: string,
    update: string,
    condition: string | undefined,
    values: Record<string, AttributeValue>,
  ): Promise<SinkHealth | null> {
    try {
      const result = await this.#client.send(
        new UpdateItemCommand({
          TableName: this.#table,
          Key: keyOf(sinkKey(sink)),
          UpdateExpression: update,
          ...(condition ? { ConditionExpression: condition } : {}),
          ExpressionAttributeNames: condition ? namesFor(update, condition) : namesFor(update),
          ExpressionAttributeValues: values,
          ReturnValues: "ALL_NEW",
        }),
      );
      return decodeSinkHealth(sink, (result.Attributes ?? {}) as Item);
    } catch (error) {
      if (isConditionalFailure(error)) return null;
      throw toStoreError(error, "updateSink");
    }
  }
}

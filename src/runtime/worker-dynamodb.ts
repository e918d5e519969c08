// The Worker's DynamoDB client. wrangler.toml aliases `@aws-sdk/client-dynamodb` to this module, so
// the Worker bundle gets these few names instead of the AWS SDK (which was two thirds of a bundle
// with a size budget); Node and Lambda keep the real SDK, and TypeScript keeps checking the stores
// against the SDK's types. It therefore exports, at run time, every name src/ imports from the SDK
// as a value (test/worker-dynamodb.test.ts checks that), shaped as the stores use them: commands
// holding their `input`, a client whose `send` answers the SDK's output and throws the SDK's errors.
// DynamoDB's JSON protocol is plain: POST the input with the operation in X-Amz-Target, SigV4-signed
// (by aws4fetch, a small, well-kept signer made for Workers), and read JSON back.
import type * as Sdk from "@aws-sdk/client-dynamodb";
import { AwsClient } from "aws4fetch";

/** What the Worker passes to `new DynamoDBClient(…)`: the subset of the SDK's config this client reads. */
export interface WorkerDynamoConfig {
  readonly region: string;
  /** An explicit endpoint (a local DynamoDB-compatible server); else DynamoDB in `region`. */
  readonly endpoint?: string;
  readonly credentials: {
    readonly accessKeyId: string;
    readonly secretAccessKey: string;
    readonly sessionToken?: string;
  };
  /** Attempts per call, first included, as the SDK counts them (its default: 3). */
  readonly maxAttempts?: number;
  /** `requestTimeout`: ms an attempt may take, answer read included; none when absent or 0. */
  readonly requestHandler?: { readonly requestTimeout?: number };
}

/** Options of one call, as the SDK's `send` takes them. */
export interface SendOptions {
  readonly abortSignal?: AbortSignal;
}

/** One operation's request; `operation` is explicit because the Worker bundle does not keep class names. */
export interface Command<Input, Output> {
  readonly operation: string;
  readonly input: Input;
  /** Type only: what `send` answers. */
  readonly $output?: Output;
}

/** An attempt that did not answer within the configured `requestTimeout` (retried, then thrown). */
export class TimeoutError extends Error {
  override readonly name = "TimeoutError";
}

/** An error DynamoDB answered with: `name` is its error code, as the SDK names its exceptions. */
export class DynamoServiceError extends Error {
  /** The error answer's other fields (e.g. `Item` with ReturnValuesOnConditionCheckFailure). */
  [field: string]: unknown;
  $fault: "client" | "server";
  $metadata: { httpStatusCode: number; requestId?: string; attempts: number; totalRetryDelay: number };
  constructor(name: string, message: string, status: number) {
    super(message);
    this.name = name;
    this.$fault = status >= 500 ? "server" : "client";
    this.$metadata = { httpStatusCode: status, attempts: 1, totalRetryDelay: 0 };
  }
}

// The SDK's standard retry mode: these codes and statuses are worth another attempt, nothing else.
const THROTTLING = new Set([
  "ThrottlingException",
  "Throttling",
  "ProvisionedThroughputExceededException",
  "RequestLimitExceeded",
  "RequestThrottled",
  "RequestThrottledException",
  "TooManyRequestsException",
  "LimitExceededException",
  "TransactionInProgressException",
  "SlowDown",
]);
const TRANSIENT = new Set(["TimeoutError", "RequestTimeout", "RequestTimeoutException"]);
const BACKOFF_BASE_MS = 100;
const THROTTLED_BACKOFF_BASE_MS = 500;
const MAX_BACKOFF_MS = 20_000;
const DEFAULT_MAX_ATTEMPTS = 3;
// Carried by every call so they stay recognisable in CloudTrail and to AWS support.
const USER_AGENT = "stepwatch aws4fetch api/dynamodb";

/**
 * DynamoDB over its JSON protocol with fetch, for the Worker bundle (stands in for the SDK's
 * `DynamoDBClient` there). Retries throttling, 5xx, time-outs and network failures like the SDK's
 * standard mode (full-jitter exponential backoff, `maxAttempts` in all); never other errors.
 */
export class DynamoDBClient {
  readonly #aws: AwsClient;
  readonly #url: string;
  readonly #maxAttempts: number;
  readonly #timeoutMs: number;
  readonly #random: () => number;

  constructor(config: WorkerDynamoConfig, random: () => number = Math.random) {
    const { region, credentials } = config;
    this.#aws = new AwsClient({ ...credentials, service: "dynamodb", region, retries: 0 });
    this.#url = config.endpoint ?? `https://dynamodb.${region}.amazonaws.com`;
    this.#maxAttempts = Math.max(1, config.maxAttempts ?? DEFAULT_MAX_ATTEMPTS);
    this.#timeoutMs = config.requestHandler?.requestTimeout ?? 0;
    this.#random = random;
  }

  /** Runs one command: its output (binary attributes as Uint8Array), or its error, after retries. */
  async send<Input, Output>(command: Command<Input, Output>, options?: SendOptions): Promise<Output> {
    const body = JSON.stringify(command.input, binaryToBase64);
    let totalRetryDelay = 0;
    for (let attempt = 1; ; attempt++) {
      try {
        const output = await this.#attempt(command.operation, body, options?.abortSignal);
        Object.assign(output.$metadata, { attempts: attempt, totalRetryDelay });
        return output as Output;
      } catch (error) {
        const meta = (error as { $metadata?: Record<string, unknown> }).$metadata;
        if (meta) Object.assign(meta, { attempts: attempt, totalRetryDelay });
        const retry = attempt < this.#maxAttempts && !options?.abortSignal?.aborted && retryable(error);
        if (!retry) throw error;
        const base = THROTTLING.has((error as Error).name) ? THROTTLED_BACKOFF_BASE_MS : BACKOFF_BASE_MS;
        const delay = Math.floor(this.#random() * Math.min(MAX_BACKOFF_MS, base * 2 ** attempt));
        totalRetryDelay += delay;
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  // One signed POST; the time-out covers reading the answer too.
  async #attempt(operation: string, body: string, callerSignal: AbortSignal | undefined) {
    const timeout = this.#timeoutMs > 0 ? AbortSignal.timeout(this.#timeoutMs) : undefined;
    const signals = [timeout, callerSignal].filter((s): s is AbortSignal => s !== undefined);
    let status: number;
    let text: string;
    let requestId: string | undefined;
    let errorType: string | null;
    try {
      const request = await this.#aws.sign(this.#url, {
        // Stryker disable next-line StringLiteral: aws4fetch sends a request with a body and no method as a POST.
        method: "POST",
        headers: {
          "content-type": "application/x-amz-json-1.0",
          "x-amz-target": `DynamoDB_20120810.${operation}`,
          "user-agent": USER_AGENT,
        },
        body,
        // Stryker disable next-line ConditionalExpression,EqualityOperator: AbortSignal.any of no signal never aborts, as no signal does.
        ...(signals.length > 0
          ? // Stryker disable next-line ConditionalExpression,EqualityOperator: AbortSignal.any of one signal aborts with it, as that one does.
            { signal: signals.length === 1 ? signals[0] : AbortSignal.any(signals) }
          : {}),
      });
      const response = await fetch(request);
      status = response.status;
      requestId = response.headers.get("x-amzn-requestid") ?? undefined;
      errorType = response.headers.get("x-amzn-errortype");
      text = await response.text();
    } catch (error) {
      if (timeout?.aborted && !callerSignal?.aborted) {
        throw new TimeoutError(`DynamoDB ${operation} did not answer within ${this.#timeoutMs} ms`, {
          cause: error,
        });
      }
      throw error;
    }
    const parsed = parseJson(text);
    const $metadata = { httpStatusCode: status, ...(requestId ? { requestId } : {}) };
    if (status >= 200 && status < 300 && parsed) return Object.assign(decodeOutput(parsed), { $metadata });
    throw serviceError(status, errorType, parsed, text, $metadata);
  }

  /** Nothing to release: fetch keeps no sockets of ours. */
  destroy(): void {}
}

function parseJson(text: string): Record<string, unknown> | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    // Not JSON (a proxy's HTML page, say): the caller reads the text instead.
  }
  // JSON.parse builds its objects in this realm: `instanceof Object` is false for null and the other primitives.
  return value instanceof Object && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

// The SDK's naming: the code from X-Amzn-ErrorType, else `__type`/`code`, without its namespace
// ("com.amazonaws.dynamodb.v20120810#…") or suffix (":http://…"); the status when there is none.
function serviceError(
  status: number,
  errorType: string | null,
  parsed: Record<string, unknown> | undefined,
  text: string,
  $metadata: { httpStatusCode: number; requestId?: string },
): DynamoServiceError {
  const raw = errorType ?? parsed?.__type ?? parsed?.code ?? parsed?.Code;
  // Stryker disable next-line OptionalChaining: split answers at least one string, so pop() always has one.
  const code = typeof raw === "string" ? (raw.split("#").pop()?.split(":")[0] ?? raw) : String(status);
  const message = parsed?.message ?? parsed?.Message;
  const error = new DynamoServiceError(
    code || String(status),
    typeof message === "string" ? message : parsed ? code : text.slice(0, 200) || code,
    status,
  );
  if (parsed) {
    const { __type: _type, message: _m, Message: _M, ...fields } = decodeOutput(parsed);
    Object.assign(error, fields);
  }
  Object.assign(error.$metadata, $metadata);
  return error;
}

function retryable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (THROTTLING.has(error.name) || TRANSIENT.has(error.name)) return true;
  if (error instanceof DynamoServiceError) {
    const status = error.$metadata.httpStatusCode;
    return status === 429 || status >= 500;
  }
  // fetch rejected without an answer: the network (a TypeError in Node and the standard, a plain
  // Error in workerd). Aborts by the caller were excluded before.
  return error.name !== "AbortError";
}

// JSON.stringify replacer: binary attributes (B, and BS's members) travel as base64. `this[key]` is
// the value before any toJSON, so a Node Buffer is encoded as its bytes too.
function binaryToBase64(this: Record<string, unknown>, key: string, value: unknown): unknown {
  const raw = this[key];
  return raw instanceof Uint8Array ? toBase64(raw) : value;
}

function toBase64(bytes: Uint8Array): string {
  let binary = "";
  // Chunked: spreading a large body into one call would overflow the argument limit.
  // Stryker disable next-line EqualityOperator: one more pass would add String.fromCharCode() of no bytes, "".
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

function fromBase64(text: string): Uint8Array {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  // Stryker disable next-line EqualityOperator: a write past a typed array's end is ignored.
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

type WireItem = Record<string, Record<string, unknown>>;

// The outputs that hold attribute values (of the operations exported here, and the error answer's
// Item): their B and BS values become Uint8Array, as the SDK answers them.
function decodeOutput(output: Record<string, unknown>): Record<string, unknown> {
  for (const field of ["Item", "Attributes", "LastEvaluatedKey"]) {
    if (output[field]) decodeItem(output[field] as WireItem);
  }
  // Stryker disable next-line ArrayDeclaration: a string's characters hold no attribute values to decode.
  for (const item of (output.Items as WireItem[] | undefined) ?? []) decodeItem(item);
  for (const items of Object.values((output.Responses as Record<string, WireItem[]>) ?? {})) {
    for (const item of items) decodeItem(item);
  }
  for (const request of Object.values(
    (output.UnprocessedKeys as Record<string, { Keys?: WireItem[] }>) ?? {},
  )) {
    // Stryker disable next-line ArrayDeclaration: a string's characters hold no attribute values to decode.
    for (const key of request.Keys ?? []) decodeItem(key);
  }
  return output;
}

function decodeItem(item: WireItem): void {
  for (const value of Object.values(item)) decodeValue(value);
}

function decodeValue(value: Record<string, unknown>): void {
  if (typeof value.B === "string") value.B = fromBase64(value.B);
  else if (Array.isArray(value.BS)) value.BS = (value.BS as string[]).map(fromBase64);
  else if (value.M) decodeItem(value.M as WireItem);
  else if (Array.isArray(value.L)) for (const member of value.L) decodeValue(member);
}

// Commands: what the stores construct. Each names its operation and carries the SDK's types.
function command<Input, Output>(operation: string) {
  return class implements Command<Input, Output> {
    readonly operation = operation;
    declare readonly $output?: Output;
    constructor(readonly input: Input) {}
  };
}

/** GetItem, as the SDK's command. */
export const GetItemCommand = command<Sdk.GetItemCommandInput, Sdk.GetItemCommandOutput>("GetItem");
/** PutItem, as the SDK's command. */
export const PutItemCommand = command<Sdk.PutItemCommandInput, Sdk.PutItemCommandOutput>("PutItem");
/** UpdateItem, as the SDK's command. */
export const UpdateItemCommand = command<Sdk.UpdateItemCommandInput, Sdk.UpdateItemCommandOutput>(
  "UpdateItem",
);
/** DeleteItem, as the SDK's command. */
export const DeleteItemCommand = command<Sdk.DeleteItemCommandInput, Sdk.DeleteItemCommandOutput>(
  "DeleteItem",
);
/** Query, as the SDK's command. */
export const QueryCommand = command<Sdk.QueryCommandInput, Sdk.QueryCommandOutput>("Query");
/** BatchGetItem, as the SDK's command. */
export const BatchGetItemCommand = command<Sdk.BatchGetItemCommandInput, Sdk.BatchGetItemCommandOutput>(
  "BatchGetItem",
);
/** DescribeTable, as the SDK's command. */
export const DescribeTableCommand = command<Sdk.DescribeTableCommandInput, Sdk.DescribeTableCommandOutput>(
  "DescribeTable",
);
/** CreateTable, as the SDK's command. */
export const CreateTableCommand = command<Sdk.CreateTableCommandInput, Sdk.CreateTableCommandOutput>(
  "CreateTable",
);
/** UpdateTimeToLive, as the SDK's command. */
export const UpdateTimeToLiveCommand = command<
  Sdk.UpdateTimeToLiveCommandInput,
  Sdk.UpdateTimeToLiveCommandOutput
>("UpdateTimeToLive");

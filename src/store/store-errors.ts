/** The store is throttled, unreachable or missing its table: the caller should retry later. */
export class StoreUnavailableError extends Error {
  override readonly name = "StoreUnavailableError";
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/**
 * A write that DynamoDB would refuse for its size: decided before the request, so the caller can
 * answer 413 instead of the store failing.
 */
export class ItemTooLargeError extends Error {
  override readonly name = "ItemTooLargeError";
  constructor(
    /** The item's size as DynamoDB counts it, in bytes. */
    readonly bytes: number,
    /** The most DynamoDB accepts. */
    readonly limit: number,
    options?: ErrorOptions,
  ) {
    super(`the stored item would be ${bytes} bytes; DynamoDB keeps at most ${limit} bytes per item`, options);
  }
}

/** A list cursor that this store did not hand out (or that belongs to another list). */
export class InvalidCursorError extends Error {
  override readonly name = "InvalidCursorError";
}

const UNAVAILABLE_ERRORS = new Set([
  "ProvisionedThroughputExceededException",
  "ThrottlingException",
  "RequestLimitExceeded",
  "LimitExceededException",
  "InternalServerError",
  "ServiceUnavailable",
  "ResourceNotFoundException",
  "TimeoutError",
  "RequestTimeout",
  "AbortError",
]);

const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
]);

/**
 * Whether an error from the DynamoDB client means "try again later" (throttling, network, 5xx,
 * time-out, missing table) rather than a bug in the request.
 */
export function isStoreUnavailable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (UNAVAILABLE_ERRORS.has(error.name)) return true;
  const meta = (error as { $metadata?: { httpStatusCode?: number } }).$metadata;
  if (meta?.httpStatusCode !== undefined && meta.httpStatusCode >= 500) return true;
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string" && NETWORK_CODES.has(code)) return true;
  // fetch reports network failures without a code: a TypeError on Node and in the standard, a plain
  // Error("Network connection lost.") in workerd.
  if (error.name === "TypeError" && /fetch|network|connect/i.test(error.message)) return true;
  return /^Network connection lost/i.test(error.message);
}

/** Whether DynamoDB refused a write because its condition did not hold. */
export function isConditionalFailure(error: unknown): boolean {
  return error instanceof Error && error.name === "ConditionalCheckFailedException";
}

/** The error callers should see: {@link StoreUnavailableError} for "try again later", else the original. */
export function toStoreError(error: unknown, operation: string): unknown {
  if (!isStoreUnavailable(error)) return error;
  return new StoreUnavailableError(`DynamoDB ${operation} failed: ${(error as Error).name}`, {
    cause: error,
  });
}

/** Awaits a DynamoDB call, translating its failure with {@link toStoreError}. */
export async function guardStore<T>(operation: string, call: Promise<T>): Promise<T> {
  try {
    return await call;
  } catch (error) {
    throw toStoreError(error, operation);
  }
}

import { quarantineId } from "../../src/domain/quarantined-request.js";
import { DynamoQuarantineStore } from "../../src/store/dynamo-quarantine-store.js";
import type { TestStore } from "./test-store.js";

/**
 * Keeps a request in the quarantine as an older release would have: a body today's rules accept,
 * refused then with a 422. Returns its quarantine id (derived from the webhook id, as ingest does).
 */
export async function seedQuarantined(
  store: TestStore,
  body: string,
  options: { webhookId: string; timestamp?: number },
): Promise<string> {
  const { webhookId } = options;
  const id = await quarantineId(webhookId);
  const now = Date.now();
  await new DynamoQuarantineStore({ client: store.client, tableName: store.tableName }).keep(
    {
      id,
      receivedAtMs: now,
      expiresAt: Math.floor(now / 1000) + 86_400,
      webhookId,
      webhookTimestamp: options.timestamp ?? Math.floor(now / 1000),
      headers: { "webhook-id": webhookId, "content-type": "application/json" },
      bodyBytes: Buffer.byteLength(body),
      refusal: { status: 422, code: "invalid_payload", message: "refused by an older release", issues: [] },
      replay: null,
      version: 1,
    },
    new TextEncoder().encode(body),
  );
  return id;
}

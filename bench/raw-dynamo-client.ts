import { Agent, request } from "node:http";

/** An answer of the raw client. */
export interface RawAnswer {
  readonly status: number;
  readonly body: string;
}

/**
 * The smallest useful DynamoDB client: JSON over keep-alive HTTP with the X-Amz-Target header.
 * Measurement apparatus for the store's ceiling, not product code: it sends a syntactically valid
 * but unverifiable SigV4 header, which dynalite checks for shape only (AWS would refuse it).
 */
export function createRawDynamoClient(endpoint: string, maxSockets: number) {
  const url = new URL(endpoint);
  const agent = new Agent({ keepAlive: true, maxSockets });
  const date = "20250101T000000Z";
  const authorization =
    "AWS4-HMAC-SHA256 Credential=bench/20250101/us-east-1/dynamodb/aws4_request, " +
    "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=" +
    "0".repeat(64);
  return {
    call(operation: string, body: string): Promise<RawAnswer> {
      return new Promise((resolve, reject) => {
        const req = request(
          {
            agent,
            host: url.hostname,
            port: url.port,
            method: "POST",
            path: "/",
            headers: {
              "content-type": "application/x-amz-json-1.0",
              "content-length": Buffer.byteLength(body),
              "x-amz-target": `DynamoDB_20120810.${operation}`,
              "x-amz-date": date,
              authorization,
            },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (chunk: Buffer) => chunks.push(chunk));
            res.on("end", () =>
              resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }),
            );
            res.on("error", reject);
          },
        );
        req.on("error", reject);
        req.end(body);
      });
    },
    close(): void {
      agent.destroy();
    },
  };
}

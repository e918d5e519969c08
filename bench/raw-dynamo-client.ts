import { Agent, request } from "node:http";
import { AwsV4Signer } from "aws4fetch";

/** An answer of the raw client. */
export interface RawAnswer {
  readonly status: number;
  readonly body: string;
}

/**
 * The smallest useful DynamoDB client: JSON over keep-alive HTTP with the X-Amz-Target header.
 * Measurement apparatus for the store's ceiling, not product code: each call is SigV4-signed by
 * aws4fetch's signer (the embedded store refuses anything else) with the bench's key pair, and
 * sent over node:http without the SDK's middleware.
 */
export function createRawDynamoClient(endpoint: string, maxSockets: number) {
  const url = new URL(endpoint);
  const agent = new Agent({ keepAlive: true, maxSockets });
  const cache = new Map<string, ArrayBuffer>();
  return {
    async call(operation: string, body: string): Promise<RawAnswer> {
      const signed = await new AwsV4Signer({
        url: endpoint,
        method: "POST",
        headers: {
          "content-type": "application/x-amz-json-1.0",
          "x-amz-target": `DynamoDB_20120810.${operation}`,
        },
        body,
        accessKeyId: "bench",
        secretAccessKey: "bench",
        service: "dynamodb",
        region: "us-east-1",
        cache,
      }).sign();
      const headers: Record<string, string | number> = { "content-length": Buffer.byteLength(body) };
      signed.headers.forEach((value, name) => {
        headers[name] = value;
      });
      return new Promise((resolve, reject) => {
        const req = request(
          {
            agent,
            host: url.hostname,
            port: url.port,
            method: "POST",
            path: "/",
            headers,
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

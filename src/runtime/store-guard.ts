import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { EventEmitter } from "node:events";
import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";
import type { StoreCredentials } from "./store-credentials.js";

// Why SigV4 rather than a secret in a header of our own: every DynamoDB client already signs each
// request with its key pair (the AWS SDK on Node, aws4fetch in the Worker client, the AWS CLI), so
// the credential travels the way clients send it, with no middleware to add to each, and the secret
// key itself never crosses the socket. The body is checked against the signature too (hashed as it
// streams, nothing buffered here), so a signed request cannot carry another body.
//
// Not checked: how old X-Amz-Date is. A replay needs a request seen on the wire, and reading
// loopback traffic takes root or this user, who can read the credential file anyway.

type Refusal = readonly [status: number, body: Buffer];

const refusal = (status: number, type: string, message: string): Refusal => [
  status,
  Buffer.from(JSON.stringify({ __type: `com.amazon.coral.service#${type}`, message })),
];

// A page in a browser may reach loopback; none of its requests are stepwatch's.
const BROWSER = refusal(
  403,
  "AccessDeniedException",
  "Browser requests are refused: this store answers the stepwatch that started it alone",
);
// What DynamoDB answers for a key it does not know, and for a signature that does not match.
const UNRECOGNIZED = refusal(
  400,
  "UnrecognizedClientException",
  "The security token included in the request is invalid.",
);
const BAD_SIGNATURE = refusal(
  400,
  "InvalidSignatureException",
  "The request signature we calculated does not match the signature you provided.",
);

// The header the SDK and aws4fetch write, parsed in one match: key id, date, region, service, the
// signed header names, the signature.
const AUTHORIZATION =
  /^AWS4-HMAC-SHA256 Credential=([^/\s,]+)\/(\d{8})\/([^/\s,]+)\/([^/\s,]+)\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/;

// Headers whose signing we insist on: what names the store and the time of signing (SigV4's own
// rule) and the operation dynalite performs.
const MUST_SIGN = ["host", "x-amz-date", "x-amz-target"];

/**
 * Wraps the embedded store's request handler so that it sees only requests signed (SigV4) with
 * `credentials`: browser requests (any `Origin`, every `OPTIONS` preflight) are refused with 403,
 * requests without that key id with 400 `UnrecognizedClientException`, and ones whose signature
 * does not match the request as received (method, path, signed headers, body) with 400
 * `InvalidSignatureException`, each before the handler acts on them. The handler gets the request's
 * body as it streams and its end only once the signature is checked.
 */
export function guardStoreRequests(credentials: StoreCredentials, handler: RequestListener): RequestListener {
  const keyId = Buffer.from(credentials.accessKeyId);
  const secret = `AWS4${credentials.secretAccessKey}`;
  // The signing key depends on the day, region and service only: derived once per day.
  let keyScope = "";
  let key = Buffer.alloc(0);
  const signingKey = (date: string, region: string, service: string): Buffer => {
    const scope = `${date}/${region}/${service}`;
    if (scope !== keyScope) {
      const dated = createHmac("sha256", secret).update(date).digest();
      const regional = createHmac("sha256", dated).update(region).digest();
      const serviced = createHmac("sha256", regional).update(service).digest();
      key = createHmac("sha256", serviced).update("aws4_request").digest();
      keyScope = scope;
    }
    return key;
  };

  const signedCorrectly = (request: IncomingMessage, auth: RegExpExecArray, payloadHash: string): boolean => {
    const [, , date = "", region = "", service = "", signedHeaders = "", signature = ""] = auth;
    const amzDate = request.headers["x-amz-date"];
    const claimed = request.headers["x-amz-content-sha256"];
    // DynamoDB calls have no query string, and their path is "/": anything else is not a client's.
    if (typeof amzDate !== "string" || !amzDate.startsWith(date) || request.url !== "/") return false;
    if (claimed !== undefined && claimed !== payloadHash) return false;
    const names = signedHeaders.split(";");
    if (!MUST_SIGN.every((name) => names.includes(name))) return false;
    let canonical = `${request.method}\n/\n\n`;
    for (const name of names) {
      const value = request.headers[name];
      if (typeof value !== "string") return false;
      canonical += `${name}:${value.trim().replace(/\s+/g, " ")}\n`;
    }
    canonical += `\n${signedHeaders}\n${payloadHash}`;
    const toSign = `AWS4-HMAC-SHA256\n${amzDate}\n${date}/${region}/${service}/aws4_request\n${createHash("sha256").update(canonical).digest("hex")}`;
    const expected = createHmac("sha256", signingKey(date, region, service))
      .update(toSign)
      .digest();
    return timingSafeEqual(expected, Buffer.from(signature, "hex"));
  };

  return (request, response) => {
    if (request.headers.origin !== undefined || request.method === "OPTIONS")
      return refuse(response, BROWSER);
    const auth = AUTHORIZATION.exec(request.headers.authorization ?? "");
    const given = auth ? Buffer.from(auth[1] ?? "") : undefined;
    if (!given || given.length !== keyId.length || !timingSafeEqual(given, keyId)) {
      return refuse(response, UNRECOGNIZED);
    }
    const body = createHash("sha256");
    // What dynalite reads from: the request's headers and data, with its end held back until the
    // signature is checked (dynalite acts on a request at its end).
    const forwarded = Object.assign(new EventEmitter(), {
      headers: request.headers,
      method: request.method,
      url: request.url,
    });
    request.on("data", (chunk: Buffer) => {
      body.update(chunk);
      forwarded.emit("data", chunk);
    });
    // A client that went away: dynalite never hears of it (it throws on a request error).
    request.on("error", () => {});
    request.on("end", () => {
      // dynalite answered already (a body over its limit).
      if (response.headersSent) return;
      if (!signedCorrectly(request, auth as RegExpExecArray, body.digest("hex"))) {
        return refuse(response, BAD_SIGNATURE);
      }
      forwarded.emit("end");
    });
    handler(forwarded as unknown as IncomingMessage, response);
  };
}

function refuse(response: ServerResponse, [status, body]: Refusal): void {
  // Closed after the answer: nothing more of a refused sender's body is read.
  response.writeHead(status, {
    "content-type": "application/x-amz-json-1.0",
    "content-length": body.length,
    connection: "close",
  });
  response.end(body);
}

import * as ed from "@noble/ed25519";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateWebhookKeyPair, importEd25519SigningKey } from "../src/domain/ed25519.js";
import { createSignatureVerifier, MAX_SIGNATURES } from "../src/domain/signature-verifier.js";
import { decodeWebhookPublicKey, decodeWebhookSigningKey } from "../src/domain/webhook-keys.js";
import { generateWebhookSecret } from "../src/domain/webhook-secret.js";
import { createWebhookSigner } from "../src/domain/webhook-signer.js";
import { makeStep } from "./support/run-steps.js";
import { eventually, type SinkServer, startSinkServer } from "./support/sink-server.js";
import { createTestApp, type TestApp } from "./support/test-app.js";
import { startTestStore, type TestStore } from "./support/test-store.js";

// The oracle is @noble/ed25519: keys, signatures and checks made by a library nobody here wrote.
const encoder = new TextEncoder();
const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64");
const now = 1_790_000_000;
const body = JSON.stringify({ object: "thread.run.step", id: "step_1", note: "ünïcödé ✓" });

interface NobleKeys {
  secretKey: Uint8Array;
  publicKey: Uint8Array;
  /** whsk_ in the 32-byte (seed) form. */
  whskSeed: string;
  /** whsk_ in the 64-byte (seed then public key) form. */
  whskFull: string;
  whpk: string;
}

async function nobleKeys(): Promise<NobleKeys> {
  const { secretKey, publicKey } = await ed.keygenAsync();
  return {
    secretKey,
    publicKey,
    whskSeed: `whsk_${b64(secretKey)}`,
    whskFull: `whsk_${b64(new Uint8Array([...secretKey, ...publicKey]))}`,
    whpk: `whpk_${b64(publicKey)}`,
  };
}

/** A `v1a,` entry signed by noble over `${id}.${timestamp}.${payload}`. */
async function nobleSign(keys: NobleKeys, id: string, timestamp: number, payload = body): Promise<string> {
  const signature = await ed.signAsync(encoder.encode(`${id}.${timestamp}.${payload}`), keys.secretKey);
  return `v1a,${b64(signature)}`;
}

const headers = (id: string, timestamp: number, signature: string) => ({
  id,
  timestamp: String(timestamp),
  signature,
});

let sender: NobleKeys;
let other: NobleKeys;
beforeAll(async () => {
  [sender, other] = await Promise.all([nobleKeys(), nobleKeys()]);
});

describe("inbound v1a: the verifier against noble's signatures", () => {
  it("accepts a v1a signature made by noble, under a whpk_-only configuration", async () => {
    const verifier = await createSignatureVerifier([sender.whpk], 300);
    const signature = await nobleSign(sender, "msg_1", now);
    expect(await verifier.verify(headers("msg_1", now, signature), encoder.encode(body), now)).toEqual({
      ok: true,
      timestamp: now,
    });
  });

  it("accepts a signature by any configured public key (rotation), beside a whsec_ secret", async () => {
    const verifier = await createSignatureVerifier([generateWebhookSecret(), other.whpk, sender.whpk], 300);
    for (const keys of [sender, other]) {
      const signature = await nobleSign(keys, "msg_r", now);
      expect((await verifier.verify(headers("msg_r", now, signature), encoder.encode(body), now)).ok).toBe(
        true,
      );
    }
  });

  it("refuses a wrong key, a tampered body, id or timestamp", async () => {
    const verifier = await createSignatureVerifier([sender.whpk], 300);
    const good = await nobleSign(sender, "msg_x", now);
    const refused = { ok: false, reason: "no signature matches" };
    expect(
      await verifier.verify(
        headers("msg_x", now, await nobleSign(other, "msg_x", now)),
        encoder.encode(body),
        now,
      ),
    ).toEqual(refused);
    expect(
      await verifier.verify(
        headers("msg_x", now, good),
        encoder.encode(body.replace("step_1", "step_2")),
        now,
      ),
    ).toEqual(refused);
    expect(await verifier.verify(headers("msg_y", now, good), encoder.encode(body), now)).toEqual(refused);
    expect(await verifier.verify(headers("msg_x", now + 1, good), encoder.encode(body), now)).toEqual(
      refused,
    );
  });

  it("refuses a timestamp out of tolerance even when the v1a signature is good", async () => {
    const verifier = await createSignatureVerifier([sender.whpk], 300);
    const at = async (ts: number) =>
      verifier.verify(headers("msg_t", ts, await nobleSign(sender, "msg_t", ts)), encoder.encode(body), now);
    expect(await at(now - 301)).toEqual({ ok: false, reason: "webhook-timestamp is too old" });
    expect(await at(now + 301)).toEqual({ ok: false, reason: "webhook-timestamp is too far in the future" });
    expect((await at(now - 300)).ok).toBe(true);
  });

  it("a v1a signature under a whsec_-only configuration, and a v1 one under whpk_-only, name what is accepted", async () => {
    const secret = generateWebhookSecret();
    const hmacOnly = await createSignatureVerifier([secret], 300);
    const v1a = await nobleSign(sender, "msg_s", now);
    expect(await hmacOnly.verify(headers("msg_s", now, v1a), encoder.encode(body), now)).toEqual({
      ok: false,
      reason: "webhook-signature has no v1 signature",
    });
    const keyOnly = await createSignatureVerifier([sender.whpk], 300);
    const v1 = new Webhook(secret).sign("msg_s", new Date(now * 1000), body);
    expect(await keyOnly.verify(headers("msg_s", now, v1), encoder.encode(body), now)).toEqual({
      ok: false,
      reason: "webhook-signature has no v1a signature",
    });
    const both = await createSignatureVerifier([secret, sender.whpk], 300);
    expect(await both.verify(headers("msg_s", now, "v2,abc"), encoder.encode(body), now)).toEqual({
      ok: false,
      reason: "webhook-signature has no v1 or v1a signature",
    });
  });

  it("mixed headers: either scheme's valid signature is enough, unknown versions are ignored", async () => {
    const secret = generateWebhookSecret();
    const verifier = await createSignatureVerifier([secret, sender.whpk], 300);
    const v1 = new Webhook(secret).sign("msg_m", new Date(now * 1000), body);
    const badV1 = new Webhook(generateWebhookSecret()).sign("msg_m", new Date(now * 1000), body);
    const v1a = await nobleSign(sender, "msg_m", now);
    const badV1a = await nobleSign(other, "msg_m", now);
    const check = (signature: string) =>
      verifier.verify(headers("msg_m", now, signature), encoder.encode(body), now).then((r) => r.ok);
    expect(await check(`${badV1} v2,xyz ${v1a}`)).toBe(true);
    expect(await check(`${badV1a} ${v1}`)).toBe(true);
    expect(await check(`${v1}  ${v1a}`)).toBe(true);
    expect(await check(`${badV1} ${badV1a} v2,${v1a.slice(4)}`)).toBe(false);
  });

  it("malformed v1a values are no match, never an error", async () => {
    const verifier = await createSignatureVerifier([sender.whpk], 300);
    const good = (await nobleSign(sender, "msg_z", now)).slice(4);
    for (const value of [
      "",
      "!!!",
      "AAAA",
      good.slice(0, -4),
      `${good}AAAA`,
      b64(new Uint8Array(64)),
      `${good}=`,
    ]) {
      expect(await verifier.verify(headers("msg_z", now, `v1a,${value}`), encoder.encode(body), now)).toEqual(
        {
          ok: false,
          reason: "no signature matches",
        },
      );
    }
  });

  it(`takes up to ${MAX_SIGNATURES} signatures in one header and refuses more, naming the limit`, async () => {
    expect(MAX_SIGNATURES).toBe(16);
    const secret = generateWebhookSecret();
    const verifier = await createSignatureVerifier([secret, sender.whpk], 300);
    const bogus = (n: number) => Array.from({ length: n }, (_, i) => (i % 2 ? "v1,AAAA" : "v1a,AAAA"));
    for (const good of [
      await nobleSign(sender, "msg_l", now),
      new Webhook(secret).sign("msg_l", new Date(now * 1000), body),
    ]) {
      const at = (n: number) =>
        verifier.verify(headers("msg_l", now, [...bogus(n - 1), good].join(" ")), encoder.encode(body), now);
      expect(await at(16)).toEqual({ ok: true, timestamp: now });
      expect(await at(17)).toEqual({
        ok: false,
        reason: "webhook-signature carries 17 signatures; at most 16 are accepted",
      });
    }
  });

  it("refuses a whsk_ secret key as a verification key", async () => {
    await expect(createSignatureVerifier([sender.whskSeed], 300)).rejects.toThrow(/whsk_ signing key/);
  });
});

describe("outbound v1a: stepwatch's signatures checked by noble", () => {
  it("signs with a 32-byte seed or the 64-byte form alike, and derives noble's public key", async () => {
    for (const whsk of [sender.whskSeed, sender.whskFull]) {
      const signer = await createWebhookSigner(whsk);
      expect(signer.publicKeys).toEqual([sender.whpk]);
      const h = await signer.sign("msg_out", now, body);
      expect(h["webhook-signature"]).toMatch(/^v1a,[A-Za-z0-9+/]{86}==$/);
      const signature = Buffer.from(h["webhook-signature"].slice(4), "base64");
      const content = encoder.encode(`msg_out.${now}.${body}`);
      expect(await ed.verifyAsync(signature, content, sender.publicKey)).toBe(true);
      expect(
        await ed.verifyAsync(signature, encoder.encode(`msg_out.${now}.${body} `), sender.publicKey),
      ).toBe(false);
    }
  });

  it("with a secret and a signing key, one header carries v1 then v1a, each valid for its verifier", async () => {
    const secret = generateWebhookSecret();
    const signer = await createWebhookSigner([secret, sender.whskFull]);
    const ts = Math.floor(Date.now() / 1000);
    const h = await signer.sign("msg_both", ts, body);
    const [v1, v1a, ...rest] = h["webhook-signature"].split(" ");
    expect(rest).toEqual([]);
    expect(v1?.startsWith("v1,")).toBe(true);
    expect(new Webhook(secret).verify(body, { ...h })).toEqual(JSON.parse(body));
    const content = encoder.encode(`msg_both.${ts}.${body}`);
    expect(await ed.verifyAsync(Buffer.from(v1a?.slice(4) ?? "", "base64"), content, sender.publicKey)).toBe(
      true,
    );
  });

  it("refuses a 64-byte whsk_ whose public half is not its seed's", async () => {
    const mismatched = `whsk_${b64(new Uint8Array([...sender.secretKey, ...other.publicKey]))}`;
    await expect(importEd25519SigningKey(mismatched)).rejects.toThrow(/does not belong to its seed/);
  });

  it("npm run keygen's pair: noble derives the same public key from the whsk_ seed", async () => {
    const { signingKey, publicKey } = await generateWebhookKeyPair();
    const { seed, publicKey: carried } = decodeWebhookSigningKey(signingKey);
    const derived = await ed.getPublicKeyAsync(seed);
    expect(b64(derived)).toBe(b64(decodeWebhookPublicKey(publicKey)));
    expect(b64(carried ?? new Uint8Array())).toBe(b64(derived));
  });

  it("key decoding refuses wrong prefixes, base64 and lengths without echoing the key", () => {
    const bad = [
      ["whpk_", /^must be whpk_ followed by base64 of 32 bytes$/],
      [`whpk_${b64(new Uint8Array(31))}`, /32 bytes \(got 31\)/],
      [`whpk_${b64(new Uint8Array(33))}`, /32 bytes \(got 33\)/],
      [`whsec_${b64(new Uint8Array(32))}`, /^must be whpk_ followed by base64 of 32 bytes$/],
    ] as const;
    for (const [key, message] of bad) expect(() => decodeWebhookPublicKey(key)).toThrow(message);
    expect(() => decodeWebhookSigningKey(`whsk_${b64(new Uint8Array(48))}`)).toThrow(/got 48/);
    expect(() => decodeWebhookSigningKey("whsk_%%%")).toThrow(/base64/);
    try {
      decodeWebhookSigningKey(`whsk_${b64(new Uint8Array(40).fill(7))}`);
    } catch (error) {
      expect((error as Error).name).toBe("WebhookSecretError");
      expect((error as Error).message).not.toContain(b64(new Uint8Array(40).fill(7)).slice(0, 20));
    }
  });
});

describe("v1a through the HTTP app (dynalite, a real webhook receiver)", () => {
  let store: TestStore;
  let receiver: SinkServer;
  let app: TestApp;
  let sinkKeys: NobleKeys;
  const inboundSecret = generateWebhookSecret();
  const sinkSecret = generateWebhookSecret();
  let seq = 0;
  const uid = (prefix: string) => `${prefix}_${Date.now().toString(36)}_${seq++}`;

  beforeAll(async () => {
    sinkKeys = await nobleKeys();
    [store, receiver] = await Promise.all([startTestStore("stepwatch-v1a"), startSinkServer()]);
    app = await createTestApp(store, {
      WEBHOOK_SECRET: `${inboundSecret} ${sender.whpk}`,
      NOTIFY_SINKS: JSON.stringify([
        {
          name: "signed",
          type: "webhook",
          url: `${receiver.url}/both`,
          secret: sinkSecret,
          signing_key: sinkKeys.whskSeed,
        },
        { name: "ed-only", type: "webhook", url: `${receiver.url}/ed`, signing_key: sinkKeys.whskFull },
        { name: "hmac-only", type: "webhook", url: `${receiver.url}/hmac`, secret: sinkSecret },
      ]),
      NOTIFY_RETRY_SCHEDULE: "0.2",
      NOTIFY_TIMEOUT_MS: "2000",
    });
  });
  afterAll(async () => {
    await app?.drain();
    await Promise.all([store?.close(), receiver?.close()]);
  });

  const post = (payload: string, id: string, timestamp: number, signature: string) =>
    app.post(payload, { id, timestamp, signature });

  it("stores an event signed by noble with v1a, and refuses it tampered, stale or over the limit", async () => {
    const step = makeStep({ id: uid("step_v1a") });
    const payload = JSON.stringify(step);
    const ts = Math.floor(Date.now() / 1000);
    const id = uid("msg");
    const signature = await nobleSign(sender, id, ts, payload);

    const tampered = await post(payload.replace("in_progress", "completed"), id, ts, signature);
    expect(tampered.status).toBe(401);
    expect(await tampered.json()).toEqual({
      error: { code: "invalid_signature", message: "no signature matches" },
    });

    const staleTs = ts - 301;
    const stale = await post(payload, id, staleTs, await nobleSign(sender, id, staleTs, payload));
    expect(stale.status).toBe(401);

    const padded = [...Array.from({ length: 16 }, () => "v1,AAAA"), signature].join(" ");
    const over = await post(payload, id, ts, padded);
    expect(over.status).toBe(401);
    expect(((await over.json()) as { error: { message: string } }).error.message).toMatch(/at most 16/);
    expect((await app.get(`/v1/run-steps/${step.id}`)).status).toBe(404);

    const wrongKey = await post(payload, id, ts, await nobleSign(other, id, ts, payload));
    expect(wrongKey.status).toBe(401);

    const ok = await post(payload, id, ts, `v1,AAAA ${signature}`);
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ step_id: step.id, outcome: "created" });
    expect((await app.get(`/v1/run-steps/${step.id}`)).status).toBe(200);

    // The HMAC secret configured beside the public key still works.
    const hmacStep = makeStep({ id: uid("step_v1") });
    expect((await app.send(hmacStep, { secret: inboundSecret })).status).toBe(200);
  });

  it("publishes each sink's whpk_ key in the sinks API, never a secret", async () => {
    const all = await app.get("/v1/sinks");
    const text = await all.text();
    for (const secretValue of [sinkSecret, sinkKeys.whskSeed, sinkKeys.whskFull, inboundSecret]) {
      expect(text).not.toContain(secretValue.slice(6));
    }
    const byName = Object.fromEntries(
      (JSON.parse(text) as { data: Array<{ name: string; public_key: string | null }> }).data.map((s) => [
        s.name,
        s.public_key,
      ]),
    );
    expect(byName).toEqual({ signed: sinkKeys.whpk, "ed-only": sinkKeys.whpk, "hmac-only": null });
    const one = (await (await app.get("/v1/sinks/ed-only")).json()) as { public_key: string };
    expect(one.public_key).toBe(sinkKeys.whpk);
  });

  it("a sink's v1a signature verifies with noble against the published key; v1 with standardwebhooks", async () => {
    const step = makeStep({ id: uid("step_out"), status: "completed" });
    expect((await app.send(step, { secret: inboundSecret })).status).toBe(200);
    const requests = await eventually(async () => {
      const found = receiver.received.filter((r) => r.body.includes(`"${step.id}"`));
      return found.length >= 3 ? found : undefined;
    });
    const published = ((await (await app.get("/v1/sinks/signed")).json()) as { public_key: string })
      .public_key;
    const publicKey = decodeWebhookPublicKey(published);
    const byPath = Object.fromEntries(requests.map((r) => [r.path, r]));

    for (const path of ["/both", "/ed"]) {
      const request = byPath[path];
      if (!request) throw new Error(`no request to ${path}`);
      const entries = String(request.headers["webhook-signature"]).split(" ");
      const v1a = entries.filter((e) => e.startsWith("v1a,"));
      expect(v1a).toHaveLength(1);
      const content = encoder.encode(
        `${request.headers["webhook-id"]}.${request.headers["webhook-timestamp"]}.${request.body}`,
      );
      const signature = Buffer.from(v1a[0]?.slice(4) ?? "", "base64");
      expect(await ed.verifyAsync(signature, content, publicKey)).toBe(true);
      expect(entries.some((e) => e.startsWith("v1,"))).toBe(path === "/both");
    }
    const both = byPath["/both"];
    const h = {
      "webhook-id": String(both?.headers["webhook-id"]),
      "webhook-timestamp": String(both?.headers["webhook-timestamp"]),
      "webhook-signature": String(both?.headers["webhook-signature"]),
    };
    expect(new Webhook(sinkSecret).verify(both?.body ?? "", h)).toMatchObject({ data: { id: step.id } });
    expect(String(byPath["/hmac"]?.headers["webhook-signature"])).toMatch(/^v1,[^ ]+$/);
  });

  it("a 64-byte whsk_ whose public half is wrong stops start-up with a ConfigError naming the sink entry", async () => {
    const mismatched = `whsk_${b64(new Uint8Array([...sinkKeys.secretKey, ...other.publicKey]))}`;
    const failure = createTestApp(store, {
      NOTIFY_SINKS: JSON.stringify([{ type: "webhook", url: `${receiver.url}/x`, signing_key: mismatched }]),
    });
    await expect(failure).rejects.toMatchObject({
      name: "ConfigError",
      message: expect.stringMatching(
        /^Invalid configuration: NOTIFY_SINKS \(at 0\.signing_key\) holds a public key/,
      ),
    });
    await failure.catch((error: Error) => expect(error.message).not.toContain(mismatched.slice(5, 30)));
  });
});

/**
 * `npm run keygen`: prints a new Standard Webhooks Ed25519 key pair. The whsk_ key goes in a webhook
 * sink's `signing_key` (NOTIFY_SINKS); the whpk_ key goes to its receivers (and, for a sender
 * signing to stepwatch, in stepwatch's WEBHOOK_SECRET). Printed to stdout only, never stored.
 */
import { generateWebhookKeyPair } from "../src/domain/ed25519.js";

const { signingKey, publicKey } = await generateWebhookKeyPair();
console.log(`signing key (keep secret, for the sender):  ${signingKey}`);
console.log(`public key (for receivers, safe to share):  ${publicKey}`);

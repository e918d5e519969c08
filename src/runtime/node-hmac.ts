import { createHmac } from "node:crypto";
import type { HmacSha256 } from "../domain/hmac-sha256.js";

/** HMAC-SHA256 with Node's native crypto: about a tenth of Web Crypto's cost per signature on Node. */
export const nodeHmacSha256: HmacSha256 = async (keyBytes) => {
  const key = Buffer.from(keyBytes);
  return {
    async mac(prefix, body) {
      return createHmac("sha256", key).update(prefix).update(body).digest("base64");
    },
  };
};

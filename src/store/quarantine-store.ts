import type { QuarantinedRequest, Replay } from "../domain/quarantined-request.js";
import type { Page } from "./step-store.js";

/** Where refused signed requests are kept until replayed, deleted or expired. */
export interface QuarantineStore {
  /** Keeps a request and its body; a record with the same id (the sender's retry) is left as it is. */
  keep(record: QuarantinedRequest, body: Uint8Array): Promise<void>;
  /** A record, or null when there is none (or it has expired). */
  get(id: string): Promise<QuarantinedRequest | null>;
  /** The raw body of a record; null when it is gone. */
  body(id: string): Promise<Uint8Array | null>;
  /** Records, newest first. */
  list(limit: number, cursor: string | null): Promise<Page<QuarantinedRequest>>;
  /** Records the replay of a record still at `version`; false when another replay came first. */
  markReplayed(record: QuarantinedRequest, replay: Replay): Promise<boolean>;
  /** Deletes a record and its body; false when there was none. */
  delete(id: string): Promise<boolean>;
  /** How many records there are, counting at most `max` (a metrics gauge must stay cheap). */
  count(max: number): Promise<number>;
}

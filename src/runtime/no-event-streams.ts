// Stands in for `@smithy/core/event-streams` in the Worker bundle (wrangler.toml, [alias]). The AWS
// SDK loads that module only for operations with event streams, and no DynamoDB operation has one;
// leaving it out keeps ~14 KB of minified code out of a bundle that has a size budget.

const unsupported = (): never => {
  throw new Error("event streams are not bundled in the stepwatch Worker");
};

/** Never used by DynamoDB; throws if the SDK ever asks for it. */
export const EventStreamSerde = unsupported;
/** Never used by DynamoDB; throws if the SDK ever asks for it. */
export const eventStreamSerdeProvider = unsupported;

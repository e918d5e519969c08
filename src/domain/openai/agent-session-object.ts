import * as v from "valibot";
import { jsonObject, MetadataSchema } from "../run-step-schema.js";
import { nonEmptyString, openAiId, TokenCountSchema, UnixSecondsSchema } from "./openai-fields.js";

/** Every status of an Agents API session. Sessions cycle between them: none is terminal for good. */
export const AGENT_SESSION_STATUSES = ["idle", "in_progress", "requires_action", "failed"] as const;

/** A session's status. */
export type AgentSessionStatus = (typeof AGENT_SESSION_STATUSES)[number];

/**
 * One entry of `required_actions`: what a person or program must do before the session goes on.
 * `type` is open (function_call, computer_use_approval_request, mcp_approval_request,
 * environment_connection today); the fields notifications show are read when present.
 */
export const RequiredActionSchema = jsonObject({
  type: nonEmptyString("type"),
  turn_id: v.optional(openAiId("turn_id")),
  call_id: v.optional(v.string("must be a string")),
  name: v.optional(v.nullable(v.string("must be a string"))),
  request_id: v.optional(v.string("must be a string")),
});

const absentAsNull = <S extends v.GenericSchema>(schema: S) => v.optional(v.nullable(schema), null);

/** What stepwatch reads from an AgentSession (`GET /agents/sessions/{id}`), unknown fields kept. */
export const AgentSessionSchema = jsonObject({
  id: openAiId("id"),
  object: v.literal("agent.session", 'must be "agent.session"'),
  created_at: UnixSecondsSchema,
  // The newest fetched session wins by this (SPEC §9), so it must be comparable.
  last_active_at: UnixSecondsSchema,
  status: v.picklist(AGENT_SESSION_STATUSES, `must be one of ${AGENT_SESSION_STATUSES.join(", ")}`),
  agent: v.optional(
    jsonObject({
      id: v.optional(openAiId("agent.id")),
      model: v.optional(nonEmptyString("agent.model")),
    }),
  ),
  error: absentAsNull(v.string("must be a string")),
  required_actions: v.optional(v.array(RequiredActionSchema, "must be an array"), []),
  metadata: absentAsNull(MetadataSchema),
  usage: absentAsNull(
    jsonObject({
      input_tokens: TokenCountSchema,
      output_tokens: TokenCountSchema,
      total_tokens: TokenCountSchema,
    }),
  ),
});

/** A session as read (unknown fields kept). */
export type AgentSessionObject = v.InferOutput<typeof AgentSessionSchema>;

/**
 * One session item (`GET /agents/sessions/{id}/items`). The SDK's items carry `turn_id` and no
 * timestamp; `id` is null for legacy user messages. `created_at` is read if a server adds one.
 */
export const AgentSessionItemSchema = jsonObject({
  id: v.nullable(openAiId("id")),
  type: nonEmptyString("type"),
  status: v.optional(v.nullable(v.string("must be a string"))),
  turn_id: v.optional(openAiId("turn_id")),
  created_at: v.optional(UnixSecondsSchema),
});

/** A session item as read (unknown fields kept). */
export type AgentSessionItem = v.InferOutput<typeof AgentSessionItemSchema>;

/** One page of session items, in the SDK's CursorPage shape. */
export const AgentSessionItemsPageSchema = jsonObject({
  data: v.array(AgentSessionItemSchema, "must be an array"),
  has_more: v.optional(v.boolean("must be a boolean"), false),
  last_id: v.optional(v.nullable(v.string("must be a string"))),
});

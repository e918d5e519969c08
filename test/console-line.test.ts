import * as v from "valibot";
import { describe, expect, it } from "vitest";
import { formatConsoleLine } from "../src/domain/notification-payloads.js";
import { RunStepSchema } from "../src/domain/run-step-schema.js";
import { makeStep } from "./support/run-steps.js";
import { stepNotification } from "./support/subject-notifications.js";

const lineFor = (overrides: Record<string, unknown>) => {
  const document = makeStep({ status: "failed", ...overrides });
  return formatConsoleLine(stepNotification("run_step.failed", v.parse(RunStepSchema, document)));
};

describe("the console sink's line", () => {
  it("escapes control characters, so an id can neither forge a second line nor colour the terminal", () => {
    const line = lineFor({
      id: 'step_x\n{"level":"error","msg":"forged"}',
      run_id: "run_\u001b[31mred\u001b[0m",
      thread_id: "thread_\u2028sep\u0085",
    });
    expect(line.split("\n")).toHaveLength(1);
    expect(
      [...line].every((c) => c.charCodeAt(0) >= 0x20 && !(c >= "\u007f" && c <= "\u009f") && c !== "\u2028"),
    ).toBe(true);
    expect(line).toContain('step=step_x\\u000a{"level":"error","msg":"forged"}');
    expect(line).toContain("run=run_\\u001b[31mred\\u001b[0m");
    expect(line).toContain("thread=thread_\\u2028sep\\u0085");
  });

  it("leaves ordinary text as it is", () => {
    expect(lineFor({ id: "step_plain", metadata: {} })).toBe(
      '[notify] run_step.failed step=step_plain run=run_abc123 thread=thread_abc123 assistant=asst_abc123 tokens=579 error=server_error: "The model crashed"',
    );
  });
});

import { describe, expect, it } from "vitest";
import type { RelayEvent } from "../src/relay/run-step-events.js";
import { parseSpoolLine, spoolLine } from "../src/relay/spool.js";

const event: RelayEvent = {
  id: "msg_AbC-dEf_0123456789abcdEF",
  stepId: "step_spool1",
  event: "thread.run.step.completed",
  // A body with what JSON escapes: quotes, a newline, non-ASCII text.
  body: '{"event":"thread.run.step.completed","data":{"id":"step_spool1","note":"a \\"b\\"\\nc é 😀"}}',
};

describe("spool records", () => {
  it("writes an event as one JSON line { id, step, event, body } ending in a newline", () => {
    const line = spoolLine(event);
    expect(line.endsWith("\n")).toBe(true);
    expect(line.slice(0, -1)).not.toMatch(/[\r\n]/);
    expect(JSON.parse(line)).toEqual({
      id: event.id,
      step: event.stepId,
      event: event.event,
      body: event.body,
    });
    expect(Object.keys(JSON.parse(line))).toEqual(["id", "step", "event", "body"]);
  });

  it("reads back what it wrote, with or without the newline", () => {
    expect(parseSpoolLine(spoolLine(event))).toEqual(event);
    expect(parseSpoolLine(spoolLine(event).trimEnd())).toEqual(event);
  });

  it("reads a record written by an earlier relay, extra fields ignored", () => {
    const line = '{"id":"msg_1","step":"step_1","event":"thread.run.step.failed","body":"{}","v":2}';
    expect(parseSpoolLine(line)).toEqual({
      id: "msg_1",
      stepId: "step_1",
      event: "thread.run.step.failed",
      body: "{}",
    });
  });

  it("reads an acknowledgement line as the id it acknowledges", () => {
    expect(parseSpoolLine(JSON.stringify({ ack: "msg_1" }))).toEqual({ ack: "msg_1" });
    expect(parseSpoolLine('{"ack":""}')).toEqual({ ack: "" });
    // An acknowledgement whose id is not a string acknowledges nothing.
    expect(parseSpoolLine('{"ack":7}')).toBeNull();
    expect(parseSpoolLine('{"ack":null,"id":"msg_1","step":"s","event":"e","body":"b"}')).toEqual({
      id: "msg_1",
      stepId: "s",
      event: "e",
      body: "b",
    });
  });

  it("reads a torn line (a crash mid-write) or a foreign one as null", () => {
    const whole = spoolLine(event);
    for (let cut = 0; cut < whole.length - 2; cut += 7) {
      expect(parseSpoolLine(whole.slice(0, cut)), whole.slice(0, cut)).toBeNull();
    }
    for (const line of ["", "null", "true", "42", '"msg_1"', "[]", '["msg_1"]', "{}", "not json", '{"ack"']) {
      expect(parseSpoolLine(line), line).toBeNull();
    }
  });

  it("reads a record missing any field, or with one that is not a string, as null", () => {
    const record = { id: "msg_1", step: "step_1", event: "thread.run.step.completed", body: "{}" };
    for (const field of Object.keys(record)) {
      const missing = Object.fromEntries(Object.entries(record).filter(([k]) => k !== field));
      expect(parseSpoolLine(JSON.stringify(missing)), `without ${field}`).toBeNull();
      for (const bad of [null, 1, { text: "x" }, ["x"]]) {
        expect(
          parseSpoolLine(JSON.stringify({ ...record, [field]: bad })),
          `${field}: ${JSON.stringify(bad)}`,
        ).toBeNull();
      }
    }
  });
});

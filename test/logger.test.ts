import { describe, expect, it } from "vitest";
import { createLogger, describeError } from "../src/observability/logger.js";

// The structured logger every runtime writes through: one JSON object per line.

const capture = (level: Parameters<typeof createLogger>[0]) => {
  const lines: string[] = [];
  const logger = createLogger(level, (line) => lines.push(line));
  const parsed = () => lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  return { logger, lines, parsed };
};

describe("createLogger", () => {
  it("writes lines at or above its level, each one JSON object with time, level, message and fields", () => {
    const { logger, parsed } = capture("warn");
    logger.debug("quiet", { a: 1 });
    logger.info("quiet too");
    logger.warn("careful", { sink: "hook", attempts: 2 });
    logger.error("broken", { ok: false, none: null });
    expect(parsed()).toEqual([
      {
        time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
        level: "warn",
        msg: "careful",
        sink: "hook",
        attempts: 2,
      },
      { time: expect.any(String), level: "error", msg: "broken", ok: false, none: null },
    ]);
  });

  it("says which levels it would write", () => {
    const { logger } = capture("info");
    expect((["debug", "info", "warn", "error"] as const).map((level) => logger.enabled(level))).toEqual([
      false,
      true,
      true,
      true,
    ]);
  });

  it("a child adds its fields to every line, at its parent's level and to its parent's output; a line's own fields come last", () => {
    const { logger, parsed } = capture("info");
    const child = logger.child({ request_id: "req-1", route: "/a" });
    const grandchild = child.child({ route: "/b" });
    child.debug("not written");
    child.info("one", { status: 200 });
    grandchild.warn("two", { request_id: "req-2" });
    expect(child.enabled("debug")).toBe(false);
    expect(parsed().map(({ time: _, ...rest }) => rest)).toEqual([
      { level: "info", msg: "one", request_id: "req-1", route: "/a", status: 200 },
      { level: "warn", msg: "two", request_id: "req-2", route: "/b" },
    ]);
  });
});

describe("describeError", () => {
  it("an Error as its name and message, never its stack; anything else as a string", () => {
    const error = new TypeError("bad input");
    expect(describeError(error)).toBe("TypeError: bad input");
    expect(describeError(Object.assign(new Error("x"), { name: "StoreUnavailableError" }))).toBe(
      "StoreUnavailableError: x",
    );
    // Whatever an error class's own toString adds (a stack, a request body), only name and message.
    class Verbose extends Error {
      override toString() {
        return `${this.name}: ${this.message}\n${this.stack}`;
      }
    }
    expect(describeError(new Verbose("short"))).toBe("Error: short");
    expect(describeError("plain")).toBe("plain");
    expect(describeError(42)).toBe("42");
    expect(describeError({ name: "NotAnError", message: "m" })).toBe("[object Object]");
  });
});

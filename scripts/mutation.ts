// `npm run mutation [-- <area>… | --report] [--force]`: mutation testing of src/, area by area.
//
// One Stryker run over all of src/ against the whole Stryker suite takes hours on two cores: every
// mutant waits for every test file that happens to cover it. So each area of src/ is run against
// the test files that exercise it (read by vitest.stryker.config.ts from STRYKER_TESTS), with its
// own incremental file, so that a re-run only tests mutants in changed code or covered by changed
// tests. A score over fewer tests can only be lower than over the whole suite: these are floors.
// Then the areas' results are put together into one per-file table with the issue-13 goals
// checked (≥ 85% overall, ≥ 80% for every file of src/domain, src/store, src/notify, src/http),
// printed and written to reports/mutation/summary.md; the exit code says whether they are met.
//
//   npm run mutation                 every area, then the table
//   npm run mutation -- relay store  those areas, then the table (the others from their last run)
//   npm run mutation -- --report     only the table, from the areas' last runs
//   npm run mutation -- relay --force  re-test every mutant of the area
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** What one area mutates, against which tests. */
interface Area {
  /** Globs of the files mutated (the exclusions of stryker.config.json are added to them). */
  readonly mutate: readonly string[];
  /** The test files run (`domain`: vitest.stryker.config.ts's list of src/domain's unit tests). */
  readonly tests: "domain" | readonly string[];
  /**
   * Leaves out static mutants (module-level code: route schemas, constants, what a test file builds
   * in `beforeAll`). Each would reload every module and run every test of the area: minutes each
   * against store and HTTP tests, seconds against unit tests.
   */
  readonly ignoreStatic: boolean;
}

const t = (...names: string[]) => names.map((name) => `test/${name}.test.ts`);

const STORE_TESTS = t(
  "delivery-store",
  "batch-get",
  "store-errors",
  "ensure-table",
  "quarantine-store",
  "sink-store",
  "item-size",
  "item-codec",
  "outbox-recovery",
  "delivery-records",
  "write-budget",
  "quarantine",
  "sink-health",
  "worker-dynamodb",
  "step-store",
  "step-store-listing",
  "step-listing",
  "key-order",
  "run-step-ingest",
  "dynamo-client",
  "forged-cursors",
  "openai-event-store",
  "response-store",
  "openai-ingest",
  "openai-webhooks",
);

const ROUTE_TESTS = t(
  "auth",
  "openapi",
  "app-wiring",
  "request-log",
  "run-after-response",
  "console-routes",
  "delivery-routes",
  "ingest-routes",
  "quarantine-routes",
  "sink-routes",
  "step-routes",
  "step-listing",
  "operator-actions",
  "delivery-operations",
  "delivery-records",
  "hostile-input",
  "hostile-keys",
  "ingest-http",
  "metrics",
  "quarantine",
  "run-step-ingest",
  "sink-health",
  "forged-cursors",
  "readiness-and-tokens",
  "openai-webhooks",
);

/** The areas, each file of src/ in exactly one. */
const AREAS: Readonly<Record<string, Area>> = {
  domain: { mutate: ["src/domain/**/*.ts", "src/config/**/*.ts"], tests: "domain", ignoreStatic: false },
  store: { mutate: ["src/store/**/*.ts"], tests: STORE_TESTS, ignoreStatic: true },
  notify: {
    mutate: ["src/notify/**/*.ts"],
    tests: t(
      "create-sinks",
      "post-json",
      "notifications",
      "delivery-notifier-prompt",
      "delivery-notifier-attempts",
      "delivery-sweeps",
      "delivery-operations",
      "outbox-recovery",
      "stall-watchdog",
      "stall-watchdog-runs",
      "sink-health",
      "openai-webhooks",
    ),
    ignoreStatic: true,
  },
  usecases: {
    mutate: ["src/usecases/**/*.ts"],
    tests: t(
      "run-step-ingest",
      "ingest-http",
      "hostile-input",
      "quarantine",
      "console-routes",
      "request-log",
      "notifications",
      "delivery-operations",
      "operator-actions",
      "delivery-records",
      "sink-health",
      "openai-ingest",
      "openai-webhooks",
    ),
    ignoreStatic: true,
  },
  // Clients of producers' APIs (OpenAI's), against the loopback stand-in.
  sources: { mutate: ["src/sources/**/*.ts"], tests: t("openai-api-client"), ignoreStatic: true },
  http: { mutate: ["src/http/**/*.ts", "!src/http/api-schemas.ts"], tests: ROUTE_TESTS, ignoreStatic: true },
  // The API's query and response schemas: all of its mutants are static, so they are run, against
  // the route and store tests that read and answer with them.
  "api-schemas": {
    mutate: ["src/http/api-schemas.ts"],
    tests: t(
      "openapi",
      "step-routes",
      "sink-routes",
      "quarantine-routes",
      "delivery-routes",
      "run-step-ingest",
      "item-codec",
      "ensure-table",
    ),
    ignoreStatic: false,
  },
  runtime: {
    mutate: ["src/observability/**/*.ts", "src/runtime/**/*.ts"],
    tests: t(
      "backlog-metrics",
      "create-stepwatch",
      "embedded-dynamo",
      "logger",
      "worker-dynamodb",
      "store-errors",
      "dynamo-client",
      "metrics",
      "auth",
      "app-wiring",
      "request-log",
      "console-routes",
      "signature",
    ),
    ignoreStatic: true,
  },
  relay: {
    mutate: ["src/relay/**/*.ts"],
    tests: t(
      "sse-parser",
      "run-step-events",
      "spool",
      "file-spool",
      "forwarder",
      "relay-core",
      "tap-handler",
      "forward-run-steps",
      "relay-e2e",
    ),
    ignoreStatic: true,
  },
};

const REPORTS = "reports/mutation";
const incrementalFile = (area: string) => join(REPORTS, `${area}-incremental.json`);

/** The configured mutate list's exclusions (`!…`): `--mutate` replaces the list, these included. */
function configuredExclusions(): string[] {
  const config = JSON.parse(readFileSync("stryker.config.json", "utf8")) as { mutate: string[] };
  return config.mutate.filter((glob) => glob.startsWith("!"));
}

function runArea(name: string, area: Area, force: boolean): number {
  const tests = area.tests === "domain" ? "domain" : area.tests.filter((file) => existsSync(file)).join(",");
  const args = [
    "stryker",
    "run",
    "--mutate",
    [...area.mutate, ...configuredExclusions()].join(","),
    "--incrementalFile",
    incrementalFile(name),
    "--tempDirName",
    `.stryker-tmp-${name}`,
    "--reporters",
    "clear-text,progress",
    ...(area.ignoreStatic ? ["--ignoreStatic"] : []),
    ...(force ? ["--force"] : []),
  ];
  console.log(
    `\n== ${name}: ${area.mutate.join(" ")} against ${tests === "domain" ? "src/domain's unit tests" : tests}`,
  );
  const started = Date.now();
  const run = spawnSync("npx", args, { stdio: "inherit", env: { ...process.env, STRYKER_TESTS: tests } });
  console.log(`== ${name}: ${Math.round((Date.now() - started) / 1000)} s, exit ${run.status}`);
  return run.status ?? 1;
}

/** Counts of one file's (or area's) mutants by outcome. */
interface Counts {
  killed: number;
  timeout: number;
  survived: number;
  noCoverage: number;
  ignored: number;
}

const empty = (): Counts => ({ killed: 0, timeout: 0, survived: 0, noCoverage: 0, ignored: 0 });
const OUTCOME: Readonly<Record<string, keyof Counts>> = {
  Killed: "killed",
  Timeout: "timeout",
  Survived: "survived",
  NoCoverage: "noCoverage",
  Ignored: "ignored",
};
const tested = (c: Counts) => c.killed + c.timeout + c.survived + c.noCoverage;
const score = (c: Counts) => (100 * (c.killed + c.timeout)) / tested(c);
const add = (into: Counts, c: Counts) => {
  for (const key of Object.keys(into) as Array<keyof Counts>) into[key] += c[key];
};

// The globs used here: `dir/**/*.ts` or one file, `!` in front to leave one out.
const matches = (glob: string, file: string) =>
  glob.endsWith("/**/*.ts")
    ? file.startsWith(glob.slice(0, -"**/*.ts".length)) && file.endsWith(".ts")
    : file === glob;

/** Whether a file is one the area mutates (a report may hold others from an older run). */
const owns = (area: Area, file: string) =>
  area.mutate.some((glob) => !glob.startsWith("!") && matches(glob, file)) &&
  !area.mutate.some((glob) => glob.startsWith("!") && matches(glob.slice(1), file));

/** Each file's counts from its area's incremental file (a mutation-testing-report-schema report). */
function readResults(): Map<string, Counts> {
  const files = new Map<string, Counts>();
  for (const [name, area] of Object.entries(AREAS)) {
    const path = incrementalFile(name);
    if (!existsSync(path)) {
      console.log(`(no results yet for ${name}: npm run mutation -- ${name})`);
      continue;
    }
    const report = JSON.parse(readFileSync(path, "utf8")) as {
      files: Record<string, { mutants: Array<{ status: string }> }>;
    };
    for (const [file, { mutants }] of Object.entries(report.files)) {
      if (!owns(area, file)) continue;
      const counts = empty();
      for (const mutant of mutants) {
        const outcome = OUTCOME[mutant.status];
        if (outcome) counts[outcome]++;
      }
      files.set(file, counts);
    }
  }
  return files;
}

const GOAL_AREAS = ["src/domain", "src/store", "src/notify", "src/http"];
const areaOf = (file: string) => file.split("/").slice(0, 2).join("/");

/** The per-file table, area totals and the goals' verdict, as Markdown. */
function summarise(files: Map<string, Counts>): { text: string; met: boolean } {
  const rows = ["| file | score | killed | timed out | survived | no coverage | ignored (static) |"];
  rows.push("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
  const row = (name: string, c: Counts) =>
    `| ${name} | ${score(c).toFixed(2)} | ${c.killed} | ${c.timeout} | ${c.survived} | ${c.noCoverage} | ${c.ignored} |`;
  const areas = new Map<string, Counts>();
  const all = empty();
  const failing: string[] = [];
  for (const [file, c] of [...files].sort(([a], [b]) => a.localeCompare(b))) {
    const area = areas.get(areaOf(file)) ?? empty();
    add(area, c);
    areas.set(areaOf(file), area);
    add(all, c);
    // A file whose mutants are all ignored (static) or that has none has no score.
    if (tested(c) === 0) continue;
    rows.push(row(file.replace(/^src\//, ""), c));
    if (GOAL_AREAS.includes(areaOf(file)) && score(c) < 80)
      failing.push(`${file} ${score(c).toFixed(2)}% < 80%`);
  }
  for (const [area, c] of [...areas].sort(([a], [b]) => a.localeCompare(b))) {
    if (tested(c) > 0) rows.push(row(`**${area}**`, c));
  }
  rows.push(row("**all**", all));
  if (tested(all) === 0 || score(all) < 85)
    failing.push(`overall ${tested(all) ? score(all).toFixed(2) : "–"}% < 85%`);
  const verdict =
    failing.length === 0
      ? `Goals met: ${score(all).toFixed(2)}% overall over ${tested(all)} mutants; every file of ${GOAL_AREAS.join(", ")} ≥ 80%.`
      : `Goals not met: ${failing.join("; ")}.`;
  return { text: `${rows.join("\n")}\n\n${verdict}\n`, met: failing.length === 0 };
}

function main(argv: string[]): number {
  const force = argv.includes("--force");
  const reportOnly = argv.includes("--report");
  const named = argv.filter((arg) => !arg.startsWith("--"));
  const unknown = named.filter((name) => !(name in AREAS));
  if (unknown.length > 0) {
    console.error(`unknown area ${unknown.join(", ")}: choose from ${Object.keys(AREAS).join(", ")}`);
    return 2;
  }
  let failedRuns = 0;
  if (!reportOnly) {
    for (const name of named.length > 0 ? named : Object.keys(AREAS)) {
      const area = AREAS[name] as Area;
      if (runArea(name, area, force) !== 0) failedRuns++;
    }
  }
  const { text, met } = summarise(readResults());
  mkdirSync(REPORTS, { recursive: true });
  writeFileSync(join(REPORTS, "summary.md"), text);
  console.log(`\n${text}(also in ${join(REPORTS, "summary.md")})`);
  return failedRuns > 0 ? 1 : met ? 0 : 1;
}

process.exitCode = main(process.argv.slice(2));

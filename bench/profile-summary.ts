import { readFileSync } from "node:fs";

interface ProfileNode {
  readonly id: number;
  readonly callFrame: {
    readonly functionName: string;
    readonly url: string;
    readonly lineNumber: number;
  };
  readonly children?: readonly number[];
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** Self time of one function, as a share of the busy (non-idle) time of the profile. */
export interface ProfileFrame {
  readonly frame: string;
  readonly selfPercent: number;
}

/** Where a CPU profile's busy time went, by area of code and by function. */
export interface ProfileSummary {
  readonly busyMs: number;
  readonly areas: Readonly<Record<string, number>>;
  readonly top: readonly ProfileFrame[];
}

// First match wins, on the script URL. The SDK ships one bundled file per submodule, so areas
// follow those submodules rather than individual middleware.
const AREAS: ReadonlyArray<readonly [string, RegExp]> = [
  ["stepwatch (src/)", /^file:\/\/(?!.*node_modules).*\/src\//],
  ["bench apparatus", /^file:\/\/(?!.*node_modules).*\/bench\//],
  ["hono + node-server", /\/(hono|@hono)\//],
  ["valibot", /\/valibot\//],
  ["smithy client + middleware stack", /@smithy\/core\/dist-[a-z]+\/submodules\/client\//],
  ["smithy auth + signing middleware", /@smithy\/core\/dist-[a-z]+\/(index|legacy-root-exports)/],
  [
    "endpoint resolution",
    /@smithy\/core\/dist-[a-z]+\/submodules\/endpoints\/|client-dynamodb.*endpoint|account-id-endpoint/,
  ],
  ["retry", /@smithy\/core\/dist-[a-z]+\/submodules\/retry\//],
  ["SigV4 signer", /@smithy\/signature-v4|@aws-sdk\/core\/dist-[a-z]+\/submodules\/httpAuthSchemes/],
  ["hashing (SDK wrapper)", /@smithy\/core\/dist-[a-z]+\/submodules\/checksum/],
  ["serde (schema, protocol, codec)", /submodules\/(schema|serde|protocols|transport)\/|dynamodb-codec/],
  ["user agent, logger, host header", /@aws-sdk\/core\/dist-[a-z]+\/submodules\/client\//],
  ["SDK HTTP handler", /@smithy\/(node|fetch)-http-handler/],
  ["client-dynamodb (commands)", /@aws-sdk\/client-dynamodb/],
  ["Node crypto", /node:internal\/crypto/],
  ["Node HTTP / net / streams / timers", /node:/],
  ["other SDK", /@aws-sdk|@smithy/],
];

function areaOfUrl(url: string): string {
  for (const [area, pattern] of AREAS) if (pattern.test(url)) return area;
  return "other";
}

// Natives and builtins (writev, Hash, JSON.parse, microtask runs) have no script URL: they are
// charged to the nearest caller that has one, so "signing" includes its hashing and so on.
function areaOf(node: ProfileNode, parentOf: ReadonlyMap<number, ProfileNode>): string {
  const name = node.callFrame.functionName;
  if (name === "(garbage collector)") return "GC";
  if (name === "(program)") return "V8 / runtime (program)";
  for (let at: ProfileNode | undefined = node; at; at = parentOf.get(at.id)) {
    if (at.callFrame.url) return areaOfUrl(at.callFrame.url);
  }
  return "natives called from the event loop";
}

function shortFrame(node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame;
  const file = url
    .replace(/^file:\/\//, "")
    .replace(/^.*node_modules\//, "")
    .replace(/^.*\/(src|bench)\//, "$1/");
  return `${functionName || "(anonymous)"} ${file ? `${file}:${lineNumber + 1}` : ""}`.trim();
}

/** Summarises a `.cpuprofile`: self time by area and the `topN` heaviest functions. */
export function summariseProfile(path: string, topN = 12): ProfileSummary {
  const profile = JSON.parse(readFileSync(path, "utf8")) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parentOf = new Map<number, ProfileNode>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node);
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => {
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  let busyUs = 0;
  const areas = new Map<string, number>();
  const frames = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node || node.callFrame.functionName === "(idle)") continue;
    busyUs += us;
    const area = areaOf(node, parentOf);
    areas.set(area, (areas.get(area) ?? 0) + us);
    const frame = shortFrame(node);
    frames.set(frame, (frames.get(frame) ?? 0) + us);
  }
  const percent = (us: number) => Math.round((1000 * us) / Math.max(1, busyUs)) / 10;
  return {
    busyMs: Math.round(busyUs / 1000),
    areas: Object.fromEntries(
      [...areas].sort((a, b) => b[1] - a[1]).map(([area, us]) => [area, percent(us)]),
    ),
    top: [...frames]
      .sort((a, b) => b[1] - a[1])
      .slice(0, topN)
      .map(([frame, us]) => ({ frame, selfPercent: percent(us) })),
  };
}

import { StartupError } from "./startup-error.js";

/**
 * The variables infra/ keeps in Secrets Manager; a function is given the ARNs of those it uses
 * (the OpenAI pair only in a stack deployed with OpenAI's webhooks on).
 */
export const SECRET_VARIABLES = [
  "WEBHOOK_SECRET",
  "API_TOKEN",
  "NOTIFY_SINKS",
  "OPENAI_WEBHOOK_SECRET",
  "OPENAI_API_KEY",
] as const;

/** One of {@link SECRET_VARIABLES}. */
export type SecretVariable = (typeof SECRET_VARIABLES)[number];

/** Name of the variable holding the ARN of the secret whose value is `variable`. */
export const secretArnVariable = (variable: SecretVariable) => `${variable}_SECRET_ARN`;

// The AWS Parameters and Secrets Lambda Extension (a layer infra/ adds) answers on this port unless
// PARAMETERS_SECRETS_EXTENSION_HTTP_PORT says otherwise; it authenticates callers by the session token.
const DEFAULT_EXTENSION_PORT = "2773";
const TIMEOUT_MS = 5_000;

/**
 * `env` with each secret variable that is unset but has a `<NAME>_SECRET_ARN` filled in from Secrets
 * Manager, read through the Parameters and Secrets extension over HTTP on localhost: no AWS SDK
 * client for Secrets Manager in the bundle, and the values never sit in the function's
 * configuration. A variable set directly wins (tests, deployments without infra/). Problems are
 * one line each, naming the variable and the secret, never a value.
 */
export async function withSecrets(
  env: Readonly<Record<string, string | undefined>>,
  fetchFn: typeof fetch = fetch,
): Promise<Record<string, string | undefined>> {
  const wanted = SECRET_VARIABLES.flatMap((variable) => {
    const arn = env[secretArnVariable(variable)];
    return env[variable] === undefined && arn ? [{ variable, arn }] : [];
  });
  if (wanted.length === 0) return { ...env };
  const port = env.PARAMETERS_SECRETS_EXTENSION_HTTP_PORT ?? DEFAULT_EXTENSION_PORT;
  const results = await Promise.all(
    wanted.map(async ({ variable, arn }) => {
      const where = `${variable} from Secrets Manager (${secretArnVariable(variable)}=${arn})`;
      try {
        const response = await fetchFn(
          `http://localhost:${port}/secretsmanager/get?secretId=${encodeURIComponent(arn)}`,
          {
            headers: { "X-Aws-Parameters-Secrets-Token": env.AWS_SESSION_TOKEN ?? "" },
            signal: AbortSignal.timeout(TIMEOUT_MS),
          },
        );
        const text = await response.text();
        if (!response.ok) {
          // The extension relays Secrets Manager's error (not found, access denied), never a value.
          return { problem: `cannot read ${where}: HTTP ${response.status} ${text.slice(0, 200)}` };
        }
        const body = JSON.parse(text) as { SecretString?: unknown };
        if (typeof body.SecretString !== "string") {
          return {
            problem: `cannot read ${where}: the secret has no string value; put one with aws secretsmanager put-secret-value`,
          };
        }
        return { variable, value: body.SecretString };
      } catch (error) {
        const reason = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
        return {
          problem: `cannot read ${where}: ${reason} (is the Parameters and Secrets extension layer attached?)`,
        };
      }
    }),
  );
  const problems = results.flatMap((r) => ("problem" in r ? [r.problem] : []));
  if (problems.length > 0) throw new StartupError(problems.join("\n"));
  const out: Record<string, string | undefined> = { ...env };
  for (const r of results) if ("variable" in r) out[r.variable] = r.value;
  return out;
}

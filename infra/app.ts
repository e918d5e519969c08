import { join } from "node:path";
import { App, Duration, aws_lambda as lambda, Validations } from "aws-cdk-lib";
import { AwsSolutionsChecks } from "cdk-nag";
import { bundleLambda, REPO_ROOT } from "./lambda-bundle.js";
import { StepwatchStack } from "./stepwatch-stack.js";

// `cdk synth` / `cdk deploy` from infra/ (see "Deploying to production" in README.md). Context:
//   -c tableName=stepwatch   -c lambda=false (table and Worker user only)   -c workerUser=false
//   -c httpReservedConcurrency=25   -c alarmEmail=ops@example.com   -c oldestPendingAlarmMinutes=60
//   -c logLevel=info   -c openai=true (OpenAI's webhooks: its two secrets)   -c openaiBaseUrl=https://...
//   -c openaiOrganization=org_...   -c openaiProject=proj_...   -c openaiHydrationConcurrency=8
const app = new App();
// cdk-nag's AwsSolutions rules: synthesis fails on any finding not acknowledged in the stack.
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
const flag = (name: string) => {
  const value: unknown = app.node.tryGetContext(name);
  return value === undefined ? true : value !== false && value !== "false";
};
const tableName: unknown = app.node.tryGetContext("tableName");
const text = (name: string): string | undefined => {
  const value: unknown = app.node.tryGetContext(name);
  return value === undefined || value === "" ? undefined : String(value);
};
const positive = (name: string): number | undefined => {
  const value = text(name);
  if (value === undefined) return undefined;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 1)
    throw new Error(`-c ${name}=${value}: expected a whole number ≥ 1`);
  return parsed;
};
const logLevel = text("logLevel");
if (logLevel !== undefined && !["debug", "info", "warn", "error"].includes(logLevel)) {
  throw new Error(`-c logLevel=${logLevel}: expected debug, info, warn or error`);
}
const concurrency = positive("httpReservedConcurrency");
const alarmEmail = text("alarmEmail");
const pendingMinutes = positive("oldestPendingAlarmMinutes");
// Off unless asked for: a stack without OpenAI's webhooks has no secrets for them to fill in.
const openai = app.node.tryGetContext("openai");
const openAiEntries = {
  baseUrl: text("openaiBaseUrl"),
  organization: text("openaiOrganization"),
  project: text("openaiProject"),
  hydrationConcurrency: positive("openaiHydrationConcurrency"),
};
const openAiSettings =
  openai === undefined || openai === false || openai === "false"
    ? undefined
    : Object.fromEntries(Object.entries(openAiEntries).filter(([, value]) => value !== undefined));

new StepwatchStack(app, "Stepwatch", {
  lambdaCode: lambda.Code.fromAsset(bundleLambda(join(REPO_ROOT, "dist/lambda"))),
  ...(typeof tableName === "string" ? { tableName } : {}),
  lambda: flag("lambda"),
  workerUser: flag("workerUser"),
  ...(concurrency === undefined ? {} : { httpReservedConcurrency: concurrency }),
  ...(alarmEmail === undefined ? {} : { alarmEmail }),
  ...(pendingMinutes === undefined ? {} : { oldestPendingAlarmAge: Duration.minutes(pendingMinutes) }),
  ...(logLevel === undefined ? {} : { logLevel: logLevel as "debug" | "info" | "warn" | "error" }),
  ...(openAiSettings === undefined ? {} : { openai: openAiSettings }),
});
app.synth();

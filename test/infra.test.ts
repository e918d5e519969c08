import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { App, Duration, aws_lambda as lambda, aws_sns as sns, Validations } from "aws-cdk-lib";
import { Match, Template } from "aws-cdk-lib/assertions";
import { AwsSolutionsChecks } from "cdk-nag";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bundleLambda, REPO_ROOT } from "../infra/lambda-bundle.js";
import { DEFAULT_HTTP_RESERVED_CONCURRENCY, StepwatchStack } from "../infra/stepwatch-stack.js";
import { BACKLOG_METRICS } from "../src/observability/backlog-metrics.js";
import { createTableInput } from "../src/store/ensure-table.js";
import { TABLE_SCHEMA } from "../src/store/table-schema.js";
import { toolCheck } from "./support/tool-check.js";

interface Statement {
  readonly Effect: string;
  readonly Action: string | string[];
  readonly Resource: unknown;
}

let bundleDir: string;
let template: Template;

// The feature flags `cdk synth` runs with (infra/cdk.json), so tests synthesise what deploys.
const cdkContext = JSON.parse(readFileSync(join(REPO_ROOT, "infra/cdk.json"), "utf8")).context as Record<
  string,
  unknown
>;
type Props = Partial<ConstructorParameters<typeof StepwatchStack>[2]>;
const stackOf = (props: Props = {}, app = new App({ context: cdkContext })) =>
  new StepwatchStack(app, "Stepwatch", { lambdaCode: lambda.Code.fromAsset(bundleDir), ...props });
const synth = (props: Props = {}) => Template.fromStack(stackOf(props));

beforeAll(() => {
  bundleDir = bundleLambda(mkdtempSync(join(tmpdir(), "stepwatch-infra-")));
  template = synth();
});

afterAll(() => {
  if (bundleDir) rmSync(bundleDir, { recursive: true, force: true });
});

const asList = (value: string | string[]) => (Array.isArray(value) ? value : [value]);

// Every statement of every IAM policy in the template, inline or managed.
function statementsOf(t: Template): Statement[] {
  const policies = {
    ...t.findResources("AWS::IAM::Policy"),
    ...t.findResources("AWS::IAM::ManagedPolicy"),
  };
  return Object.values(policies).flatMap(
    (policy) => (policy.Properties.PolicyDocument.Statement as Statement[] | undefined) ?? [],
  );
}

const logicalIdOf = (t: Template, type: string) => {
  const ids = Object.keys(t.findResources(type));
  expect(ids).toHaveLength(1);
  return ids[0] as string;
};

describe("infra/: the table", () => {
  it("has the key schema, attributes and indexes of the store's table definition", () => {
    const expected = createTableInput("stepwatch");
    const [table] = Object.values(template.findResources("AWS::DynamoDB::Table"));
    const props = table?.Properties;
    expect(props.TableName).toBe("stepwatch");
    expect(props.KeySchema).toEqual(expected.KeySchema);
    expect(props.KeySchema).toEqual([{ AttributeName: TABLE_SCHEMA.partitionKey, KeyType: "HASH" }]);
    expect(new Set(props.AttributeDefinitions)).toEqual(new Set(expected.AttributeDefinitions));
    expect(props.GlobalSecondaryIndexes).toHaveLength(Object.keys(TABLE_SCHEMA.indexes).length);
    expect(new Set(props.GlobalSecondaryIndexes)).toEqual(new Set(expected.GlobalSecondaryIndexes));
    for (const index of Object.values(TABLE_SCHEMA.indexes)) {
      expect(props.GlobalSecondaryIndexes).toContainEqual({
        IndexName: index.name,
        KeySchema: [
          { AttributeName: index.partitionKey, KeyType: "HASH" },
          { AttributeName: index.sortKey, KeyType: "RANGE" },
        ],
        // Only what each index's queries read: never ALL, which rewrites documents in every index.
        Projection: { ProjectionType: "INCLUDE", NonKeyAttributes: [...index.projection] },
      });
    }
  });

  it("is on-demand, with point-in-time recovery and the TTL attribute, and outlives the stack", () => {
    template.hasResource("AWS::DynamoDB::Table", {
      DeletionPolicy: "Retain",
      UpdateReplacePolicy: "Retain",
      Properties: Match.objectLike({
        DeletionProtectionEnabled: true,
        BillingMode: "PAY_PER_REQUEST",
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        TimeToLiveSpecification: { AttributeName: TABLE_SCHEMA.ttlAttribute, Enabled: true },
      }),
    });
  });
});

describe("infra/: least-privilege IAM", () => {
  it("grants exactly the DynamoDB actions the code calls, and no wildcard action", () => {
    const statements = statementsOf(template);
    const actions = statements.flatMap((s) => asList(s.Action));
    expect(new Set(actions.filter((a) => a.startsWith("dynamodb:")))).toEqual(
      new Set(TABLE_SCHEMA.runtimeActions),
    );
    expect(actions.filter((a) => a.includes("*"))).toEqual([]);
    expect(statements.every((s) => s.Effect === "Allow")).toBe(true);
  });

  it("grants them on the table and its indexes only, never on every resource", () => {
    const tableId = logicalIdOf(template, "AWS::DynamoDB::Table");
    const tableArn = { "Fn::GetAtt": [tableId, "Arn"] };
    const dynamo = statementsOf(template).filter((s) =>
      asList(s.Action).some((a) => a.startsWith("dynamodb:")),
    );
    const resources = dynamo.flatMap((s) => (Array.isArray(s.Resource) ? s.Resource : [s.Resource]));
    expect(resources).not.toContain("*");
    expect(new Set(resources)).toEqual(
      new Set([
        tableArn,
        ...Object.values(TABLE_SCHEMA.indexes).map((index) => ({
          "Fn::Join": ["", [tableArn, `/index/${index.name}`]],
        })),
      ]),
    );
    // The table statement covers every action; the index statement only what can read an index.
    const onIndexes = dynamo.filter((s) => JSON.stringify(s.Resource).includes("/index/"));
    expect(onIndexes.flatMap((s) => asList(s.Action))).toEqual(["dynamodb:Query"]);
    // No action outside DynamoDB reaches any resource but the functions' own log groups and secrets.
    const others = statementsOf(template).filter((s) => !dynamo.includes(s));
    expect(new Set(others.flatMap((s) => asList(s.Action)))).toEqual(
      new Set([
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "secretsmanager:GetSecretValue",
        "secretsmanager:DescribeSecret",
      ]),
    );
    expect(JSON.stringify(others.map((s) => s.Resource))).not.toContain('"*"');
  });

  it("gives the one runtime policy to the Lambda role and to the Worker's user, and nothing else", () => {
    const policyId = logicalIdOf(template, "AWS::IAM::ManagedPolicy");
    const roles = Object.values(template.findResources("AWS::IAM::Role"));
    expect(roles).toHaveLength(2);
    for (const role of roles) {
      expect(role.Properties.AssumeRolePolicyDocument.Statement).toMatchObject([
        { Principal: { Service: "lambda.amazonaws.com" } },
      ]);
      expect(role.Properties.ManagedPolicyArns).toEqual([{ Ref: policyId }]);
    }
    template.hasResourceProperties("AWS::IAM::User", { ManagedPolicyArns: [{ Ref: policyId }] });
    // No AWS-managed policy (e.g. AWSLambdaBasicExecutionRole, logs on every group) is attached.
    expect(JSON.stringify(template.toJSON())).not.toContain("arn:aws:iam::aws:policy");
  });
});

describe("infra/: the Lambda function, its URL and the sweep schedule", () => {
  it("serves the app through a Function URL and sweeps on an EventBridge schedule", () => {
    const tableId = logicalIdOf(template, "AWS::DynamoDB::Table");
    template.resourceCountIs("AWS::Lambda::Function", 2);
    template.hasResourceProperties("AWS::Lambda::Function", {
      Handler: "index.handler",
      Runtime: Match.stringLikeRegexp("^nodejs2[2-9]\\.x$"),
      Environment: { Variables: Match.objectLike({ DYNAMODB_TABLE: { Ref: tableId } }) },
    });
    const functions = template.findResources("AWS::Lambda::Function");
    const idOf = (handler: string) =>
      Object.entries(functions).find(([, f]) => f.Properties.Handler === handler)?.[0] as string;
    template.hasResourceProperties("AWS::Lambda::Url", {
      AuthType: "NONE",
      TargetFunctionArn: { "Fn::GetAtt": [idOf("index.handler"), "Arn"] },
    });
    template.hasResourceProperties("AWS::Events::Rule", {
      ScheduleExpression: "rate(1 minute)",
      State: "ENABLED",
      Targets: [Match.objectLike({ Arn: { "Fn::GetAtt": [idOf("index.scheduled"), "Arn"] } })],
    });
  });

  it("can leave the Lambda side out (Workers only) and keep the table and access", () => {
    const workersOnly = synth({ lambda: false, tableName: "stepwatch-edge" });
    workersOnly.resourceCountIs("AWS::Lambda::Function", 0);
    workersOnly.resourceCountIs("AWS::Events::Rule", 0);
    workersOnly.hasResourceProperties("AWS::DynamoDB::Table", { TableName: "stepwatch-edge" });
    workersOnly.resourceCountIs("AWS::IAM::User", 1);
    expect(new Set(statementsOf(workersOnly).flatMap((s) => asList(s.Action)))).toEqual(
      new Set(TABLE_SCHEMA.runtimeActions),
    );
  });
});

// biome-ignore lint/suspicious/noExplicitAny: CloudFormation properties, read by the assertions below
type Resource = { Type: string; Properties: Record<string, any> };
const functionsOf = (t: Template) => t.findResources("AWS::Lambda::Function") as Record<string, Resource>;
const functionWith = (t: Template, handler: string) => {
  const found = Object.entries(functionsOf(t)).find(([, f]) => f.Properties.Handler === handler);
  if (!found) throw new Error(`no function with handler ${handler}`);
  return { id: found[0], ...found[1] };
};
const secretIdOf = (t: Template, description: RegExp) => {
  const found = Object.entries(t.findResources("AWS::SecretsManager::Secret")).find(([, r]) =>
    description.test(r.Properties.Description),
  );
  if (!found) throw new Error(`no secret matching ${description}`);
  return found[0];
};
// Every secretsmanager resource a function's role may read.
const secretsReadBy = (t: Template, fn: Resource) => {
  const roleId = fn.Properties.Role["Fn::GetAtt"][0];
  return Object.values(t.findResources("AWS::IAM::Policy"))
    .filter((p) => p.Properties.Roles.some((r: { Ref: string }) => r.Ref === roleId))
    .flatMap((p) => p.Properties.PolicyDocument.Statement as Statement[])
    .filter((s) => asList(s.Action).some((a) => a.startsWith("secretsmanager:")))
    .flatMap((s) => (Array.isArray(s.Resource) ? s.Resource : [s.Resource]));
};

describe("infra/: secrets", () => {
  it("keeps them in Secrets Manager: the functions get ARNs, never values, and read them through the extension", () => {
    for (const handler of ["index.handler", "index.scheduled"]) {
      const fn = functionWith(template, handler);
      const variables = fn.Properties.Environment.Variables as Record<string, unknown>;
      for (const name of ["WEBHOOK_SECRET", "API_TOKEN", "NOTIFY_SINKS"])
        expect(variables).not.toHaveProperty(name);
      expect(variables.PARAMETERS_SECRETS_EXTENSION_HTTP_PORT).toBe("2773");
      expect(JSON.stringify(fn.Properties.Layers)).toContain("ParamsandsecretslayerMap");
    }
    expect(template.toJSON().Parameters ?? {}).toEqual({
      BootstrapVersion: expect.anything(),
    });
    // The API token is generated usable (letters and digits); the sinks default to none.
    template.hasResourceProperties("AWS::SecretsManager::Secret", {
      Description: Match.stringLikeRegexp("API_TOKEN"),
      GenerateSecretString: { ExcludePunctuation: true, PasswordLength: 48 },
    });
    template.hasResourceProperties("AWS::SecretsManager::Secret", {
      Description: Match.stringLikeRegexp("NOTIFY_SINKS"),
      SecretString: "[]",
    });
  });

  it("gives each function only the secrets it uses: the sweeper never sees WEBHOOK_SECRET or API_TOKEN", () => {
    const ids = {
      WEBHOOK_SECRET: secretIdOf(template, /WEBHOOK_SECRET/),
      API_TOKEN: secretIdOf(template, /API_TOKEN/),
      NOTIFY_SINKS: secretIdOf(template, /NOTIFY_SINKS/),
    };
    const http = functionWith(template, "index.handler");
    const sweeper = functionWith(template, "index.scheduled");
    expect(http.Properties.Environment.Variables).toMatchObject({
      WEBHOOK_SECRET_SECRET_ARN: { Ref: ids.WEBHOOK_SECRET },
      API_TOKEN_SECRET_ARN: { Ref: ids.API_TOKEN },
      NOTIFY_SINKS_SECRET_ARN: { Ref: ids.NOTIFY_SINKS },
    });
    expect(new Set(secretsReadBy(template, http))).toEqual(
      new Set(Object.values(ids).map((id) => ({ Ref: id }))),
    );
    const sweeperVariables = Object.keys(sweeper.Properties.Environment.Variables);
    expect(sweeperVariables.filter((name) => name.endsWith("_SECRET_ARN"))).toEqual([
      "NOTIFY_SINKS_SECRET_ARN",
    ]);
    expect(secretsReadBy(template, sweeper)).toEqual([{ Ref: ids.NOTIFY_SINKS }]);
    expect(sweeper.Properties.Role).not.toEqual(http.Properties.Role);
  });

  it("adds OpenAI's two secrets only when asked: the HTTP function reads both, the sweeper the API key alone", () => {
    expect(JSON.stringify(template.findResources("AWS::SecretsManager::Secret"))).not.toContain("OPENAI");
    const withOpenAi = synth({
      openai: {
        baseUrl: "https://example.openai.azure.com/openai/v1",
        project: "proj_1",
        hydrationConcurrency: 4,
      },
    });
    const ids = {
      WEBHOOK_SECRET: secretIdOf(withOpenAi, /^stepwatch WEBHOOK_SECRET/),
      API_TOKEN: secretIdOf(withOpenAi, /API_TOKEN/),
      NOTIFY_SINKS: secretIdOf(withOpenAi, /NOTIFY_SINKS/),
      OPENAI_WEBHOOK_SECRET: secretIdOf(withOpenAi, /OPENAI_WEBHOOK_SECRET/),
      OPENAI_API_KEY: secretIdOf(withOpenAi, /OPENAI_API_KEY/),
    };
    expect(new Set(Object.values(ids)).size).toBe(5);
    // A placeholder key OpenAI refuses (events wait, visibly) rather than one the sweeper cannot start with.
    withOpenAi.hasResourceProperties("AWS::SecretsManager::Secret", {
      Description: Match.stringLikeRegexp("OPENAI_API_KEY"),
      GenerateSecretString: { ExcludePunctuation: true, PasswordLength: 48 },
    });
    const http = functionWith(withOpenAi, "index.handler");
    const sweeper = functionWith(withOpenAi, "index.scheduled");
    expect(new Set(secretsReadBy(withOpenAi, http))).toEqual(
      new Set(Object.values(ids).map((id) => ({ Ref: id }))),
    );
    expect(new Set(secretsReadBy(withOpenAi, sweeper))).toEqual(
      new Set([{ Ref: ids.NOTIFY_SINKS }, { Ref: ids.OPENAI_API_KEY }]),
    );
    const settings = {
      OPENAI_BASE_URL: "https://example.openai.azure.com/openai/v1",
      OPENAI_PROJECT: "proj_1",
      OPENAI_HYDRATION_CONCURRENCY: "4",
    };
    expect(http.Properties.Environment.Variables).toMatchObject({
      ...settings,
      OPENAI_WEBHOOK_SECRET_SECRET_ARN: { Ref: ids.OPENAI_WEBHOOK_SECRET },
      OPENAI_API_KEY_SECRET_ARN: { Ref: ids.OPENAI_API_KEY },
    });
    const sweeperVariables = sweeper.Properties.Environment.Variables as Record<string, unknown>;
    expect(sweeperVariables).toMatchObject({
      ...settings,
      OPENAI_API_KEY_SECRET_ARN: { Ref: ids.OPENAI_API_KEY },
    });
    expect(
      Object.keys(sweeperVariables)
        .filter((name) => name.endsWith("_SECRET_ARN"))
        .sort(),
    ).toEqual(["NOTIFY_SINKS_SECRET_ARN", "OPENAI_API_KEY_SECRET_ARN"]);
    for (const fn of [http, sweeper]) {
      const variables = fn.Properties.Environment.Variables as Record<string, unknown>;
      // Values never in the configuration; a setting not given keeps the runtimes' default.
      for (const name of ["OPENAI_WEBHOOK_SECRET", "OPENAI_API_KEY", "OPENAI_ORGANIZATION"])
        expect(variables).not.toHaveProperty(name);
    }
    // Hydrations go to OpenAI over the internet: no AWS permission beyond the secrets' reads.
    const actions = (t: Template) => new Set(statementsOf(t).flatMap((st) => asList(st.Action)));
    expect(actions(withOpenAi)).toEqual(actions(template));
    expect(JSON.stringify(withOpenAi.toJSON().Outputs)).toContain("OpenAiApiKeySecretArn");
  });
});

describe("infra/: the functions' limits and logs", () => {
  it("reserves (and so caps) the public HTTP function's concurrency, by default and when given", () => {
    expect(functionWith(template, "index.handler").Properties.ReservedConcurrentExecutions).toBe(
      DEFAULT_HTTP_RESERVED_CONCURRENCY,
    );
    expect(functionWith(template, "index.scheduled").Properties.ReservedConcurrentExecutions).toBeUndefined();
    const custom = synth({ httpReservedConcurrency: 7 });
    expect(functionWith(custom, "index.handler").Properties.ReservedConcurrentExecutions).toBe(7);
  });

  it("logs JSON at the configured level to each function's own log group", () => {
    for (const handler of ["index.handler", "index.scheduled"]) {
      const fn = functionWith(template, handler);
      expect(fn.Properties.LoggingConfig).toMatchObject({
        LogFormat: "JSON",
        ApplicationLogLevel: "INFO",
        LogGroup: { Ref: expect.stringMatching(/Logs/) },
      });
      expect(fn.Properties.Environment.Variables.LOG_LEVEL).toBe("info");
    }
    const quiet = functionWith(synth({ logLevel: "warn" }), "index.handler");
    expect(quiet.Properties.LoggingConfig.ApplicationLogLevel).toBe("WARN");
    expect(quiet.Properties.Environment.Variables.LOG_LEVEL).toBe("warn");
  });
});

describe("infra/: alarms", () => {
  const alarms = () => Object.values(template.findResources("AWS::CloudWatch::Alarm")) as Resource[];
  const topicId = () => logicalIdOf(template, "AWS::SNS::Topic");

  it("alarms on errors and throttles of each function", () => {
    for (const handler of ["index.handler", "index.scheduled"]) {
      const { id } = functionWith(template, handler);
      for (const metric of ["Errors", "Throttles"]) {
        const found = alarms().filter(
          (a) =>
            a.Properties.MetricName === metric &&
            a.Properties.Namespace === "AWS/Lambda" &&
            JSON.stringify(a.Properties.Dimensions) ===
              JSON.stringify([{ Name: "FunctionName", Value: { Ref: id } }]),
        );
        expect(found, `${handler} ${metric}`).toHaveLength(1);
        expect(found[0]?.Properties).toMatchObject({ Threshold: 1, Statistic: "Sum" });
      }
    }
  });

  it("alarms on DynamoDB throttles and system errors for every operation the code calls", () => {
    const tableId = logicalIdOf(template, "AWS::DynamoDB::Table");
    for (const metric of ["ThrottledRequests", "SystemErrors"]) {
      const alarm = alarms().find((a) => JSON.stringify(a.Properties.Metrics ?? []).includes(`"${metric}"`));
      expect(alarm, metric).toBeDefined();
      const operations = (
        (alarm?.Properties.Metrics ?? []) as Array<{
          MetricStat?: { Metric: { Dimensions: Array<{ Name: string; Value: unknown }> } };
        }>
      )
        .flatMap((m) => m.MetricStat?.Metric.Dimensions ?? [])
        .filter((d) => d.Name === "Operation")
        .map((d) => `dynamodb:${d.Value}`);
      const called = TABLE_SCHEMA.runtimeActions.filter((a) => a !== "dynamodb:DescribeTable");
      expect(new Set(operations)).toEqual(new Set(called));
      expect(JSON.stringify(alarm?.Properties.Metrics)).toContain(tableId);
    }
  });

  it("alarms on the oldest pending delivery's age and on dead deliveries, from the sweeper's EMF gauges", () => {
    const tableId = logicalIdOf(template, "AWS::DynamoDB::Table");
    const backlog = (name: string) =>
      alarms().find(
        (a) => a.Properties.Namespace === BACKLOG_METRICS.namespace && a.Properties.MetricName === name,
      );
    const age = backlog(BACKLOG_METRICS.oldestPendingAge);
    expect(age?.Properties).toMatchObject({
      Threshold: 3600,
      ComparisonOperator: "GreaterThanThreshold",
      Statistic: "Maximum",
      Dimensions: [{ Name: BACKLOG_METRICS.tableDimension, Value: { Ref: tableId } }],
    });
    expect(backlog(BACKLOG_METRICS.dead)?.Properties).toMatchObject({
      Threshold: 1,
      ComparisonOperator: "GreaterThanOrEqualToThreshold",
    });
    const custom = synth({ oldestPendingAlarmAge: Duration.minutes(15) });
    const customAge = Object.values(custom.findResources("AWS::CloudWatch::Alarm")).find(
      (a) => a.Properties.MetricName === BACKLOG_METRICS.oldestPendingAge,
    );
    expect(customAge?.Properties.Threshold).toBe(900);
  });

  it("notifies one SNS topic of every alarm and its all-clear, e-mailed when an address is given", () => {
    expect(alarms()).toHaveLength(8);
    for (const alarm of alarms()) {
      expect(alarm.Properties.AlarmActions).toEqual([{ Ref: topicId() }]);
      expect(alarm.Properties.OKActions).toEqual([{ Ref: topicId() }]);
    }
    template.resourceCountIs("AWS::SNS::Subscription", 0);
    synth({ alarmEmail: "ops@example.com" }).hasResourceProperties("AWS::SNS::Subscription", {
      Protocol: "email",
      Endpoint: "ops@example.com",
    });
    // The Workers-only stack keeps the table's alarms.
    expect(Object.keys(synth({ lambda: false }).findResources("AWS::CloudWatch::Alarm"))).toHaveLength(2);
  });
});

describe("infra/: cdk-nag AwsSolutions", () => {
  const synthChecked = (props: Props) => {
    const app = new App({ context: cdkContext });
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    stackOf(props, app);
    return () => app.synth();
  };

  it("reports no unacknowledged finding, with or without the Lambda side", () => {
    expect(synthChecked({})).not.toThrow();
    expect(synthChecked({ lambda: false })).not.toThrow();
    expect(synthChecked({ openai: {} })).not.toThrow();
  });

  it("fails synthesis on a finding nobody acknowledged (the check is live)", () => {
    const app = new App({ context: cdkContext });
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    const stack = stackOf({}, app);
    // A topic that takes plain HTTP publishes (AwsSolutions-SNS3), with no reason given for it.
    new sns.Topic(stack, "Unchecked");
    expect(() => app.synth()).toThrow();
  });
});

describe("npm run synth", () => {
  it("synthesises the CDK app offline, with no AWS account", async () => {
    // `cdk synth --quiet --output <tmp>` from infra/, with no credentials or region from this
    // machine: synthesis must not need them (test/support/tool-checks.ts; `npm test` starts it early).
    const run = await toolCheck("cdk-synth");
    expect(run.status, `${run.error ?? ""}\n${run.stderr}`).toBe(0);
    // infra/cdk.json sets the recommended feature flags, so synth has nothing to warn about.
    expect(run.stderr).not.toMatch(/feature flags/i);
    const synthesised = JSON.parse(run.files.template ?? "null");
    expect(Object.values(synthesised.Resources).map((r) => (r as { Type: string }).Type)).toContain(
      "AWS::DynamoDB::Table",
    );
  }, 180_000);
});

import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { App, aws_lambda as lambda } from "aws-cdk-lib";
import { Match, Template } from "aws-cdk-lib/assertions";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bundleLambda, REPO_ROOT } from "../infra/lambda-bundle.js";
import { StepwatchStack } from "../infra/stepwatch-stack.js";
import { createTableInput } from "../src/store/ensure-table.js";
import { TABLE_SCHEMA } from "../src/store/table-schema.js";

interface Statement {
  readonly Effect: string;
  readonly Action: string | string[];
  readonly Resource: unknown;
}

let bundleDir: string;
let template: Template;

const synth = (props: Partial<ConstructorParameters<typeof StepwatchStack>[2]> = {}) =>
  Template.fromStack(
    new StepwatchStack(new App(), "Stepwatch", { lambdaCode: lambda.Code.fromAsset(bundleDir), ...props }),
  );

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
    // No action outside DynamoDB reaches any resource but the functions' own log groups.
    const others = statementsOf(template).filter((s) => !dynamo.includes(s));
    expect(new Set(others.flatMap((s) => asList(s.Action)))).toEqual(
      new Set(["logs:CreateLogStream", "logs:PutLogEvents"]),
    );
    expect(JSON.stringify(others.map((s) => s.Resource))).not.toContain('"*"');
  });

  it("gives the one runtime policy to the Lambda role and to the Worker's user, and nothing else", () => {
    const policyId = logicalIdOf(template, "AWS::IAM::ManagedPolicy");
    template.hasResourceProperties("AWS::IAM::Role", {
      AssumeRolePolicyDocument: Match.objectLike({
        Statement: [Match.objectLike({ Principal: { Service: "lambda.amazonaws.com" } })],
      }),
      ManagedPolicyArns: [{ Ref: policyId }],
    });
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
    // Secrets are NoEcho parameters, not literals in the template.
    const parameters = template.toJSON().Parameters as Record<string, { NoEcho?: boolean }>;
    expect(parameters.WebhookSecret?.NoEcho).toBe(true);
    expect(parameters.ApiToken?.NoEcho).toBe(true);
    expect(parameters.NotifySinks?.NoEcho).toBe(true);
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

describe("npm run synth", () => {
  it("synthesises the CDK app offline, with no AWS account", () => {
    const out = mkdtempSync(join(tmpdir(), "stepwatch-cdk-out-"));
    try {
      const run = spawnSync(
        process.execPath,
        [join(REPO_ROOT, "node_modules/aws-cdk/bin/cdk"), "synth", "--quiet", "--output", out],
        {
          cwd: join(REPO_ROOT, "infra"),
          encoding: "utf8",
          timeout: 90_000,
          // No credentials or region from this machine: synthesis must not need them.
          env: {
            PATH: process.env.PATH ?? "",
            HOME: process.env.HOME ?? "/tmp",
            CDK_DISABLE_CLI_TELEMETRY: "true",
          },
        },
      );
      expect(run.status, run.stderr).toBe(0);
      const synthesised = JSON.parse(readFileSync(join(out, "Stepwatch.template.json"), "utf8"));
      expect(Object.values(synthesised.Resources).map((r) => (r as { Type: string }).Type)).toContain(
        "AWS::DynamoDB::Table",
      );
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 120_000);
});

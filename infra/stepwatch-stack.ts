import {
  CfnOutput,
  CfnParameter,
  Duration,
  aws_dynamodb as dynamodb,
  aws_events as events,
  aws_events_targets as eventsTargets,
  aws_iam as iam,
  aws_lambda as lambda,
  aws_logs as logs,
  RemovalPolicy,
  Stack,
  type StackProps,
} from "aws-cdk-lib";
import type { Construct } from "constructs";
import { createTableInput } from "../src/store/ensure-table.js";
import { TABLE_SCHEMA } from "../src/store/table-schema.js";

/** What a deployment of stepwatch on AWS is made of; everything but the code has a default. */
export interface StepwatchStackProps extends StackProps {
  /** The bundled Lambda entry (see `bundleLambda`): `index.handler` and `index.scheduled`. */
  readonly lambdaCode: lambda.Code;
  /** Table name; the runtimes' DYNAMODB_TABLE. Default `stepwatch`, the configuration default. */
  readonly tableName?: string;
  /** Deploy the Lambda function, its URL and the sweep schedule. Default true. */
  readonly lambda?: boolean;
  /** Create an IAM user, with the same policy, whose access key the Worker uses. Default true. */
  readonly workerUser?: boolean;
  /** How often the sweeper looks for due notification retries. Default one minute. */
  readonly sweepEvery?: Duration;
}

// Of the actions the code calls, the ones that can address an index rather than the table.
const INDEX_ACTIONS: ReadonlySet<string> = new Set(["dynamodb:Query", "dynamodb:Scan"]);

const ATTRIBUTE_TYPES = {
  S: dynamodb.AttributeType.STRING,
  N: dynamodb.AttributeType.NUMBER,
  B: dynamodb.AttributeType.BINARY,
} as const;

// The CDK form of a CreateTable projection: what each index's queries read, nothing more.
function projectionOf(
  projection: { ProjectionType?: string | undefined; NonKeyAttributes?: string[] | undefined } | undefined,
): Pick<dynamodb.GlobalSecondaryIndexProps, "projectionType" | "nonKeyAttributes"> {
  if (projection?.ProjectionType === "INCLUDE") {
    return {
      projectionType: dynamodb.ProjectionType.INCLUDE,
      nonKeyAttributes: projection.NonKeyAttributes ?? [],
    };
  }
  if (projection?.ProjectionType === "KEYS_ONLY")
    return { projectionType: dynamodb.ProjectionType.KEYS_ONLY };
  return { projectionType: dynamodb.ProjectionType.ALL };
}

/**
 * stepwatch on AWS: the table (keys, indexes and TTL from the definition the store uses),
 * least-privilege access for the runtimes, and optionally the Lambda function with its Function
 * URL and the EventBridge schedule of its sweeper. Environment-agnostic, so it synthesises offline.
 */
export class StepwatchStack extends Stack {
  /** The table. */
  readonly table: dynamodb.Table;
  /** Exactly the DynamoDB actions the code calls, on the table and its indexes only. */
  readonly runtimePolicy: iam.ManagedPolicy;

  constructor(scope: Construct, id: string, props: StepwatchStackProps) {
    super(scope, id, props);
    this.templateOptions.description = "stepwatch: run step webhooks into DynamoDB, with notifications";

    this.table = this.#table(props.tableName ?? "stepwatch");
    this.runtimePolicy = this.#runtimePolicy(this.table);
    new CfnOutput(this, "TableName", { value: this.table.tableName });
    new CfnOutput(this, "RuntimePolicyArn", { value: this.runtimePolicy.managedPolicyArn });

    if (props.workerUser ?? true) {
      const user = new iam.User(this, "WorkerUser", { managedPolicies: [this.runtimePolicy] });
      new CfnOutput(this, "WorkerUserName", {
        value: user.userName,
        description: "aws iam create-access-key --user-name <this>, then wrangler secret put the pair",
      });
    }
    if (props.lambda ?? true) this.#lambda(props);
  }

  #table(tableName: string): dynamodb.Table {
    // The same CreateTable input the Node entry uses on a local store: one definition, two consumers.
    const input = createTableInput(tableName);
    const types = new Map((input.AttributeDefinitions ?? []).map((a) => [a.AttributeName, a.AttributeType]));
    const attribute = (name: string | undefined): dynamodb.Attribute => {
      const type = name === undefined ? undefined : types.get(name);
      if (name === undefined || type === undefined) throw new Error(`no attribute definition for ${name}`);
      return { name, type: ATTRIBUTE_TYPES[type] };
    };
    const keyOf = (schema: typeof input.KeySchema, keyType: "HASH" | "RANGE") =>
      schema?.find((key) => key.KeyType === keyType)?.AttributeName;

    const table = new dynamodb.Table(this, "Table", {
      tableName,
      partitionKey: attribute(keyOf(input.KeySchema, "HASH")),
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      timeToLiveAttribute: TABLE_SCHEMA.ttlAttribute,
      // The table is the record of every step and owed notification: never deleted with the stack.
      removalPolicy: RemovalPolicy.RETAIN,
    });
    for (const index of input.GlobalSecondaryIndexes ?? []) {
      if (!index.IndexName) throw new Error("index without a name");
      const sortKey = keyOf(index.KeySchema, "RANGE");
      table.addGlobalSecondaryIndex({
        indexName: index.IndexName,
        partitionKey: attribute(keyOf(index.KeySchema, "HASH")),
        ...(sortKey === undefined ? {} : { sortKey: attribute(sortKey) }),
        ...projectionOf(index.Projection),
      });
    }
    return table;
  }

  #runtimePolicy(table: dynamodb.Table): iam.ManagedPolicy {
    const indexArns = Object.values(TABLE_SCHEMA.indexes).map(
      (index) => `${table.tableArn}/index/${index.name}`,
    );
    const indexActions = TABLE_SCHEMA.runtimeActions.filter((action) => INDEX_ACTIONS.has(action));
    return new iam.ManagedPolicy(this, "RuntimePolicy", {
      description: "stepwatch at run time: exactly the DynamoDB actions the code calls",
      statements: [
        new iam.PolicyStatement({
          sid: "Table",
          actions: [...TABLE_SCHEMA.runtimeActions],
          resources: [table.tableArn],
        }),
        new iam.PolicyStatement({ sid: "Indexes", actions: indexActions, resources: indexArns }),
      ],
    });
  }

  #lambda(props: StepwatchStackProps): void {
    // Secrets are deploy-time parameters (NoEcho), never in the template or the repository.
    const secret = (id: string, description: string, defaultValue?: string) =>
      new CfnParameter(this, id, {
        type: "String",
        noEcho: true,
        description,
        ...(defaultValue === undefined ? {} : { default: defaultValue }),
      }).valueAsString;
    const environment = {
      DYNAMODB_TABLE: this.table.tableName,
      WEBHOOK_SECRET: secret("WebhookSecret", "WEBHOOK_SECRET: whsec_ secret(s) of the webhook sender"),
      API_TOKEN: secret("ApiToken", "API_TOKEN: bearer token(s) of the read API, 16+ characters each"),
      NOTIFY_SINKS: secret("NotifySinks", "NOTIFY_SINKS: JSON array of sinks", "[]"),
      LOG_LEVEL: "info",
    };

    const role = new iam.Role(this, "FunctionRole", {
      assumedBy: new iam.ServicePrincipal("lambda.amazonaws.com"),
      description: "stepwatch Lambda functions: the runtime policy and their own log groups",
      managedPolicies: [this.runtimePolicy],
    });
    const fn = (id: string, handler: string, timeout: Duration) => {
      // An explicit log group (with retention) lets the role write to it alone, not to every group.
      const logGroup = new logs.LogGroup(this, `${id}Logs`, {
        retention: logs.RetentionDays.ONE_MONTH,
        removalPolicy: RemovalPolicy.DESTROY,
      });
      logGroup.grantWrite(role);
      return new lambda.Function(this, id, {
        code: props.lambdaCode,
        handler,
        runtime: lambda.Runtime.NODEJS_22_X,
        architecture: lambda.Architecture.ARM_64,
        memorySize: 512,
        timeout,
        role,
        logGroup,
        loggingFormat: lambda.LoggingFormat.TEXT,
        environment,
      });
    };

    // Signed webhooks and bearer tokens are checked by the app, so the URL itself is public.
    const http = fn("HttpFunction", "index.handler", Duration.seconds(30));
    const url = http.addFunctionUrl({ authType: lambda.FunctionUrlAuthType.NONE });
    new CfnOutput(this, "FunctionUrl", { value: url.url });

    const sweeper = fn("SweepFunction", "index.scheduled", Duration.minutes(2));
    new events.Rule(this, "SweepSchedule", {
      description: "stepwatch: sweep due notification retries",
      schedule: events.Schedule.rate(props.sweepEvery ?? Duration.minutes(1)),
      // A missed sweep is made up by the next one; retrying it would only overlap.
      targets: [new eventsTargets.LambdaFunction(sweeper, { retryAttempts: 0 })],
    });
  }
}

import {
  CfnOutput,
  aws_cloudwatch as cloudwatch,
  aws_cloudwatch_actions as cloudwatchActions,
  Duration,
  aws_dynamodb as dynamodb,
  aws_events as events,
  aws_events_targets as eventsTargets,
  aws_iam as iam,
  aws_lambda as lambda,
  aws_logs as logs,
  RemovalPolicy,
  SecretValue,
  Stack,
  type StackProps,
  aws_secretsmanager as secretsmanager,
  aws_sns as sns,
  aws_sns_subscriptions as subscriptions,
  Validations,
} from "aws-cdk-lib";
import type { Construct } from "constructs";
import { BACKLOG_METRICS } from "../src/observability/backlog-metrics.js";
import { type SecretVariable, secretArnVariable } from "../src/runtime/lambda-secrets.js";
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
  /**
   * Reserved concurrency of the HTTP function: its public URL can scale no further, so a flood
   * cannot take the account's whole concurrency (or the table's budget). Default 25.
   */
  readonly httpReservedConcurrency?: number;
  /** Where alarm notifications are e-mailed (a subscription to confirm); none by default. */
  readonly alarmEmail?: string;
  /** The age of the oldest pending delivery that raises an alarm. Default one hour. */
  readonly oldestPendingAlarmAge?: Duration;
  /** LOG_LEVEL of the functions, and Lambda's application log level filter. Default info. */
  readonly logLevel?: "debug" | "info" | "warn" | "error";
  /**
   * OpenAI's platform webhooks (SPEC §9) on the Lambda side: given, the stack adds the
   * OPENAI_WEBHOOK_SECRET and OPENAI_API_KEY secrets and these settings. Off by default.
   */
  readonly openai?: StepwatchOpenAiProps;
}

/** The OpenAI settings of a stack deployed with OpenAI's webhooks; each has the runtimes' default. */
export interface StepwatchOpenAiProps {
  /** OPENAI_BASE_URL: OpenAI's API, Azure OpenAI's v1 or a compatible server. */
  readonly baseUrl?: string;
  /** OPENAI_ORGANIZATION. */
  readonly organization?: string;
  /** OPENAI_PROJECT. */
  readonly project?: string;
  /** OPENAI_HYDRATION_CONCURRENCY, per execution environment. */
  readonly hydrationConcurrency?: number;
}

/** The HTTP function's reserved concurrency when none is given. */
export const DEFAULT_HTTP_RESERVED_CONCURRENCY = 25;

// Of the actions the code calls, the ones CloudWatch reports throttles and system errors for.
const TABLE_OPERATIONS: readonly dynamodb.Operation[] = Object.values(dynamodb.Operation).filter((op) =>
  (TABLE_SCHEMA.runtimeActions as readonly string[]).includes(`dynamodb:${op}`),
);

const APPLICATION_LOG_LEVELS = {
  debug: lambda.ApplicationLogLevel.DEBUG,
  info: lambda.ApplicationLogLevel.INFO,
  warn: lambda.ApplicationLogLevel.WARN,
  error: lambda.ApplicationLogLevel.ERROR,
} as const;

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
  /** Every alarm notifies this topic. */
  readonly alarmTopic: sns.Topic;

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
    this.alarmTopic = new sns.Topic(this, "AlarmTopic", {
      displayName: "stepwatch alarms",
      enforceSSL: true,
    });
    if (props.alarmEmail)
      this.alarmTopic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));
    new CfnOutput(this, "AlarmTopicArn", { value: this.alarmTopic.topicArn });
    this.#tableAlarms();
    if (props.lambda ?? true) this.#lambda(props);
    this.#suppressions(props);
  }

  #alarm(id: string, props: cloudwatch.AlarmProps): cloudwatch.Alarm {
    const alarm = new cloudwatch.Alarm(this, id, props);
    const action = new cloudwatchActions.SnsAction(this.alarmTopic);
    alarm.addAlarmAction(action);
    // The all-clear too, so whoever was paged learns it is over.
    alarm.addOkAction(action);
    return alarm;
  }

  // Throttles and system errors on the operations the code calls, over five minutes: on-demand
  // tables throttle too (a hot partition, or a sudden peak above twice the previous one).
  #tableAlarms(): void {
    const period = Duration.minutes(5);
    this.#alarm("TableThrottlesAlarm", {
      alarmDescription: "stepwatch: DynamoDB throttled requests on the table",
      metric: this.table.metricThrottledRequestsForOperations({ operations: [...TABLE_OPERATIONS], period }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    this.#alarm("TableSystemErrorsAlarm", {
      alarmDescription: "stepwatch: DynamoDB system errors (HTTP 500) on the table",
      metric: this.table.metricSystemErrorsForOperations({ operations: [...TABLE_OPERATIONS], period }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
  }

  // Errors and throttles of one function, summed over five minutes.
  #functionAlarms(id: string, fn: lambda.Function): void {
    const period = Duration.minutes(5);
    const common = {
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    };
    this.#alarm(`${id}ErrorsAlarm`, {
      alarmDescription: `stepwatch: ${id} failed (handler errors, time-outs, start-up problems)`,
      metric: fn.metricErrors({ period, statistic: cloudwatch.Stats.SUM }),
      ...common,
    });
    this.#alarm(`${id}ThrottlesAlarm`, {
      alarmDescription: `stepwatch: ${id} was throttled (reserved concurrency reached)`,
      metric: fn.metricThrottles({ period, statistic: cloudwatch.Stats.SUM }),
      ...common,
    });
  }

  // The backlog gauges the sweeper logs in Embedded Metric Format after each sweep
  // (src/observability/backlog-metrics.ts), for the whole table.
  #deliveryAlarms(props: StepwatchStackProps): void {
    const metric = (metricName: string) =>
      new cloudwatch.Metric({
        namespace: BACKLOG_METRICS.namespace,
        metricName,
        dimensionsMap: { [BACKLOG_METRICS.tableDimension]: this.table.tableName },
        statistic: cloudwatch.Stats.MAXIMUM,
        period: Duration.minutes(5),
      });
    const maxAge = props.oldestPendingAlarmAge ?? Duration.hours(1);
    this.#alarm("OldestPendingDeliveryAlarm", {
      alarmDescription: `stepwatch: a notification has been pending for over ${maxAge.toHumanString()} (a sink failing or disabled)`,
      metric: metric(BACKLOG_METRICS.oldestPendingAge),
      threshold: maxAge.toSeconds(),
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    this.#alarm("DeadDeliveriesAlarm", {
      alarmDescription:
        "stepwatch: notifications are dead (retries exhausted); GET /v1/deliveries?state=dead, then retry them",
      metric: metric(BACKLOG_METRICS.dead),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
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
      // The table is the record of every step and owed notification: never deleted with the stack,
      // and DeleteTable is refused until someone turns deletion protection off on purpose.
      removalPolicy: RemovalPolicy.RETAIN,
      deletionProtection: true,
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
    // Secrets live in Secrets Manager; the functions get their ARNs and read the values at cold
    // start through the Parameters and Secrets extension (src/runtime/lambda-secrets.ts), so no
    // value is in the template, the function configuration or the repository.
    const secrets: Partial<Record<SecretVariable, secretsmanager.Secret>> = {
      // Until the sender's whsec_ secret is put in, the generated placeholder fails validation and
      // the function answers 500 naming WEBHOOK_SECRET in its log.
      WEBHOOK_SECRET: new secretsmanager.Secret(this, "WebhookSecret", {
        description: "stepwatch WEBHOOK_SECRET: the whsec_ secret(s) of the webhook sender",
      }),
      // A usable token from the start: letters and digits only, inside the bearer token alphabet.
      API_TOKEN: new secretsmanager.Secret(this, "ApiToken", {
        description: "stepwatch API_TOKEN: bearer token(s) of the read and operator API",
        generateSecretString: { excludePunctuation: true, passwordLength: 48 },
      }),
      // Sinks carry their own secrets (webhook signing keys, Slack and PagerDuty URLs).
      NOTIFY_SINKS: new secretsmanager.Secret(this, "NotifySinks", {
        description: "stepwatch NOTIFY_SINKS: JSON array of notification sinks",
        secretStringValue: SecretValue.unsafePlainText("[]"),
      }),
      // Opted into only: until OpenAI's whsec_ secret is put in, the generated placeholder fails
      // validation like WEBHOOK_SECRET's (the HTTP function answers 500 naming the variable); a
      // placeholder key is only refused by OpenAI (events wait, GET /v1/sources says why), so the
      // sweeper, which also delivers every notification, never fails to start because of it.
      ...(props.openai
        ? {
            OPENAI_WEBHOOK_SECRET: new secretsmanager.Secret(this, "OpenAiWebhookSecret", {
              description:
                "stepwatch OPENAI_WEBHOOK_SECRET: the whsec_ secret(s) of OpenAI's webhook endpoint",
            }),
            OPENAI_API_KEY: new secretsmanager.Secret(this, "OpenAiApiKey", {
              description: "stepwatch OPENAI_API_KEY: the OpenAI API key hydrations fetch with",
              generateSecretString: { excludePunctuation: true, passwordLength: 48 },
            }),
          }
        : {}),
    };
    for (const [variable, secret] of Object.entries(secrets)) {
      new CfnOutput(this, `${secret.node.id}SecretArn`, {
        value: secret.secretArn,
        description: `aws secretsmanager put-secret-value --secret-id <this> --secret-string ... (${variable})`,
      });
    }
    const logLevel = props.logLevel ?? "info";
    // Not secret: in the function's configuration, as the Worker has them in wrangler.toml's [vars].
    const openai = props.openai;
    const settings: Record<string, string> = {
      ...(openai?.baseUrl ? { OPENAI_BASE_URL: openai.baseUrl } : {}),
      ...(openai?.organization ? { OPENAI_ORGANIZATION: openai.organization } : {}),
      ...(openai?.project ? { OPENAI_PROJECT: openai.project } : {}),
      ...(openai?.hydrationConcurrency
        ? { OPENAI_HYDRATION_CONCURRENCY: String(openai.hydrationConcurrency) }
        : {}),
    };

    const fn = (id: string, handler: string, timeout: Duration, uses: readonly SecretVariable[]) => {
      // A role per function: each reads only its own secrets.
      const role = new iam.Role(this, `${id}Role`, {
        assumedBy: new iam.ServicePrincipal("lambda.amazonaws.com"),
        description: `stepwatch ${id}: the runtime policy, its own log group and its secrets`,
        managedPolicies: [this.runtimePolicy],
      });
      // An explicit log group (with retention) lets the role write to it alone, not to every group.
      const logGroup = new logs.LogGroup(this, `${id}Logs`, {
        retention: logs.RetentionDays.ONE_MONTH,
        removalPolicy: RemovalPolicy.DESTROY,
      });
      logGroup.grantWrite(role);
      const environment: Record<string, string> = {
        DYNAMODB_TABLE: this.table.tableName,
        LOG_LEVEL: logLevel,
        ...settings,
      };
      for (const variable of uses) {
        const secret = secrets[variable];
        // The OpenAI pair exists only in a stack deployed with it.
        if (!secret) continue;
        secret.grantRead(role);
        environment[secretArnVariable(variable)] = secret.secretArn;
      }
      const created = new lambda.Function(this, id, {
        code: props.lambdaCode,
        handler,
        // The newest Node.js Lambda runs (cdk-nag AwsSolutions-L1); the bundle targets node22 syntax, which it runs.
        runtime: lambda.Runtime.NODEJS_24_X,
        architecture: lambda.Architecture.ARM_64,
        memorySize: 512,
        timeout,
        role,
        logGroup,
        // Our lines are JSON written to stdout as they are (src/runtime/lambda.ts), with a `level`
        // Lambda filters on; its own START/REPORT lines become JSON records too.
        loggingFormat: lambda.LoggingFormat.JSON,
        applicationLogLevelV2: APPLICATION_LOG_LEVELS[logLevel],
        systemLogLevelV2: lambda.SystemLogLevel.INFO,
        paramsAndSecrets: lambda.ParamsAndSecretsLayerVersion.fromVersion(
          lambda.ParamsAndSecretsVersions.V1_0_103,
          {
            // Read once per cold start; the cache would only hold what the handler already keeps.
            cacheEnabled: false,
            logLevel: lambda.ParamsAndSecretsLogLevel.WARN,
          },
        ),
        environment,
      });
      this.#functionAlarms(id, created);
      return created;
    };

    // Signed webhooks and bearer tokens are checked by the app, so the URL itself is public; its
    // concurrency is capped, since anyone can call it.
    const http = fn(
      "HttpFunction",
      "index.handler",
      Duration.seconds(30),
      Object.keys(secrets) as SecretVariable[],
    );
    const reserved = props.httpReservedConcurrency ?? DEFAULT_HTTP_RESERVED_CONCURRENCY;
    (http.node.defaultChild as lambda.CfnFunction).reservedConcurrentExecutions = reserved;
    const url = http.addFunctionUrl({ authType: lambda.FunctionUrlAuthType.NONE });
    new CfnOutput(this, "FunctionUrl", { value: url.url });

    // The sweeper signs and sends notifications, so it needs the sinks, and it retries OpenAI
    // hydrations, so it needs OpenAI's API key; never a webhook secret or the API tokens (with the
    // key alone, stepwatch hydrates but serves no OpenAI webhook route: src/runtime/create-stepwatch.ts).
    const sweeper = fn("SweepFunction", "index.scheduled", Duration.minutes(2), [
      "NOTIFY_SINKS",
      "OPENAI_API_KEY",
    ]);
    new events.Rule(this, "SweepSchedule", {
      description: "stepwatch: sweep due notification retries",
      schedule: events.Schedule.rate(props.sweepEvery ?? Duration.minutes(1)),
      // A missed sweep is made up by the next one; retrying it would only overlap.
      targets: [new eventsTargets.LambdaFunction(sweeper, { retryAttempts: 0 })],
    });
    this.#deliveryAlarms(props);
  }

  // cdk-nag AwsSolutions findings this design accepts, each with its reason.
  #suppressions(props: StepwatchStackProps): void {
    Validations.of(this.alarmTopic).acknowledge({
      id: "AwsSolutions-SNS2",
      reason:
        "Alarm notifications carry alarm names and states, nothing secret; a customer-managed KMS key (which CloudWatch would need to publish to an encrypted topic) would cost more than it protects.",
    });
    if (!(props.lambda ?? true)) return;
    Validations.of(this).acknowledge({
      id: "AwsSolutions-SMG4",
      reason:
        "WEBHOOK_SECRET is issued by the webhook sender, NOTIFY_SINKS by each sink's owner, and OPENAI_WEBHOOK_SECRET and OPENAI_API_KEY by OpenAI's dashboard: they change when those parties rotate them (put-secret-value), which a rotation Lambda cannot do. API_TOKEN and OPENAI_WEBHOOK_SECRET accept several values, so they are rotated by hand without downtime (README).",
    });
  }
}

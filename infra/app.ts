import { join } from "node:path";
import { App, aws_lambda as lambda } from "aws-cdk-lib";
import { bundleLambda, REPO_ROOT } from "./lambda-bundle.js";
import { StepwatchStack } from "./stepwatch-stack.js";

// `cdk synth` / `cdk deploy` from infra/ (see "Deploying" in README.md). Context:
//   -c tableName=stepwatch   -c lambda=false (table and Worker user only)   -c workerUser=false
const app = new App();
const flag = (name: string) => {
  const value: unknown = app.node.tryGetContext(name);
  return value === undefined ? true : value !== false && value !== "false";
};
const tableName: unknown = app.node.tryGetContext("tableName");

new StepwatchStack(app, "Stepwatch", {
  lambdaCode: lambda.Code.fromAsset(bundleLambda(join(REPO_ROOT, "dist/lambda"))),
  ...(typeof tableName === "string" ? { tableName } : {}),
  lambda: flag("lambda"),
  workerUser: flag("workerUser"),
});
app.synth();

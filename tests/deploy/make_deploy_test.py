"""`make deploy` as a user runs it, against a local moto server: no TTY, no input.

    python tests/deploy/make_deploy_test.py

Starts moto (with the SAM transform, `infra/moto_sam.py`) on a free loopback port, creates the
artifact bucket, and runs `make deploy STACK=… REGION=… S3_BUCKET=…` with standard input closed:
`sam build` (cargo-lambda, every function for arm64) then `sam deploy`. Checks the stack, its
resources and outputs; that `make update F=message-received` pushes that function's code with
`cargo lambda deploy` and leaves its configuration alone; that a second `make deploy` is a no-op;
then `make destroy`. Exits 1 on the first failed check.

The functions are built in debug mode (`SAM_BUILD_MODE=debug`, SAM's own switch: the same
`sam build` and cargo-lambda path, without `--release`; `UPDATE_BUILD_FLAGS=` for `make update`),
so the test does not pay for a release build with LTO of eight binaries on every CI run. `make
build` builds the release artifacts.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "infra"))
sys.path.insert(0, str(ROOT / "tests"))

import boto3  # noqa: E402
import logging  # noqa: E402

# moto names every resource type its CloudFormation skips, once per resource: say it once.
logging.getLogger("moto").setLevel(logging.ERROR)
logging.getLogger("werkzeug").setLevel(logging.ERROR)

import moto_sam  # noqa: E402
from harness import check, free_port  # noqa: E402

STACK = "wahooks-deploy-test"
REGION = "us-east-1"
BUCKET = "wahooks-deploy-test-artifacts"


def make(target: str, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess:
    started = time.time()
    out = subprocess.run(
        ["make", "--no-print-directory", target, f"STACK={STACK}", f"REGION={REGION}", f"S3_BUCKET={BUCKET}", *extra],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=3600,
    )
    print(f"---- make {target}: exit {out.returncode} in {time.time() - started:.0f} s", flush=True)
    if out.returncode != 0:
        print(out.stdout[-6000:])
    return out


def main() -> int:
    moto_sam.install()
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    # `localhost`, not 127.0.0.1: moto reads a template's S3 URL back only for that host name.
    endpoint = f"http://localhost:{port}"
    try:
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "SAM_CLI_TELEMETRY": "0",
            "SAM_BUILD_MODE": "debug",
        }
        env.pop("AWS_PROFILE", None)
        session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION)
        session.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
        cfn = session.client("cloudformation", endpoint_url=endpoint)

        first = make("deploy", env)
        check(first.returncode == 0, "make deploy runs to completion with no input and no TTY")
        check("Successfully created/updated stack" in first.stdout, "sam deploy created the stack")
        stack = cfn.describe_stacks(StackName=STACK)["Stacks"][0]
        check(stack["StackStatus"] in ("CREATE_COMPLETE", "UPDATE_COMPLETE"), f"stack status {stack['StackStatus']}")
        listed = cfn.describe_stack_resources(StackName=STACK)["StackResources"]
        resources = {r["LogicalResourceId"]: r for r in listed if r.get("LogicalResourceId")}
        types = sorted({r.get("ResourceType", "") for r in resources.values()})
        print("     resources moto created:", ", ".join(types))
        # moto's CloudFormation creates these (alarms, the dashboard and the HTTP API it does not:
        # tests/infra_moto.rs asserts those on the transformed template).
        for t in ("AWS::Lambda::Function", "AWS::DynamoDB::Table", "AWS::SQS::Queue", "AWS::SNS::Topic",
                  "AWS::KMS::Key", "AWS::IAM::Role"):
            check(t in types, f"the stack holds {t}")
        functions = [r for r in resources.values() if r["ResourceType"] == "AWS::Lambda::Function"]
        check(len(functions) == 11, f"eleven functions ({len(functions)})")
        lam = session.client("lambda", endpoint_url=endpoint)
        for f in functions:
            config = lam.get_function(FunctionName=f["PhysicalResourceId"])["Configuration"]
            check(config["CodeSize"] > 100_000, f"{f['LogicalResourceId']}: its code uploaded ({config['CodeSize']} bytes)")
            # What sam build made is an aarch64 Linux executable (ELF e_machine 183).
            elf = (ROOT / "infra/.aws-sam/build" / f["LogicalResourceId"] / "bootstrap").read_bytes()[:20]
            check(elf[:4] == b"\x7fELF" and int.from_bytes(elf[18:20], "little") == 183,
                  f"{f['LogicalResourceId']}: sam build produced an arm64 bootstrap")
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        for key in ("EventsTableName", "MessagesQueueUrl", "AlarmTopicArn"):
            check(bool(outputs.get(key)), f"output {key} = {outputs.get(key)}")
        dynamo = session.client("dynamodb", endpoint_url=endpoint)
        table = dynamo.describe_table(TableName=outputs["EventsTableName"])["Table"]
        check(table.get("DeletionProtectionEnabled") is True, "the events table is protected from deletion")

        # make update: one function's code, straight to the stack's function.
        updated = next(f for f in functions if f["LogicalResourceId"] == "MessageReceivedFunction")
        before = lam.get_function(FunctionName=updated["PhysicalResourceId"])["Configuration"]
        codes = {f["PhysicalResourceId"]: lam.get_function(FunctionName=f["PhysicalResourceId"])["Configuration"]["CodeSha256"]
                 for f in functions}
        pushed = make("update", env, "F=message-received", "UPDATE_BUILD_FLAGS=")
        check(pushed.returncode == 0, "make update F=message-received runs to completion with no input")
        check("function deployed successfully" in pushed.stdout, "cargo lambda deploy pushed the code")
        after = lam.get_function(FunctionName=updated["PhysicalResourceId"])["Configuration"]
        check(after["CodeSha256"] != before["CodeSha256"], "the function runs the pushed code (its CodeSha256 changed)")
        check(after.get("Environment") == before.get("Environment"), "and keeps its environment")
        check((after["Role"], after["MemorySize"], after["Timeout"], after["Architectures"])
              == (before["Role"], before["MemorySize"], before["Timeout"], before["Architectures"]),
              "and its role, memory, timeout and architecture")
        untouched = [name for name, sha in codes.items() if name != updated["PhysicalResourceId"]
                     and lam.get_function(FunctionName=name)["Configuration"]["CodeSha256"] == sha]
        check(len(untouched) == len(functions) - 1 == 10, f"the ten other functions keep their code ({len(untouched)})")
        bad = make("update", env, "F=no-such-function", "UPDATE_BUILD_FLAGS=")
        check(bad.returncode != 0 and "one of: message-received" in bad.stdout,
              "make update with an unknown function fails and names the functions")

        second = make("deploy", env)
        check(second.returncode == 0, "a second make deploy succeeds")
        if "No changes to deploy" not in second.stdout:
            print(second.stdout[-4000:])
        check("No changes to deploy" in second.stdout, "and is a no-op (no changes)")
        again = cfn.describe_stacks(StackName=STACK)["Stacks"][0]
        check(again.get("LastUpdatedTime") == stack.get("LastUpdatedTime"), "the stack was not updated")
        # CloudFormation compares templates, not the functions' code: an unchanged build leaves
        # what make update pushed in place (docs/deploy.md says so).
        kept = lam.get_function(FunctionName=updated["PhysicalResourceId"])["Configuration"]["CodeSha256"]
        check(kept == after["CodeSha256"], "an unchanged make deploy leaves the pushed code in place")

        gone = make("destroy", env)
        check(gone.returncode == 0, "make destroy runs with no prompts")
        left = [s for s in cfn.list_stacks()["StackSummaries"] if s["StackName"] == STACK and s["StackStatus"] != "DELETE_COMPLETE"]
        check(not left, "the stack is deleted")
        return 0
    finally:
        server.stop()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AssertionError as e:
        print(f"FAIL {e}")
        sys.exit(1)

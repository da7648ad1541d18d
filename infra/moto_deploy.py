"""Deploy infra/template.yaml into a moto server, offline, for the drift test (tests/infra_moto.rs).

The SAM template is transformed by samtranslator (what `sam deploy` does in the cloud), the
functions' code points at a placeholder zip in moto's S3, and the stack is created through
moto's CloudFormation. Two resources are left out of the moto stack: the API Gateway v2 ones
(moto cannot create them, nor the dashboard that names them) and the stream's event-source mapping (moto would try to run the
Lambda in Docker on every write; the test drives the fanout with wahooks' own stream driver).
Prints one JSON document: the stack's outputs, its resources, and the transformed template.

usage: python infra/moto_deploy.py --endpoint http://127.0.0.1:PORT [--stack NAME]
"""

import argparse
import io
import json
import pathlib
import sys
import zipfile

import os

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

import boto3  # noqa: E402
from samtranslator.translator.transform import transform  # noqa: E402
from samtranslator.yaml_helper import yaml_parse  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
# The dashboard substitutes the API's id, which moto cannot create; the test reads it from the
# transformed template instead.
SKIPPED_TYPES = (
    "AWS::ApiGatewayV2::",
    "AWS::Lambda::EventSourceMapping",
    "AWS::Lambda::Permission",
    "AWS::CloudWatch::Dashboard",
)


class NoManagedPolicies:
    """The template names no managed policy by name; nothing to look up in IAM."""

    def load(self):
        return {}


def transformed(template_path):
    template = yaml_parse(template_path.read_text())
    template["Globals"]["Function"]["CodeUri"] = {"Bucket": "wahooks-artifacts", "Key": "code.zip"}
    return transform(template, {}, NoManagedPolicies())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--stack", default="wahooks-test")
    parser.add_argument("--template", default=str(HERE / "template.yaml"))
    args = parser.parse_args()

    cfn_template = transformed(pathlib.Path(args.template))
    deployable = json.loads(json.dumps(cfn_template))
    deployable["Resources"] = {
        k: v for k, v in deployable["Resources"].items() if not v["Type"].startswith(SKIPPED_TYPES)
    }
    # Outputs that name skipped resources cannot resolve in moto.
    deployable["Outputs"] = {
        k: v for k, v in deployable["Outputs"].items() if k not in ("ApiBaseUrl", "DashboardName")
    }

    session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
    s3 = session.client("s3", endpoint_url=args.endpoint)
    s3.create_bucket(Bucket="wahooks-artifacts")
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as z:
        z.writestr("bootstrap", "#!/bin/sh\nexit 1\n")
    s3.put_object(Bucket="wahooks-artifacts", Key="code.zip", Body=code.getvalue())

    cfn = session.client("cloudformation", endpoint_url=args.endpoint)
    cfn.create_stack(
        StackName=args.stack,
        TemplateBody=json.dumps(deployable),
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    stack = cfn.describe_stacks(StackName=args.stack)["Stacks"][0]
    if stack["StackStatus"] != "CREATE_COMPLETE":
        print(f"stack {args.stack}: {stack['StackStatus']} {stack.get('StackStatusReason', '')}", file=sys.stderr)
        return 1
    resources = cfn.describe_stack_resources(StackName=args.stack)["StackResources"]
    json.dump(
        {
            "outputs": {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])},
            "resources": {
                r.get("LogicalResourceId", ""): {"type": r.get("ResourceType"), "id": r.get("PhysicalResourceId")}
                for r in resources
            },
            "template": cfn_template,
        },
        sys.stdout,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

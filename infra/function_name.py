"""The deployed name of one of the stack's functions, for `make update F=<function>`.

    python infra/function_name.py STACK REGION message-received   # → wahooks-MessageReceivedFunction-AbC123

The function's folder name (`functions/<name>/`, also its binary) maps to its logical id in
infra/template.yaml (`message-received` → `MessageReceivedFunction`); CloudFormation names the
physical function. Reads the stack with the usual AWS settings (AWS_ENDPOINT_URL included).
"""

import sys

import boto3


def logical_id(function: str) -> str:
    return "".join(part.capitalize() for part in function.split("-")) + "Function"


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    stack, region, function = sys.argv[1:]
    cfn = boto3.client("cloudformation", region_name=region)
    try:
        resources = cfn.describe_stack_resources(StackName=stack)["StackResources"]
    except Exception as error:  # noqa: BLE001 - the message is what the user needs
        print(f"cannot read stack {stack} in {region}: {error}", file=sys.stderr)
        return 1
    for r in resources:
        if r.get("LogicalResourceId") == logical_id(function) and r.get("PhysicalResourceId"):
            print(r["PhysicalResourceId"])
            return 0
    print(f"no function `{function}` ({logical_id(function)}) in stack {stack}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())

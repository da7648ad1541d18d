"""moto server that understands SAM templates, for testing `make deploy` offline.

CloudFormation runs the `AWS::Serverless-2016-10-31` transform itself; moto does not, so a
stack `sam deploy` creates in plain moto comes out empty. This wraps moto's CloudFormation so
every template it receives goes through samtranslator first (the same library the transform
runs in AWS), and leaves out what moto cannot create:

- the API Gateway v2 resources, their Lambda permissions and the dashboard that names the API;
- the stream's event-source mapping (moto would try to run the function in Docker on every
  write; the local stack drives the fanout with wahooks' own stream driver).

Outputs that name what was left out are dropped with it, and a change set's outputs are
computed when it is executed (moto applies only its resources), and a stack's parameters are
its effective ones, defaults included, as CloudFormation compares them for "no changes". Everything else (tables with their
stream and deletion protection, queues and DLQs, the KMS key, the topic and its subscription,
alarms, log groups, roles and policies, the Lambda functions with the code `sam deploy`
uploaded) is created by moto as CloudFormation would, with two of CloudFormation's rules moto's
resolver lacks put back (`AWS::NoValue` drops a list element; a function's environment is text).

    python infra/moto_sam.py --port 5000      # a server, until Ctrl-C
    import moto_sam; moto_sam.install()       # in-process, before starting ThreadedMotoServer
"""

from __future__ import annotations

import argparse
import json
import os
import re

# samtranslator reads the region for pseudo parameters from the environment.
os.environ.setdefault("AWS_DEFAULT_REGION", os.environ.get("AWS_REGION", "us-east-1"))

SKIPPED_TYPES = (
    "AWS::ApiGatewayV2::",
    "AWS::Lambda::EventSourceMapping",
    "AWS::Lambda::Permission",
    "AWS::CloudWatch::Dashboard",
)


class _NoManagedPolicies:
    """The template names no managed policy by name: nothing to look up in IAM."""

    def load(self):
        return {}


def _names(value) -> set[str]:
    """Every resource a value refers to (Ref, Fn::GetAtt, Fn::Sub's ${X} and ${X.Y})."""
    found: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "Ref" and isinstance(v, str):
                found.add(v)
            elif k == "Fn::GetAtt":
                found.add(v[0] if isinstance(v, list) else str(v).split(".")[0])
            elif k == "Fn::Sub":
                text = v[0] if isinstance(v, list) else v
                found.update(m.split(".")[0] for m in re.findall(r"\$\{([^}!]+)\}", text))
                if isinstance(v, list):
                    found |= _names(v[1])
            else:
                found |= _names(v)
    elif isinstance(value, list):
        for v in value:
            found |= _names(v)
    return found


def transform_for_moto(template_text: str, parameters: dict[str, str]) -> str:
    """A SAM template as CloudFormation would expand it, minus what moto cannot create."""
    from samtranslator.translator.transform import transform
    from samtranslator.yaml_helper import yaml_parse

    template = yaml_parse(template_text)
    transforms = template.get("Transform", [])
    if isinstance(transforms, str):
        transforms = [transforms]
    if "AWS::Serverless-2016-10-31" not in transforms:
        return template_text
    expanded = json.loads(json.dumps(transform(template, dict(parameters), _NoManagedPolicies())))
    skipped = {k for k, v in expanded["Resources"].items() if v["Type"].startswith(SKIPPED_TYPES)}
    expanded["Resources"] = {k: v for k, v in expanded["Resources"].items() if k not in skipped}
    expanded["Outputs"] = {
        k: v for k, v in expanded.get("Outputs", {}).items() if not (_names(v) & skipped)
    }
    return json.dumps(expanded, sort_keys=True)


def install() -> None:
    """Patch moto's CloudFormation backend (in this process) to expand SAM templates."""
    from moto.cloudformation.models import CloudFormationBackend

    if getattr(CloudFormationBackend, "_wahooks_sam", False):
        return
    create_change_set = CloudFormationBackend.create_change_set
    create_stack = CloudFormationBackend.create_stack

    def change_set(self, stack_name, change_set_name, template, parameters, *args, **kwargs):
        return create_change_set(
            self, stack_name, change_set_name, transform_for_moto(template, parameters), parameters, *args, **kwargs
        )

    def stack(self, name, template, parameters, *args, **kwargs):
        return create_stack(self, name, transform_for_moto(template, parameters), parameters, *args, **kwargs)

    execute_change_set = CloudFormationBackend.execute_change_set

    def execute(self, change_set_name, stack_name=None):
        execute_change_set(self, change_set_name, stack_name)
        # moto applies a change set's resources but not its outputs (CloudFormation does both).
        change_set = self.change_sets.get(change_set_name) or next(
            (c for c in self.change_sets.values() if c.change_set_name == change_set_name), None
        )
        if change_set is not None:
            target = change_set.stack
            target._parse_template()
            target.output_map = target._create_output_map()
            # CloudFormation compares an update's parameters with the stack's effective ones
            # (defaults included); moto with those the first change set named. `sam deploy`
            # sends every parameter on an update (UsePreviousValue), so record them all.
            declared = target.template_dict.get("Parameters", {})
            target.parameters = {k: v for k, v in target.stack_parameters.items() if k in declared}

    CloudFormationBackend.create_change_set = change_set
    CloudFormationBackend.create_stack = stack
    CloudFormationBackend.execute_change_set = execute
    _resolve_as_cloudformation_does()
    CloudFormationBackend._wahooks_sam = True


def _resolve_as_cloudformation_does() -> None:
    """Two of CloudFormation's rules moto's resolver does not follow, which `make update` meets.

    - `AWS::NoValue` in a list removes the element (`!Join [",", [!If [c, x, !Ref AWS::NoValue]]]`
      is "" when `c` is false); moto keeps it as `None` and joins "None".
    - A function's environment holds strings (a `Number` parameter's `!Ref` is its text); moto
      stores the parameter's number, and then answers GetFunction with `"WAHOOKS_RETENTION_DAYS":
      30`, which AWS SDKs refuse to parse (cargo-lambda: "expected ValueString or ValueNull").
    """
    from moto.awslambda.models import LambdaFunction
    from moto.cloudformation import parsing

    clean_json = parsing.clean_json

    def clean(resource_json, resources_map):
        if isinstance(resource_json, list):
            resolved = (clean(v, resources_map) for v in resource_json)
            return [v for v in resolved if v is not None]
        return clean_json(resource_json, resources_map)

    parsing.clean_json = clean

    init = LambdaFunction.__init__

    def function(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.environment_vars = {k: _env_text(v) for k, v in (self.environment_vars or {}).items()}

    LambdaFunction.__init__ = function


def _env_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args()
    install()
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    print(f"moto (with the SAM transform) on http://localhost:{args.port}", flush=True)
    try:
        import threading

        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()

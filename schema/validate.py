"""Validate JSON documents against a JSON Schema (2020-12) with the `jsonschema` package.

    python schema/validate.py SCHEMA FILE.jsonl

One document per line of FILE.jsonl. Prints `N valid` and exits 0, or prints every invalid
line's number and errors and exits 1. `date-time` formats are checked (rfc3339-validator).
"""

import json
import sys

from jsonschema import Draft202012Validator, FormatChecker


def main() -> int:
    schema_path, docs_path = sys.argv[1], sys.argv[2]
    with open(schema_path, encoding="utf-8") as f:
        schema = json.load(f)
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema, format_checker=FormatChecker())
    bad = 0
    count = 0
    with open(docs_path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            count += 1
            errors = list(validator.iter_errors(json.loads(line)))
            if errors:
                bad += 1
                for e in errors:
                    path = "/".join(str(p) for p in e.absolute_path)
                    print(f"line {number}: /{path}: {e.message}")
    if bad:
        print(f"{bad} of {count} invalid")
        return 1
    print(f"{count} valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())

// Parse and validate an AsyncAPI document with @asyncapi/parser (the AsyncAPI project's own
// parser: the spec's JSON Schema, its Spectral rules, $ref resolution, payload schemas and
// examples), then each message example against the event schema and the headers' schema with
// Ajv (JSON Schema 2020-12, formats checked). Prints every diagnostic; exits 1 on any error or
// warning, or an example that does not validate.
import { Parser, fromFile } from "@asyncapi/parser";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";

const file = resolve(process.argv[2] ?? "asyncapi.yaml");
const parser = new Parser();
const { document, diagnostics } = await fromFile(parser, file).parse();
const severity = ["error", "warning", "info", "hint"];
let failing = 0;
for (const d of diagnostics) {
  const where = d.path?.length ? d.path.join(".") : "(document)";
  console.log(`${severity[d.severity]}: ${where}: ${d.message} [${d.code}]`);
  if (d.severity <= 1) failing += 1;
}
if (!document || failing) {
  console.log(`${file}: ${failing} error(s) or warning(s)`);
  process.exit(1);
}
// The examples: the parser does not check them against a 2020-12 payload schema, Ajv does.
const eventSchema = JSON.parse(readFileSync(resolve(dirname(file), "wahooks-event.schema.json"), "utf8"));
const ajv = new Ajv2020({ allErrors: true, strict: false });
addFormats(ajv);
// schemars marks Rust integer widths as formats.
ajv.addFormat("uint8", { type: "number", validate: (n) => Number.isInteger(n) && n >= 0 && n <= 255 });
ajv.addFormat("uint32", { type: "number", validate: (n) => Number.isInteger(n) && n >= 0 && n <= 4294967295 });
ajv.addFormat("uint64", { type: "number", validate: (n) => Number.isInteger(n) && n >= 0 });
const validEvent = ajv.compile(eventSchema);
let examples = 0;
for (const message of document.allMessages().all()) {
  const validHeaders = ajv.compile(message.headers()?.json() ?? {});
  for (const example of message.examples().all()) {
    examples += 1;
    for (const [what, check, value] of [
      ["payload", validEvent, example.payload()],
      ["headers", validHeaders, example.headers()],
    ]) {
      if (!check(value)) {
        console.log(`error: example ${example.name()} ${what}: ${ajv.errorsText(check.errors)}`);
        failing += 1;
      }
    }
  }
}
if (failing) {
  process.exit(1);
}
const channels = document.channels().all().map((c) => c.id());
const messages = document.allMessages().all().length;
console.log(`${file}: valid AsyncAPI ${document.version()}; channels ${channels.join(", ")}; ${messages} message(s), ${examples} example(s) valid`);

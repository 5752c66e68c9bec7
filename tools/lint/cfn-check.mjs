// tools/lint/cfn-check.mjs — checks CloudFormation templates against the
// CloudFormation resource specification shipped in @aws-cdk/cfnspec
// (spec/specification.json; version in tools/lint/package-lock.json), offline.
// cfn-lint itself is Python, which this project cannot install.
//   node tools/lint/cfn-check.mjs TEMPLATE.yml...
// Prints file: Path.To.Node: message per finding; exits 1 if there is one.
//
// What it checks:
//   - top-level sections are known; Resources exists
//   - Parameters: known keys, a valid Type, Default within AllowedValues
//   - Resources: Type exists in the specification (or Custom::*); only
//     known resource attributes (DependsOn, Condition, DeletionPolicy, ...);
//     every Properties key exists for that type, required ones are present,
//     and nested property objects are checked the same way, all the way down
//     (lists, maps, property types); scalars are not given where an object
//     or a list is expected, nor the other way round
//   - intrinsic functions: known names; Ref names a parameter, a resource or
//     a pseudo parameter; Fn::GetAtt names a resource and an attribute that
//     type has; ${Name} and ${Res.Attr} in Fn::Sub resolve; Fn::If and
//     Condition name a condition; Fn::FindInMap names a mapping;
//     DependsOn names resources
//   - Outputs: Value present, references resolve
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";

const require = createRequire(import.meta.url);
const yaml = require("js-yaml");
const spec = JSON.parse(readFileSync(new URL("./node_modules/@aws-cdk/cfnspec/spec/specification.json", import.meta.url)));

// ---- YAML with CloudFormation's short-form tags ---------------------------
const TAGS = {
  Ref: "Ref", Condition: "Condition",
  GetAtt: "Fn::GetAtt", Sub: "Fn::Sub", Join: "Fn::Join", Select: "Fn::Select", Split: "Fn::Split",
  If: "Fn::If", Equals: "Fn::Equals", Not: "Fn::Not", And: "Fn::And", Or: "Fn::Or",
  FindInMap: "Fn::FindInMap", GetAZs: "Fn::GetAZs", ImportValue: "Fn::ImportValue",
  Base64: "Fn::Base64", Cidr: "Fn::Cidr", Length: "Fn::Length", ToJsonString: "Fn::ToJsonString",
  Transform: "Fn::Transform",
};
const types = [];
for (const [short, long] of Object.entries(TAGS)) {
  for (const kind of ["scalar", "sequence", "mapping"]) {
    types.push(new yaml.Type(`!${short}`, {
      kind,
      construct: (data) => {
        if (short === "GetAtt" && kind === "scalar") {
          const i = data.indexOf(".");
          return { [long]: i < 0 ? [data] : [data.slice(0, i), data.slice(i + 1)] };
        }
        return { [long]: data };
      },
    }));
  }
}
export const CFN_SCHEMA = yaml.DEFAULT_SCHEMA.extend(types);

// ---- the specification ---------------------------------------------------
const SECTIONS = new Set(["AWSTemplateFormatVersion", "Description", "Metadata", "Parameters", "Rules",
  "Mappings", "Conditions", "Transform", "Resources", "Outputs"]);
const RESOURCE_KEYS = new Set(["Type", "Properties", "DependsOn", "Condition", "DeletionPolicy",
  "UpdateReplacePolicy", "Metadata", "CreationPolicy", "UpdatePolicy"]);
const PARAM_KEYS = new Set(["Type", "Default", "Description", "AllowedValues", "AllowedPattern", "NoEcho",
  "MinLength", "MaxLength", "MinValue", "MaxValue", "ConstraintDescription"]);
const OUTPUT_KEYS = new Set(["Value", "Description", "Export", "Condition"]);
const PSEUDO = new Set(["AWS::AccountId", "AWS::NotificationARNs", "AWS::NoValue", "AWS::Partition",
  "AWS::Region", "AWS::StackId", "AWS::StackName", "AWS::URLSuffix"]);
const PARAM_TYPES = /^(String|Number|List<Number>|CommaDelimitedList|AWS::EC2::[A-Za-z]+::[A-Za-z]*(Name|Id)|AWS::Route53::HostedZone::Id|AWS::SSM::Parameter::(Name|Value<.+>)|List<AWS::EC2::[A-Za-z]+::[A-Za-z]*(Name|Id)>|List<AWS::Route53::HostedZone::Id>)$/;
const POLICIES = new Set(["Delete", "Retain", "Snapshot", "RetainExceptOnCreate"]);
const FNS = new Set(["Ref", "Condition", ...Object.values(TAGS)]);

export function check(text, file) {
  const errors = [];
  const err = (path, msg) => errors.push(`${file}: ${path}: ${msg}`);
  let t;
  try {
    t = yaml.load(text, { schema: CFN_SCHEMA, filename: file });
  } catch (e) {
    errors.push(`${file}: ${e.message.split("\n")[0]}`);
    return errors;
  }
  if (!t || typeof t !== "object") { err("(root)", "not a mapping"); return errors; }
  for (const k of Object.keys(t)) if (!SECTIONS.has(k)) err(k, "unknown top-level section");
  const params = t.Parameters || {}, resources = t.Resources || {}, conditions = t.Conditions || {};
  const mappings = t.Mappings || {};
  if (!t.Resources || typeof t.Resources !== "object") err("Resources", "missing");

  for (const [name, p] of Object.entries(params)) {
    const at = `Parameters.${name}`;
    for (const k of Object.keys(p || {})) if (!PARAM_KEYS.has(k)) err(at, `unknown parameter key ${k}`);
    if (!p || !PARAM_TYPES.test(String(p.Type))) err(at, `invalid parameter Type ${p && p.Type}`);
    if (p && p.AllowedValues && p.Default !== undefined && !p.AllowedValues.map(String).includes(String(p.Default)))
      err(at, `Default ${p.Default} is not in AllowedValues`);
  }

  const isObj = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
  const fnName = (v) => (isObj(v) && Object.keys(v).length === 1 && (Object.keys(v)[0] === "Ref" || Object.keys(v)[0].startsWith("Fn::") || Object.keys(v)[0] === "Condition")) ? Object.keys(v)[0] : null;

  const attrsOf = (res) => {
    if (!res || !res.Type) return null;
    if (/^Custom::|^AWS::CloudFormation::CustomResource$/.test(res.Type)) return null; // anything goes
    const rt = spec.ResourceTypes[res.Type];
    return rt ? rt.Attributes || {} : null;
  };

  const checkGetAtt = (path, target, attr) => {
    if (!(target in resources)) { err(path, `Fn::GetAtt names unknown resource ${target}`); return; }
    const attrs = attrsOf(resources[target]);
    if (attrs && typeof attr === "string" && !(attr in attrs))
      err(path, `${resources[target].Type} has no attribute ${attr} (has: ${Object.keys(attrs).join(", ") || "none"})`);
  };

  // Walks any value, checking the intrinsic functions inside it.
  const walkFns = (v, path, subVars = null) => {
    if (Array.isArray(v)) { v.forEach((x, i) => walkFns(x, `${path}[${i}]`, subVars)); return; }
    if (!isObj(v)) return;
    const fn = fnName(v);
    if (!fn) {
      for (const [k, x] of Object.entries(v)) {
        if (k.startsWith("Fn::") && !FNS.has(k)) err(`${path}.${k}`, `unknown intrinsic function ${k}`);
        walkFns(x, `${path}.${k}`, subVars);
      }
      return;
    }
    const arg = v[fn];
    const at = `${path}.${fn}`;
    if (!FNS.has(fn)) { err(at, `unknown intrinsic function ${fn}`); return; }
    switch (fn) {
      case "Ref":
        if (typeof arg !== "string") err(at, "Ref takes a name");
        else if (!(arg in params) && !(arg in resources) && !PSEUDO.has(arg) && !(subVars && subVars.has(arg)))
          err(at, `Ref to unknown name ${arg}`);
        return;
      case "Condition":
        if (!(arg in conditions)) err(at, `unknown condition ${arg}`);
        return;
      case "Fn::GetAtt": {
        if (!Array.isArray(arg) || arg.length !== 2) { err(at, "Fn::GetAtt takes [resource, attribute]"); return; }
        checkGetAtt(at, arg[0], arg[1]);
        walkFns(arg[1], at);
        return;
      }
      case "Fn::Sub": {
        let str = arg, vars = new Set();
        if (Array.isArray(arg)) {
          [str] = arg;
          if (isObj(arg[1])) { vars = new Set(Object.keys(arg[1])); walkFns(arg[1], `${at}[1]`); }
        }
        if (typeof str !== "string") { err(at, "Fn::Sub takes a string"); return; }
        for (const m of str.matchAll(/\$\{([^}!][^}]*)\}/g)) {
          const ref = m[1].trim();
          if (vars.has(ref) || ref in params || ref in resources || PSEUDO.has(ref)) continue;
          const dot = ref.indexOf(".");
          if (dot > 0) checkGetAtt(at, ref.slice(0, dot), ref.slice(dot + 1));
          else err(at, `\${${ref}} names nothing`);
        }
        return;
      }
      case "Fn::If":
        if (!Array.isArray(arg) || arg.length !== 3) err(at, "Fn::If takes [condition, then, else]");
        else {
          if (!(arg[0] in conditions)) err(at, `unknown condition ${arg[0]}`);
          walkFns(arg[1], `${at}[1]`); walkFns(arg[2], `${at}[2]`);
        }
        return;
      case "Fn::FindInMap":
        if (!Array.isArray(arg) || arg.length !== 3) err(at, "Fn::FindInMap takes [map, key, key]");
        else if (typeof arg[0] === "string" && !(arg[0] in mappings)) err(at, `unknown mapping ${arg[0]}`);
        if (Array.isArray(arg)) arg.forEach((x, i) => walkFns(x, `${at}[${i}]`));
        return;
      default:
        walkFns(arg, at, subVars);
    }
  };

  // Properties the pinned specification (117.0.0, the last the package
  // shipped) still marks required that CloudFormation has since made
  // optional, each with where that is said.
  const NO_LONGER_REQUIRED = new Set([
    // CloudFormation User Guide, AWS::ApplicationAutoScaling::ScalableTarget:
    // "RoleARN ... Required: No" (the service-linked role is used without it)
    "AWS::ApplicationAutoScaling::ScalableTarget.RoleARN",
  ]);

  // Checks a value against a property specification (spec entry `ps`).
  const propType = (resType, name) => spec.PropertyTypes[`${resType}.${name}`] || spec.PropertyTypes[name];
  const checkProps = (obj, props, resType, path) => {
    if (fnName(obj)) return; // a whole object from Fn::If etc.: checked by walkFns
    if (!isObj(obj)) { err(path, "expected an object"); return; }
    for (const [k, v] of Object.entries(obj)) {
      const ps = props[k];
      if (!ps) { err(`${path}.${k}`, `unknown property (known: ${Object.keys(props).sort().join(", ")})`); continue; }
      checkValue(v, ps, resType, `${path}.${k}`);
    }
    for (const [k, ps] of Object.entries(props)) {
      if (ps.Required && !(k in obj) && !NO_LONGER_REQUIRED.has(`${resType}.${k}`))
        err(path, `required property ${k} is missing`);
    }
  };
  const checkValue = (v, ps, resType, path) => {
    const fn = fnName(v);
    if (fn === "Fn::If" && Array.isArray(v[fn]) && v[fn].length === 3) {
      for (const i of [1, 2]) {
        const branch = v[fn][i];
        if (!(isObj(branch) && branch.Ref === "AWS::NoValue")) checkValue(branch, ps, resType, `${path}.Fn::If[${i}]`);
      }
      return;
    }
    if (fn) return; // value computed at deploy time
    if (ps.Types || ps.PrimitiveTypes || ps.ItemTypes || ps.PrimitiveItemTypes) return; // polymorphic
    if (ps.PrimitiveType) {
      if (ps.PrimitiveType === "Json") return;
      if (isObj(v) || Array.isArray(v)) err(path, `expected a ${ps.PrimitiveType}, got ${Array.isArray(v) ? "a list" : "an object"}`);
      return;
    }
    if (ps.Type === "List") {
      if (!Array.isArray(v)) { err(path, "expected a list"); return; }
      v.forEach((x, i) => {
        if (fnName(x)) return;
        if (ps.PrimitiveItemType) {
          if (ps.PrimitiveItemType !== "Json" && (isObj(x) || Array.isArray(x))) err(`${path}[${i}]`, `expected a ${ps.PrimitiveItemType}`);
        } else {
          const pt = propType(resType, ps.ItemType);
          if (pt) checkProps(x, pt.Properties || {}, resType, `${path}[${i}]`);
        }
      });
      return;
    }
    if (ps.Type === "Map") {
      if (!isObj(v)) { err(path, "expected a map"); return; }
      if (ps.ItemType) {
        const pt = propType(resType, ps.ItemType);
        if (pt) for (const [k, x] of Object.entries(v)) checkProps(x, pt.Properties || {}, resType, `${path}.${k}`);
      }
      return;
    }
    if (ps.Type) {
      const pt = propType(resType, ps.Type);
      if (!pt) { err(path, `the specification has no property type ${ps.Type}`); return; }
      if (pt.PrimitiveType) return;
      checkProps(v, pt.Properties || {}, resType, path);
    }
  };

  for (const [name, res] of Object.entries(resources)) {
    const at = `Resources.${name}`;
    if (!isObj(res)) { err(at, "not a mapping"); continue; }
    for (const k of Object.keys(res)) if (!RESOURCE_KEYS.has(k)) err(at, `unknown resource attribute ${k}`);
    if (res.Condition !== undefined && !(res.Condition in conditions)) err(at, `unknown condition ${res.Condition}`);
    for (const d of [].concat(res.DependsOn || [])) if (!(d in resources)) err(at, `DependsOn unknown resource ${d}`);
    for (const p of ["DeletionPolicy", "UpdateReplacePolicy"])
      if (res[p] !== undefined && !POLICIES.has(res[p])) err(at, `invalid ${p} ${res[p]}`);
    walkFns(res.Properties, `${at}.Properties`);
    if (typeof res.Type !== "string") { err(at, "missing Type"); continue; }
    if (/^Custom::/.test(res.Type) || res.Type === "AWS::CloudFormation::CustomResource") continue;
    const rt = spec.ResourceTypes[res.Type];
    if (!rt) { err(at, `unknown resource type ${res.Type}`); continue; }
    checkProps(res.Properties || {}, rt.Properties || {}, res.Type, `${at}.Properties`);
  }
  for (const [name, c] of Object.entries(conditions)) walkFns(c, `Conditions.${name}`);
  for (const [name, o] of Object.entries(t.Outputs || {})) {
    const at = `Outputs.${name}`;
    for (const k of Object.keys(o || {})) if (!OUTPUT_KEYS.has(k)) err(at, `unknown output key ${k}`);
    if (!o || o.Value === undefined) err(at, "Value is missing");
    if (o && o.Condition !== undefined && !(o.Condition in conditions)) err(at, `unknown condition ${o.Condition}`);
    walkFns(o, at);
  }
  return errors;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const files = process.argv.slice(2);
  if (files.length === 0) {
    console.error("usage: node tools/lint/cfn-check.mjs TEMPLATE...");
    process.exit(2);
  }
  let n = 0;
  for (const f of files) {
    const errors = check(readFileSync(f, "utf8"), f);
    n += errors.length;
    for (const e of errors) console.log(e);
  }
  console.log(`cfn-check: ${files.length} template(s), resource specification ${spec.ResourceSpecificationVersion}, ${n} finding(s)`);
  process.exit(n > 0 ? 1 : 0);
}

// tools/lint/deploy-check.mjs — properties of the release path that no
// schema checks, each a rule named after the failure it prevents on a real
// deploy (issue 13; deploy/README.md, "What the checks guard"). The
// template and the release workflow are read as data.
//   node tools/lint/deploy-check.mjs [TEMPLATE [WORKFLOW [TASK_DEFINITION [RENDERER [README [COMPOSE
//                                    [STACK_README [MIGRATE_TASK_DEFINITION]]]]]]]]
// Prints "file: rule: message" per finding; exits 1 if there is one.
import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { CFN_SCHEMA } from "./cfn-check.mjs";

const require = createRequire(import.meta.url);
const yaml = require("js-yaml");

const REPO = "OWNER/REPO"; // stands for GitHubRepository and github.repository alike
const SAMPLE_TAG = "v1.2.3";

// Every value inside `node` (objects and lists, all the way down).
function* walk(node) {
  yield node;
  if (node && typeof node === "object") for (const v of Object.values(node)) yield* walk(v);
}

// The names of the resources `node` refers to (Ref, Fn::GetAtt, ${Name} in Fn::Sub).
function references(node) {
  const names = new Set();
  for (const v of walk(node)) {
    if (!v || typeof v !== "object" || Array.isArray(v)) continue;
    if (typeof v.Ref === "string") names.add(v.Ref);
    if (Array.isArray(v["Fn::GetAtt"])) names.add(v["Fn::GetAtt"][0]);
    const sub = v["Fn::Sub"];
    const text = Array.isArray(sub) ? sub[0] : sub;
    if (typeof text === "string") for (const m of text.matchAll(/\$\{([A-Za-z0-9]+)[.}]/g)) names.add(m[1]);
  }
  return names;
}

// An IAM StringLike pattern (* and ?) as a RegExp.
function glob(pattern) {
  const body = pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  return new RegExp(`^${body}$`);
}

// A condition value with the template's ${GitHubRepository} filled in.
function conditionValues(value) {
  const list = Array.isArray(value) ? value : [value];
  return list.map((v) => {
    const text = v && typeof v === "object" ? v["Fn::Sub"] : v;
    return String(Array.isArray(text) ? text[0] : text).replace(/\$\{GitHubRepository\}/g, REPO);
  });
}

// The `sub` claim GitHub puts in a job's OIDC token: the environment when
// the job has one, else the ref that triggered the workflow.
function subjectsOf(workflow, job) {
  const env = typeof job.environment === "string" ? job.environment : job.environment?.name;
  if (env) return [`repo:${REPO}:environment:${env}`];
  const on = workflow.on ?? workflow[true] ?? {};
  const subs = [];
  if (on.push?.tags) subs.push(`repo:${REPO}:ref:refs/tags/${SAMPLE_TAG}`);
  for (const b of on.push?.branches ?? []) subs.push(`repo:${REPO}:ref:refs/heads/${b.replace(/\*+/g, "main")}`);
  if (on.pull_request !== undefined) subs.push(`repo:${REPO}:pull_request`);
  return subs;
}

// The renderer's table (tools/render-task-definition.sh, stack_owned):
// [placeholder, stack output] pairs.
function rendererTable(renderer) {
  return [...(renderer.match(/^stack_owned='([^']*)'/m)?.[1] ?? "").matchAll(/^([A-Z_]+)\s+([A-Za-z0-9]+)$/gm)]
    .map((m) => [m[1], m[2]]);
}

// A rule is fn(template, workflow, err, extra); extra: {taskDefinition,
// migrateTaskDefinition, renderer, ...} (the task definitions' JSON, the
// renderer's text, and so on: see check()).
const RULES = {
  // The role the release assumes must trust the `sub` each OIDC job of the
  // workflow presents (a job in an environment presents the environment,
  // not the tag: the first tag push then fails at configure-aws-credentials).
  "oidc-trust"(t, w, err) {
    const statements = t.Resources?.ReleaseRole?.Properties?.AssumeRolePolicyDocument?.Statement ?? [];
    const patterns = [];
    for (const s of statements) {
      for (const op of ["StringLike", "StringEquals"]) {
        const v = s.Condition?.[op]?.["token.actions.githubusercontent.com:sub"];
        if (v !== undefined) patterns.push(...conditionValues(v).map((p) => (op === "StringLike" ? glob(p) : new RegExp(`^${p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`))));
      }
    }
    if (patterns.length === 0) return err("template", "ReleaseRole trusts no token.actions.githubusercontent.com:sub");
    for (const [name, job] of Object.entries(w.jobs ?? {})) {
      if (job.permissions?.["id-token"] !== "write") continue;
      for (const sub of subjectsOf(w, job)) {
        if (!patterns.some((p) => p.test(sub))) err("workflow", `job ${name} presents sub ${sub}, which ReleaseRole does not trust`);
      }
    }
  },

  // The load balancer checks liveness: a readiness check that fails while
  // PostgreSQL is down makes ECS replace every task in a loop.
  "alb-liveness"(t, _w, err) {
    for (const [name, r] of Object.entries(t.Resources ?? {})) {
      if (r.Type !== "AWS::ElasticLoadBalancingV2::TargetGroup") continue;
      const path = r.Properties?.HealthCheckPath;
      if (path !== "/healthz") err("template", `${name}.HealthCheckPath is ${path}, not the liveness probe /healthz`);
    }
  },

  // With immutable tags a re-run of a release must not push the same tag
  // again: the step that pushes first asks ECR whether the tag is there.
  "idempotent-push"(t, w, err) {
    const immutable = Object.values(t.Resources ?? {}).some(
      (r) => r.Type === "AWS::ECR::Repository" && r.Properties?.ImageTagMutability === "IMMUTABLE");
    if (!immutable) return;
    for (const [name, job] of Object.entries(w.jobs ?? {})) {
      for (const step of job.steps ?? []) {
        const run = step.run ?? "";
        const push = run.indexOf("docker push");
        if (push < 0) continue;
        const ask = run.indexOf("aws ecr describe-images");
        if (ask < 0 || ask > push) err("workflow", `job ${name}, step "${step.name}": docker push without first checking that the tag is not in ECR yet (tags are immutable: a re-run fails)`);
      }
    }
  },

  // A KMS key must outlive the stack wherever data it encrypts does (a
  // retained bucket, a database's final snapshot): else that data cannot
  // be read again.
  "kms-retained"(t, _w, err) {
    const resources = t.Resources ?? {};
    for (const [name, r] of Object.entries(resources)) {
      if (!["Retain", "Snapshot", "RetainExceptOnCreate"].includes(r.DeletionPolicy)) continue;
      for (const ref of references(r.Properties)) {
        const key = resources[ref];
        if (key?.Type !== "AWS::KMS::Key") continue;
        if (key.DeletionPolicy !== "Retain" || key.UpdateReplacePolicy !== "Retain")
          err("template", `${ref} encrypts ${name}, which outlives the stack (${r.DeletionPolicy}), but is not retained itself (DeletionPolicy and UpdateReplacePolicy Retain)`);
      }
    }
  },
};

// The task definitions an ECS service runs (behind the load balancer), as
// opposed to one-off tasks (migrations, database roles, the search tunnel).
function serviceTaskDefinitions(t) {
  const names = new Set();
  for (const r of Object.values(t.Resources ?? {})) {
    if (r.Type !== "AWS::ECS::Service") continue;
    for (const ref of references(r.Properties?.TaskDefinition)) {
      if (t.Resources?.[ref]?.Type === "AWS::ECS::TaskDefinition") names.add(ref);
    }
  }
  return names;
}

// The role a resource names in `property` (Fn::GetAtt ROLE.Arn), or undefined.
function roleOf(props, property) {
  const arn = props?.[property];
  return Array.isArray(arn?.["Fn::GetAtt"]) ? arn["Fn::GetAtt"][0] : undefined;
}

Object.assign(RULES, {
  // Firehose checks its role when the stream is created: the stream must
  // wait for the role's permissions, which must therefore be resources it
  // can depend on (AWS::IAM::Policy), not inline in the role.
  "firehose-policy-first"(t, _w, err) {
    const resources = t.Resources ?? {};
    for (const [name, r] of Object.entries(resources)) {
      if (r.Type !== "AWS::KinesisFirehose::DeliveryStream") continue;
      const roles = new Set();
      for (const v of walk(r.Properties)) {
        if (v && typeof v === "object" && !Array.isArray(v)) {
          const role = roleOf(v, "RoleARN");
          if (role) roles.add(role);
        }
      }
      const depends = new Set([].concat(r.DependsOn ?? []));
      for (const role of roles) {
        if (resources[role]?.Properties?.Policies)
          err("template", `${name} uses ${role}, whose permissions are inline: make them an AWS::IAM::Policy the stream can depend on`);
        for (const [pname, p] of Object.entries(resources)) {
          if (p.Type !== "AWS::IAM::Policy" || !references(p.Properties?.Roles).has(role)) continue;
          if (!depends.has(pname)) err("template", `${name} does not DependsOn ${pname}, the permissions of its role ${role}`);
        }
      }
    }
  },
});

Object.assign(RULES, {
  // Every value the stack owns (its name in the family, role ARNs with
  // their partition, the log group, the size) comes from the stack's
  // outputs: with another stack name a hard-coded role is denied by
  // PassRole, and a size changed in the stack is undone by the next release.
  "task-definition-from-stack"(t, _w, err, { taskDefinition: td, migrateTaskDefinition: mtd, renderer }) {
    const c = td.containerDefinitions?.[0] ?? {};
    const owned = {
      family: td.family, cpu: td.cpu, memory: td.memory, taskRoleArn: td.taskRoleArn,
      executionRoleArn: td.executionRoleArn, "awslogs-group": c.logConfiguration?.options?.["awslogs-group"],
    };
    for (const [field, value] of Object.entries(owned)) {
      if (!/^\$\{[A-Z_]+\}$/.test(String(value))) err("taskDefinition", `${field} is ${value}: a value the stack owns, to be filled from its outputs`);
    }
    const text = JSON.stringify(td);
    if (/arn:aws:/.test(text)) err("taskDefinition", "an ARN with a fixed partition (arn:aws:): take it from the stack's outputs");
    // the renderer's table: "PLACEHOLDER  OutputKey" lines in stack_owned,
    // plus what it sets itself in names=
    const table = rendererTable(renderer);
    const filled = new Set([...(renderer.match(/^names='([^']*)'/m)?.[1] ?? "").matchAll(/\$\{([A-Z_]+)\}/g)].map((m) => m[1]));
    for (const [name] of table) filled.add(name);
    for (const m of text.matchAll(/\$\{([A-Z_]+)\}/g)) {
      if (!filled.has(m[1])) err("renderer", `the task definition's \${${m[1]}} is not among the names the renderer fills`);
    }
    // the migration's task definition, rendered the same way
    const mc = mtd.containerDefinitions?.[0] ?? {};
    const migrateOwned = { family: mtd.family, executionRoleArn: mtd.executionRoleArn,
                           "awslogs-group": mc.logConfiguration?.options?.["awslogs-group"] };
    for (const [field, value] of Object.entries(migrateOwned)) {
      if (!/^\$\{[A-Z_]+\}$/.test(String(value))) err("migrateTaskDefinition", `${field} is ${value}: a value the stack owns, to be filled from its outputs`);
    }
    const migrateText = JSON.stringify(mtd);
    if (/arn:aws:/.test(migrateText)) err("migrateTaskDefinition", "an ARN with a fixed partition (arn:aws:): take it from the stack's outputs");
    for (const m of migrateText.matchAll(/\$\{([A-Z_]+)\}/g)) {
      if (!filled.has(m[1])) err("renderer", `the migration task definition's \${${m[1]}} is not among the names the renderer fills`);
    }
    const outputs = new Set(Object.keys(t.Outputs ?? {}));
    for (const [, key] of table) {
      if (!outputs.has(key)) err("renderer", `reads the stack output ${key}, which the template does not have`);
    }
  },
});

Object.assign(RULES, {
  // The release is defined once (.github/workflows/release.yml): a second
  // pipeline beside it drifts untested (deploy/README.md, "One pipeline").
  "one-pipeline"(_t, _w, err, { rootFiles }) {
    for (const f of rootFiles) {
      if (/^buildspec.*\.ya?ml$/.test(f)) err("workflow", `${f} defines a second release pipeline beside this one`);
    }
  },
});

Object.assign(RULES, {
  // deploy/README.md walks an operator through the setup by hand: the
  // values it gives must be the template's.
  "docs-agree"(t, _w, err, { readme }) {
    for (const [name, r] of Object.entries(t.Resources ?? {})) {
      if (r.Type !== "AWS::ElasticLoadBalancingV2::TargetGroup") continue;
      const attr = (r.Properties?.TargetGroupAttributes ?? []).find((a) => a.Key === "deregistration_delay.timeout_seconds");
      const documented = readme.match(/deregistration_delay\.timeout_seconds=(\d+)/)?.[1];
      if (attr && documented !== String(attr.Value))
        err("readme", `says deregistration_delay.timeout_seconds=${documented}; ${name} in the template has ${attr.Value}`);
    }
  },

  // docker-compose.yml is read by anyone: a JWT key in it signs tokens
  // anyone can forge. It must come from the environment, with no default.
  "compose-secret"(_t, _w, err, { compose }) {
    for (const [name, svc] of Object.entries(compose.services ?? {})) {
      const v = svc.environment?.JWT_SECRET;
      if (v !== undefined && !/^\$\{JWT_SECRET:?\?[^}]*\}$/.test(String(v)))
        err("compose", `service ${name} gives JWT_SECRET as ${v}: require it from the environment (\${JWT_SECRET:?...}), with no default`);
    }
  },
});

Object.assign(RULES, {
  // Behind a load balancer every socket peer is the balancer: moonkeep
  // must be told which peers may speak for the client (TRUSTED_PROXIES),
  // in the stack's task definition and in the released one.
  "client-behind-alb"(t, _w, err, { taskDefinition: td }) {
    const hasAlb = Object.values(t.Resources ?? {}).some((r) => r.Type === "AWS::ElasticLoadBalancingV2::LoadBalancer");
    if (!hasAlb) return;
    const released = (td.containerDefinitions?.[0]?.environment ?? []).some((e) => e.name === "TRUSTED_PROXIES" && e.value);
    if (!released) err("taskDefinition", "no TRUSTED_PROXIES: behind the load balancer all clients would share its address");
    for (const name of serviceTaskDefinitions(t)) {
      const env = t.Resources[name].Properties?.ContainerDefinitions?.[0]?.Environment ?? [];
      if (!env.some((e) => e.Name === "TRUSTED_PROXIES")) err("template", `${name} sets no TRUSTED_PROXIES`);
    }
  },
});

Object.assign(RULES, {
  // The Application Auto Scaling target uses the service-linked role by
  // itself; an ARN written out breaks in another partition.
  "no-fixed-role-arn"(t, _w, err) {
    for (const [name, r] of Object.entries(t.Resources ?? {})) {
      if (r.Type === "AWS::ApplicationAutoScaling::ScalableTarget" && r.Properties?.RoleARN !== undefined)
        err("template", `${name} names a RoleARN: leave it out, the service-linked role is used`);
    }
  },

  // The first-deployment recipe creates the stack before any image of
  // moonkeep exists: no task may start then (a minimum capacity above the
  // desired count of 0 starts the placeholder, which crash-loops).
  "first-deploy-no-tasks"(t, _w, err, { stackReadme }) {
    const recipe = stackReadme.match(/--parameter-overrides[\s\S]*?```/)?.[0] ?? "";
    const desired = recipe.match(/DesiredCount=(\d+)/)?.[1];
    const min = recipe.match(/MinCapacity=(\d+)/)?.[1];
    if (desired === "0" && min !== "0") err("stackReadme", `the first deployment sets DesiredCount=0 but MinCapacity=${min}`);
    const minValue = t.Parameters?.MinCapacity?.MinValue;
    if (min === "0" && minValue !== undefined && minValue > 0) err("template", `MinCapacity's MinValue ${minValue} refuses the first deployment's 0`);
  },
});

Object.assign(RULES, {
  // A port the tasks serve (METRICS_PORT) is reachable from somewhere: an
  // ingress rule on the tasks' security group for it, even if conditional.
  "metrics-reachable"(t, _w, err) {
    const resources = t.Resources ?? {};
    const ports = new Set();
    for (const r of Object.values(resources)) {
      if (r.Type !== "AWS::ECS::TaskDefinition") continue;
      for (const c of r.Properties?.ContainerDefinitions ?? [])
        for (const m of c.PortMappings ?? []) if (m.Name === "metrics") ports.add(m.ContainerPort);
    }
    const opened = new Set();
    for (const r of Object.values(resources)) {
      const rules = r.Type === "AWS::EC2::SecurityGroup" ? r.Properties?.SecurityGroupIngress ?? []
        : r.Type === "AWS::EC2::SecurityGroupIngress" ? [r.Properties] : [];
      for (const rule of rules) for (let p = rule.FromPort; p <= rule.ToPort; p++) opened.add(p);
    }
    for (const port of ports) if (!opened.has(port)) err("template", `the tasks serve metrics on ${port}, which no security group rule opens`);
  },

  // The release role may do what a release does, no more: it pushes to the
  // encrypted repository and never reads what the key protects.
  "release-least-privilege"(t, _w, err) {
    for (const p of t.Resources?.ReleaseRole?.Properties?.Policies ?? []) {
      for (const st of p.PolicyDocument?.Statement ?? []) {
        const actions = [].concat(st.Action ?? []);
        if (actions.includes("kms:Decrypt")) err("template", `ReleaseRole's policy ${p.PolicyName} grants kms:Decrypt, which a release never needs`);
      }
    }
  },
});

// What an operator of the service expects to be told about: namespace and
// metric of each alarm the template must have.
const EXPECTED_ALARMS = [
  ["AWS/ApplicationELB", "HTTPCode_Target_5XX_Count"], ["AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count"],
  ["AWS/ApplicationELB", "UnHealthyHostCount"], ["AWS/RDS", "CPUUtilization"], ["AWS/RDS", "FreeStorageSpace"],
  ["AWS/RDS", "DatabaseConnections"], ["AWS/Firehose", "DeliveryToAmazonOpenSearchService.Success"],
  ["AWS/ES", "ClusterStatus.red"],
];

Object.assign(RULES, {
  // Each failure an operator must hear of has an alarm that notifies.
  "alarms-cover"(t, _w, err) {
    const alarms = Object.values(t.Resources ?? {}).filter((r) => r.Type === "AWS::CloudWatch::Alarm");
    for (const [ns, metric] of EXPECTED_ALARMS) {
      const a = alarms.find((r) => r.Properties?.Namespace === ns && r.Properties?.MetricName === metric);
      if (!a) err("template", `no alarm on ${ns} ${metric}`);
      else if (!(a.Properties.AlarmActions ?? []).length) err("template", `the alarm on ${metric} notifies nobody`);
    }
  },

  // A web ACL with a per-address rate limit scoped to /auth/ sits on the
  // load balancer.
  "web-acl-on-auth"(t, _w, err) {
    const resources = t.Resources ?? {};
    const acls = Object.entries(resources).filter(([, r]) => r.Type === "AWS::WAFv2::WebACL" &&
      (r.Properties?.Rules ?? []).some((rule) => {
        const rb = rule.Statement?.RateBasedStatement;
        return rb && JSON.stringify(rb.ScopeDownStatement ?? {}).includes("/auth/");
      }));
    if (acls.length === 0) return err("template", "no WAF web ACL with a rate-based rule on /auth/");
    const lb = Object.entries(resources).find(([, r]) => r.Type === "AWS::ElasticLoadBalancingV2::LoadBalancer")?.[0];
    const associated = Object.values(resources).some((r) => r.Type === "AWS::WAFv2::WebACLAssociation" &&
      references(r.Properties?.ResourceArn).has(lb) && acls.some(([name]) => references(r.Properties?.WebACLArn).has(name)));
    if (!associated) err("template", `the web ACL is not associated with ${lb}`);
  },
});

// Ingress rules on security group `group` (inline or separate resources).
function ingressOf(t, group) {
  const rules = [...(t.Resources?.[group]?.Properties?.SecurityGroupIngress ?? [])];
  for (const r of Object.values(t.Resources ?? {})) {
    if (r.Type === "AWS::EC2::SecurityGroupIngress" && references(r.Properties?.GroupId).has(group)) rules.push(r.Properties);
  }
  return rules;
}

Object.assign(RULES, {
  // Firehose writes one index a day into the search domain; nothing deletes
  // them unless an index state management policy says so, and the domain
  // stops taking logs when its disk is full. The stack writes that policy
  // at each deploy: a custom resource whose function PUTs it (deleting
  // indices a parameter's days old, for the indices Firehose writes), adds
  // it to the indices already there, and can reach the domain in the VPC.
  "search-retention"(t, _w, err) {
    const resources = t.Resources ?? {};
    for (const [domain, d] of Object.entries(resources)) {
      if (!["AWS::OpenSearchService::Domain", "AWS::Elasticsearch::Domain"].includes(d.Type)) continue;
      const indices = Object.values(resources).filter((r) => r.Type === "AWS::KinesisFirehose::DeliveryStream")
        .map((r) => r.Properties?.AmazonopensearchserviceDestinationConfiguration ?? r.Properties?.ElasticsearchDestinationConfiguration)
        .filter((c) => c && references(c.DomainARN).has(domain))
        .map((c) => (c.IndexRotationPeriod && c.IndexRotationPeriod !== "NoRotation" ? `${c.IndexName}-2026-01-31` : c.IndexName));
      if (indices.length === 0) continue;
      const writers = Object.entries(resources).filter(([, r]) =>
        /^Custom::|^AWS::CloudFormation::CustomResource$/.test(r.Type) && references(r.Properties).has(domain));
      if (writers.length === 0) {
        err("template", `nothing writes a retention policy into ${domain} at deploy: its daily indices pile up until the disk is full`);
        continue;
      }
      for (const [name, c] of writers) {
        const props = c.Properties ?? {};
        const fnName = [...references(props.ServiceToken)][0];
        const fn = resources[fnName];
        const code = fn?.Properties?.Code?.ZipFile;
        if (fn?.Type !== "AWS::Lambda::Function" || typeof code !== "string") {
          err("template", `${name} is not served by an inline AWS::Lambda::Function this check can read`);
          continue;
        }
        for (const needle of ["_plugins/_ism/policies/", "if_seq_no", "_plugins/_ism/add/", "ism_template", "min_index_age", "delete"]) {
          if (!code.includes(needle)) err("template", `${fnName}'s code never mentions ${needle}: it does not write the retention policy, or not idempotently, or not for the indices already there`);
        }
        // the delete age: a property from a stack parameter, read by the code
        const age = Object.entries(props).find(([k, v]) => typeof v?.Ref === "string" && t.Parameters?.[v.Ref] &&
          (code.includes(`"${k}"`) || code.includes(`'${k}'`)));
        if (!age) err("template", `${name}: the delete age is not a stack parameter that ${fnName} reads`);
        else if (t.Parameters[age[1].Ref].Default === undefined) err("template", `${age[1].Ref} has no default retention`);
        const pattern = typeof props.IndexPattern === "string" ? glob(props.IndexPattern) : null;
        for (const index of indices) {
          if (!pattern?.test(index)) err("template", `${name}.IndexPattern ${props.IndexPattern} does not match ${index}, an index Firehose writes`);
        }
        if (d.Properties?.VPCOptions) {
          const fnGroups = references(fn.Properties?.VpcConfig?.SecurityGroupIds);
          const open = [...references(d.Properties.VPCOptions.SecurityGroupIds)].some((g) => ingressOf(t, g).some((r) =>
            r.FromPort <= 443 && r.ToPort >= 443 && [...references(r.SourceSecurityGroupId)].some((s) => fnGroups.has(s))));
          if (!open) err("template", `${fnName} cannot reach ${domain} in the VPC: no HTTPS ingress from its security group`);
        }
      }
    }
  },
});

Object.assign(RULES, {
  // The service connects as a role that can read and write the tables and
  // nothing else (deploy/db/roles.sql), never as the database's master
  // user: then it must not migrate at start (the app role cannot, and every
  // task would fail), and the release runs the migrations first, as the
  // migration role, in a one-off task.
  "database-app-role"(t, w, err, { taskDefinition: td, migrateTaskDefinition: mtd, renderer, migratePath }) {
    const resources = t.Resources ?? {};
    const isSecret = (n) => resources[n]?.Type === "AWS::SecretsManager::Secret";
    // the secrets of the master user: what a database instance's master
    // user name and password come from
    const master = new Set();
    for (const r of Object.values(resources)) {
      if (!["AWS::RDS::DBInstance", "AWS::RDS::DBCluster"].includes(r.Type)) continue;
      for (const k of ["MasterUsername", "MasterUserPassword"]) for (const n of references(r.Properties?.[k])) if (isSecret(n)) master.add(n);
    }
    // a secret is the master user's when it is one, or made from one
    const isMaster = (n) => master.has(n) || [...references(resources[n]?.Properties?.SecretString)].some((m) => master.has(m));
    const secretIn = (node) => [...references(node)].find(isSecret);

    for (const name of serviceTaskDefinitions(t)) {
      const c = resources[name].Properties?.ContainerDefinitions?.[0] ?? {};
      const secret = secretIn((c.Secrets ?? []).find((s) => s.Name === "DATABASE_URL")?.ValueFrom);
      if (secret && isMaster(secret)) err("template", `${name}'s DATABASE_URL is ${secret}, the database's master user: the service connects as the app role`);
      const migrate = (c.Environment ?? []).find((e) => e.Name === "MIGRATE_ON_START")?.Value;
      if (String(migrate) !== "false")
        err("template", `${name} sets MIGRATE_ON_START=${migrate ?? "(unset: true)"}: the app role may not migrate, every task would fail at start`);
    }

    // the released task definitions: placeholder, the renderer's output, its secret
    const table = new Map(rendererTable(renderer));
    const secretBehind = (valueFrom) => {
      const key = table.get(String(valueFrom).match(/^\$\{([A-Z_]+)\}$/)?.[1]);
      return key ? secretIn(t.Outputs?.[key]?.Value) : undefined;
    };
    const c = td.containerDefinitions?.[0] ?? {};
    const app = secretBehind((c.secrets ?? []).find((s) => s.name === "DATABASE_URL")?.valueFrom);
    if (!app) err("taskDefinition", "DATABASE_URL is not a secret of the stack");
    else if (isMaster(app)) err("taskDefinition", `DATABASE_URL is ${app}, the database's master user: the service connects as the app role`);
    const migrate = (c.environment ?? []).find((e) => e.name === "MIGRATE_ON_START")?.value;
    if (migrate !== "false") err("taskDefinition", `MIGRATE_ON_START is ${migrate ?? "unset (true)"}: the app role may not migrate, every task would fail at start`);

    const mc = mtd.containerDefinitions?.[0] ?? {};
    if (!(mc.command ?? []).includes("migrate")) err("migrateTaskDefinition", "does not run `moonkeep migrate`");
    const migrator = secretBehind((mc.secrets ?? []).find((s) => s.name === "DATABASE_URL")?.valueFrom);
    if (!migrator) err("migrateTaskDefinition", "DATABASE_URL is not a secret of the stack");
    else if (migrator === app) err("migrateTaskDefinition", `migrates as the app role (${app}), which may not change the schema`);

    // the release runs the migration task to its end (tools/ecs-run-task.sh
    // with the migration's task definition) before it updates the service
    for (const [name, job] of Object.entries(w.jobs ?? {})) {
      const steps = job.steps ?? [];
      const deploy = steps.findIndex((s) => String(s.uses ?? "").startsWith("aws-actions/amazon-ecs-deploy-task-definition"));
      if (deploy < 0) continue;
      const file = migratePath.split("/").pop();
      const runs = steps.findIndex((s) => String(s.run ?? "").includes("ecs-run-task.sh") &&
        [s.run, ...Object.values(s.env ?? {})].some((v) => String(v ?? "").includes(file)));
      if (runs < 0 || runs > deploy) err("workflow", `job ${name} updates the service without first running the migration task (${migratePath})`);
    }
  },
});

export function check(texts, files) {
  const findings = [];
  const t = yaml.load(texts.template, { schema: CFN_SCHEMA });
  const w = yaml.load(texts.workflow);
  const extra = { taskDefinition: JSON.parse(texts.taskDefinition), renderer: texts.renderer,
                  migrateTaskDefinition: JSON.parse(texts.migrateTaskDefinition ?? "{}"),
                  migratePath: files.migrateTaskDefinition ?? "deploy/ecs/migrate-task-definition.json",
                  rootFiles: texts.rootFiles ?? [], readme: texts.readme, compose: yaml.load(texts.compose),
                  stackReadme: texts.stackReadme ?? "" };
  for (const [rule, fn] of Object.entries(RULES)) {
    fn(t, w, (which, msg) => findings.push(`${files[which]}: ${rule}: ${msg}`), extra);
  }
  return findings;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const files = {
    template: process.argv[2] ?? "deploy/cloudformation/moonkeep.yml",
    workflow: process.argv[3] ?? ".github/workflows/release.yml",
    taskDefinition: process.argv[4] ?? "deploy/ecs/task-definition.json",
    renderer: process.argv[5] ?? "tools/render-task-definition.sh",
    readme: process.argv[6] ?? "deploy/README.md",
    compose: process.argv[7] ?? "docker-compose.yml",
    stackReadme: process.argv[8] ?? "deploy/cloudformation/README.md",
    migrateTaskDefinition: process.argv[9] ?? "deploy/ecs/migrate-task-definition.json",
  };
  const texts = Object.fromEntries(Object.entries(files).map(([k, f]) => [k, readFileSync(f, "utf8")]));
  texts.rootFiles = readdirSync(".");
  const findings = check(texts, files);
  for (const f of findings) console.log(f);
  console.log(`deploy-check: ${Object.keys(RULES).length} rules, ${findings.length} finding(s)`);
  process.exit(findings.length > 0 ? 1 : 0);
}

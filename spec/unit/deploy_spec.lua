-- deploy/ecs/task-definition.json as tools/render-task-definition.sh
-- renders it for a stack: every stack-owned value from the stack's outputs
-- (tried with a second stack name, in another partition, with another
-- size), then valid JSON with what an ECS Fargate service behind an ALB
-- needs, secrets only from Secrets Manager, and no environment variable
-- that moonkeep does not read (a typo there would be silently ignored in
-- production). The `aws` the renderer calls is a stand-in on PATH that
-- answers for that stack: no AWS account is reached.
local cjson = require "cjson"

local TASK_DEFINITION = "deploy/ecs/task-definition.json"

-- A stack that is not called moonkeep, in the China partition, with a
-- size of its own: nothing of "moonkeep", "arn:aws:" or 1024/2048 may
-- survive from the template.
local STACK = "moonkeep-staging"
local ARN = "arn:aws-cn:%s:cn-north-1:210987654321:%s"
local OUTPUTS = {
  TaskDefinitionFamily = STACK, TaskCpu = "2048", TaskMemory = "4096",
  TaskRoleArn = "arn:aws-cn:iam::210987654321:role/" .. STACK .. "-task",
  TaskExecutionRoleArn = "arn:aws-cn:iam::210987654321:role/" .. STACK .. "-task-execution",
  LogGroupName = "/ecs/" .. STACK, ServiceUrl = "https://staging.example.com", TrustedProxies = "10.20.0.0/16",
  MailFrom = "moonkeep staging <no-reply@staging.example.com>", LogDeliveryStreamName = STACK .. "-logs",
  JwtSecretArn = ARN:format("secretsmanager", "secret:" .. STACK .. "/jwt-AbCdEf"),
  DatabaseUrlSecretArn = ARN:format("secretsmanager", "secret:" .. STACK .. "/database-url-AbCdEf"),
  MailUrlSecretArn = ARN:format("secretsmanager", "secret:" .. STACK .. "/mail-url-AbCdEf"),
  MigrationTaskFamily = STACK .. "-migrate",
  MigrationExecutionRoleArn = "arn:aws-cn:iam::210987654321:role/" .. STACK .. "-MigrationExecutionRole-AbCdEf",
  MigrationDatabaseUrlSecretArn = ARN:format("secretsmanager", "secret:" .. STACK .. "/migration-database-url-AbCdEf"),
  ClusterName = STACK, TaskSubnetIds = "subnet-0aaa,subnet-0bbb", TaskSecurityGroupId = "sg-0tasks",
  DatabaseRolesTaskDefinition = ARN:format("ecs", "task-definition/" .. STACK .. "-db-roles:3"),
}
local IMAGE = "210987654321.dkr.ecr.cn-north-1.amazonaws.com.cn/" .. STACK .. ":1.2.3"

local function read(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("*a")
  f:close()
  return text
end

local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"exit=$?\"")
  local out = p:read("*a")
  p:close()
  return tonumber(out:match("exit=(%d+)%s*$")), out
end

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

-- A folder with an `aws` stand-in that answers for STACK: describe-stacks
-- (OUTPUTS), and the ECS calls of a one-off task, which it appends to
-- calls.log (one line each; --overrides file:// is copied to
-- overrides.json). The task's container exits with the code in exit_code
-- (0 unless written); run-task fails when no_capacity exists.
local function stand_in()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. dir))
  local list = {}
  for k, v in pairs(OUTPUTS) do list[#list + 1] = {OutputKey = k, OutputValue = v} end
  write(dir .. "/outputs.json", cjson.encode(list))
  write(dir .. "/exit_code", "0")
  local task = ARN:format("ecs", "task/" .. STACK .. "/0123456789abcdef")
  write(dir .. "/aws", ([[#!/bin/sh
# the stand-in: %s only
d=%s
echo "$*" >> "$d/calls.log"
for a in "$@"; do case $a in file://*) cp "${a#file://}" "$d/overrides.json" ;; esac; done
case "$*" in
  "cloudformation describe-stacks --stack-name %s --output text --query "*DatabaseRolesTaskDefinition*)
    echo "%s" ;;
  "cloudformation describe-stacks --stack-name %s "*) cat "$d/outputs.json" ;;
  "ecs run-task "*)
    if [ -e "$d/no_capacity" ]; then echo '{"tasks": [], "failures": [{"reason": "RESOURCE:ENI"}]}'
    else echo '{"tasks": [{"taskArn": "%s"}], "failures": []}'; fi ;;
  "ecs wait tasks-stopped "*) ;;
  "ecs describe-tasks "*)
    echo '{"tasks": [{"lastStatus": "STOPPED", "stoppedReason": "Essential container in task exited",
           "containers": [{"name": "moonkeep", "exitCode": '"$(cat "$d/exit_code")"'}]}]}' ;;
  "ecs describe-task-definition "*)
    echo '{"taskDefinition": {"containerDefinitions": [{"name": "moonkeep",
           "logConfiguration": {"options": {"awslogs-group": "/ecs/%s", "awslogs-stream-prefix": "migrate"}}}]}}' ;;
  "logs get-log-events "*) printf '%%s\t%%s\n' '{"msg":"migration applied"}' '{"msg":"done"}' ;;
  *) echo "aws stand-in: unexpected call: $*" >&2; exit 1 ;;
esac
]]):format(STACK, dir, STACK, OUTPUTS.DatabaseRolesTaskDefinition, STACK, task, STACK))
  assert(os.execute("chmod +x " .. dir .. "/aws"))
  return dir, task
end

-- Renders the task definition TEMPLATE (default deploy/ecs/task-definition.json)
-- for STACK with the `aws` stand-in; returns the rendered text.
local function render(template)
  local dir = stand_in()
  local code, out = sh(("PATH=%s:$PATH AWS_REGION=cn-north-1 TASK_DEFINITION=%s "
    .. "bash tools/render-task-definition.sh %s %s %s/td.json")
    :format(dir, template or TASK_DEFINITION, STACK, IMAGE, dir))
  assert(code == 0, "the renderer failed:\n" .. out)
  local text = read(dir .. "/td.json")
  os.execute("rm -rf " .. dir)
  return text
end

-- The Application Load Balancer's idle timeout (deploy/README.md).
local ALB_IDLE_TIMEOUT_S = 60

local function files(pattern)
  local p = io.popen("ls " .. pattern)
  local out = {}
  for line in p:lines() do out[#out + 1] = line end
  p:close()
  return out
end

-- Every environment variable moonkeep reads: host/*/*.c through
-- config_env_long/config_env_str/getenv/env_bool, the scripts through
-- lib/config.lua's str/int (and any os.getenv).
local function variables_moonkeep_reads()
  local vars = {}
  for _, path in ipairs(files("host/*/*.c")) do
    local text = read(path)
    for _, fn in ipairs({"config_env_long", "config_env_str", "getenv", "env_bool"}) do
      for name in text:gmatch("%f[%w_]" .. fn .. "%(%s*\"([A-Z0-9_]+)\"") do vars[name] = path end
    end
  end
  local config = read("scripts/lib/config.lua")
  for fn, name in config:gmatch("%f[%w_](%a+)%(\"([A-Z0-9_]+)\"") do
    if fn == "str" or fn == "int" then vars[name] = "scripts/lib/config.lua" end
  end
  for _, path in ipairs(files("scripts/*.lua scripts/*/*.lua")) do
    for name in read(path):gmatch("os%.getenv%(%s*\"([A-Z0-9_]+)\"") do vars[name] = path end
  end
  return vars
end

describe("the ECS task definition", function()
  local td, container

  local rendered

  setup(function()
    rendered = render()
    td = cjson.decode(rendered)
    container = td.containerDefinitions[1]
  end)

  it("takes every stack-owned value from the stack's outputs, for any stack name and partition", function()
    assert.equal(STACK, td.family)
    assert.equal(OUTPUTS.TaskCpu, td.cpu)
    assert.equal(OUTPUTS.TaskMemory, td.memory)
    assert.equal(OUTPUTS.TaskRoleArn, td.taskRoleArn)
    assert.equal(OUTPUTS.TaskExecutionRoleArn, td.executionRoleArn)
    assert.equal(OUTPUTS.LogGroupName, container.logConfiguration.options["awslogs-group"])
    assert.equal("cn-north-1", container.logConfiguration.options["awslogs-region"])
    assert.equal(IMAGE, container.image)
    assert.not_matches("arn:aws:", rendered, "no ARN of the template's partition survives")
    assert.not_matches("%${", rendered, "no placeholder survives")
    -- the template itself holds no stack-owned literal
    local template = cjson.decode(read(TASK_DEFINITION))
    for _, v in ipairs({template.family, template.cpu, template.memory, template.taskRoleArn,
                        template.executionRoleArn,
                        template.containerDefinitions[1].logConfiguration.options["awslogs-group"]}) do
      assert.matches("^%${[A-Z_]+}$", v)
    end
  end)

  it("is a Fargate task on awsvpc with a valid cpu/memory pair", function()
    assert.same({"FARGATE"}, td.requiresCompatibilities)
    assert.equal("awsvpc", td.networkMode)
    local cpu, memory = tonumber(td.cpu), tonumber(td.memory)
    -- Fargate: 1 vCPU takes 2..8 GiB, 2 vCPU 4..16 GiB, in 1 GiB steps
    local ranges = {[256] = {512, 2048}, [512] = {1024, 4096}, [1024] = {2048, 8192}, [2048] = {4096, 16384},
                    [4096] = {8192, 30720}}
    local range = assert(ranges[cpu], "cpu " .. tostring(td.cpu))
    assert.is_true(memory >= range[1] and memory <= range[2], "memory " .. tostring(td.memory))
    assert.is_string(td.executionRoleArn)
    assert.is_string(td.taskRoleArn, "the task role carries firehose:PutRecordBatch")
  end)

  it("runs one essential container named moonkeep on port 5000", function()
    assert.equal(1, #td.containerDefinitions)
    assert.equal("moonkeep", container.name, "deploy/cloudformation and the ALB target name it")
    assert.is_true(container.essential)
    assert.equal(5000, container.portMappings[1].containerPort)
    assert.equal("tcp", container.portMappings[1].protocol)
  end)

  it("checks health with the image's own probe, and stops within stopTimeout", function()
    local hc = container.healthCheck
    assert.same({"CMD", "/opt/moonkeep/bin/container-steps.sh", "healthcheck"}, hc.command)
    assert.matches('HEALTHCHECK.-"/opt/moonkeep/bin/container%-steps%.sh", "healthcheck"', read("Dockerfile"))
    assert.is_true(hc.interval >= 5 and hc.timeout < hc.interval and hc.retries >= 1 and hc.startPeriod >= 10)
    assert.equal(30, container.stopTimeout)
  end)

  it("takes JWT_SECRET, DATABASE_URL and MAIL_URL from Secrets Manager, and no secret from the environment", function()
    local secrets = {}
    for _, s in ipairs(container.secrets) do
      secrets[s.name] = s.valueFrom
      assert.is_truthy(s.valueFrom:match("^arn:aws[%w-]*:secretsmanager:"),
        s.name .. ": " .. s.valueFrom)
    end
    for _, name in ipairs({"JWT_SECRET", "DATABASE_URL", "MAIL_URL"}) do
      assert.is_string(secrets[name], name)
    end
    for _, e in ipairs(container.environment) do
      assert.is_nil(secrets[e.name], e.name .. " is both a secret and plain environment")
      local secret_like = e.name:match("SECRET") or e.name:match("PASSWORD") or e.name == "DATABASE_URL"
        or e.name == "MAIL_URL"
      assert.is_falsy(secret_like, e.name .. " belongs in secrets")
    end
  end)

  it("logs stdout through awslogs (or FireLens) without blocking the process", function()
    local lc = container.logConfiguration
    assert.is_truthy(lc.logDriver == "awslogs" or lc.logDriver == "awsfirelens", lc.logDriver)
    if lc.logDriver == "awslogs" then
      assert.is_string(lc.options["awslogs-group"])
      assert.is_string(lc.options["awslogs-region"])
      assert.is_string(lc.options["awslogs-stream-prefix"])
      assert.equal("non-blocking", lc.options.mode)
    end
  end)

  it("configures Firehose, and keeps connections open longer than the ALB", function()
    local env = {}
    for _, e in ipairs(container.environment) do
      assert.is_string(e.value, e.name)
      env[e.name] = e.value
    end
    assert.is_string(env.FIREHOSE_STREAM)
    assert.is_string(env.AWS_REGION)
    assert.is_true(tonumber(env.KEEPALIVE_TIMEOUT_S or "75") > ALB_IDLE_TIMEOUT_S)
    assert.is_true(tonumber(env.SHUTDOWN_GRACE_S or "20") + 5 <= container.stopTimeout,
      "the drain ends before ECS sends SIGKILL")
    assert.equal("0.0.0.0", env.HOST)
    assert.equal("5000", env.PORT)
    assert.equal("false", env.MIGRATE_ON_START, "the app role may not migrate: the release's migration task does")
    if env.METRICS_PORT then
      local mapped = false
      for _, p in ipairs(container.portMappings) do mapped = mapped or p.containerPort == tonumber(env.METRICS_PORT) end
      assert.is_true(mapped, "METRICS_PORT is mapped")
    end
  end)

  it("names only environment variables that moonkeep reads", function()
    local reads = variables_moonkeep_reads()
    -- the collector itself works: a few that are certainly read
    for _, name in ipairs({"PORT", "WORKERS", "JWT_SECRET", "DATABASE_URL", "MAIL_URL", "PUBLIC_URL",
                           "METRICS_PORT", "FIREHOSE_STREAM"}) do
      assert.is_string(reads[name], name .. " not found by the collector")
    end
    local names = {}
    for _, e in ipairs(container.environment) do names[#names + 1] = e.name end
    for _, s in ipairs(container.secrets) do names[#names + 1] = s.name end
    for _, name in ipairs(names) do
      assert.is_string(reads[name], name .. " is not read by moonkeep")
    end
  end)
end)

describe("the migration task definition", function()
  local td, container

  setup(function()
    td = cjson.decode(render("deploy/ecs/migrate-task-definition.json"))
    container = td.containerDefinitions[1]
  end)

  it("runs `moonkeep migrate` from the released image, in the stack's family and log group", function()
    assert.equal(OUTPUTS.MigrationTaskFamily, td.family)
    assert.equal(IMAGE, container.image)
    assert.same({"migrate"}, container.command)
    assert.is_true(container.essential)
    assert.equal(OUTPUTS.LogGroupName, container.logConfiguration.options["awslogs-group"])
    assert.equal("migrate", container.logConfiguration.options["awslogs-stream-prefix"])
  end)

  it("connects as the migration role, which no service task sees", function()
    assert.same({{name = "DATABASE_URL", valueFrom = OUTPUTS.MigrationDatabaseUrlSecretArn}}, container.secrets)
    assert.not_equal(OUTPUTS.DatabaseUrlSecretArn, OUTPUTS.MigrationDatabaseUrlSecretArn)
    assert.equal(OUTPUTS.MigrationExecutionRoleArn, td.executionRoleArn)
    assert.is_nil(td.taskRoleArn, "it calls no AWS API")
  end)

  it("names only environment variables that moonkeep reads", function()
    local reads = variables_moonkeep_reads()
    for _, e in ipairs(container.environment) do assert.is_string(reads[e.name], e.name) end
  end)
end)

describe("a one-off task (tools/ecs-run-task.sh)", function()
  local dir, task

  before_each(function() dir, task = stand_in() end)
  after_each(function() os.execute("rm -rf " .. dir) end)

  local function run(script, args)
    return sh(("PATH=%s:$PATH bash %s %s"):format(dir, script, args))
  end

  local function call(prefix)
    for line in read(dir .. "/calls.log"):gmatch("[^\n]+") do
      if line:sub(1, #prefix) == prefix then return line end
    end
  end

  it("runs in the stack's private subnets with the tasks' security group, and ends with the task's exit code 0",
    function()
      local code, out = run("tools/ecs-run-task.sh", STACK .. " " .. STACK .. "-migrate:7")
      assert.equal(0, code, out)
      local started = call("ecs run-task ")
      assert.matches("--cluster " .. STACK .. " ", started, 1, true)
      assert.matches("--task-definition " .. STACK .. "-migrate:7", started, 1, true)
      assert.matches("awsvpcConfiguration={subnets=[subnet-0aaa,subnet-0bbb],securityGroups=[sg-0tasks],"
        .. "assignPublicIp=DISABLED}", started, 1, true)
      assert.matches("ecs wait tasks-stopped --cluster " .. STACK .. " --tasks " .. task, read(dir .. "/calls.log"), 1, true)
      assert.matches('{"msg":"migration applied"}\n{"msg":"done"}', out, 1, true)
    end)

  it("fails when the task's container exits with another code", function()
    write(dir .. "/exit_code", "1")
    local code, out = run("tools/ecs-run-task.sh", STACK .. " " .. STACK .. "-migrate:7")
    assert.equal(1, code)
    assert.matches("ended with exit code 1: Essential container in task exited", out, 1, true)
  end)

  it("fails when ECS cannot start the task", function()
    write(dir .. "/no_capacity", "")
    local code, out = run("tools/ecs-run-task.sh", STACK .. " " .. STACK .. "-migrate:7")
    assert.equal(1, code)
    assert.matches("did not start", out, 1, true)
    assert.is_nil(call("ecs wait "))
  end)

  it("creates the database roles with roles.sql, without its comments, in the stack's roles task", function()
    local code, out = run("deploy/db/create-roles.sh", STACK)
    assert.equal(0, code, out)
    assert.matches("--task-definition " .. OUTPUTS.DatabaseRolesTaskDefinition, call("ecs run-task "), 1, true)
    local overrides = cjson.decode(read(dir .. "/overrides.json"))
    local env = overrides.containerOverrides[1].environment
    assert.equal("psql", overrides.containerOverrides[1].name)
    assert.equal("ROLES_SQL", env[1].name)
    assert.matches("ALTER DEFAULT PRIVILEGES FOR ROLE", env[1].value, 1, true)
    assert.not_matches("\n%-%-", "\n" .. env[1].value)
  end)
end)

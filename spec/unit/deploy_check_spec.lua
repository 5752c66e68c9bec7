-- tools/lint/deploy-check.mjs (make lint: deploy) finds what it is for: the
-- release path's files as they are pass, and copies broken in the way each
-- rule guards against fail on that rule (for the rules search-retention and
-- database-app-role; tools/lint/README.md, "Seeing a check fail").
local util = require "support.util"

-- The files deploy-check reads, in the order of its command line.
local FILES = {
  "deploy/cloudformation/moonkeep.yml", ".github/workflows/release.yml", "deploy/ecs/task-definition.json",
  "tools/render-task-definition.sh", "deploy/README.md", "docker-compose.yml", "deploy/cloudformation/README.md",
  "deploy/ecs/migrate-task-definition.json",
}

-- Runs deploy-check on copies of FILES, `path` changed by replacing `from`
-- with `to` (plain text, every occurrence, at least one); returns the exit
-- code and the findings.
local function check(path, from, to)
  local dir = util.tmpdir("deploy-check")
  local args = {}
  for i, f in ipairs(FILES) do
    local text = assert(util.read_file(f))
    if f == path then
      local start = text:find(from, 1, true)
      assert(start, f .. " has no " .. from)
      local parts, pos = {}, 1
      while start do
        parts[#parts + 1] = text:sub(pos, start - 1) .. to
        pos = start + #from
        start = text:find(from, pos, true)
      end
      text = table.concat(parts) .. text:sub(pos)
    end
    -- each in a folder of its own, under its own name (the workflow names the migration's file)
    assert(os.execute(("mkdir -p %q/%d"):format(dir, i)))
    local copy = ("%s/%d/%s"):format(dir, i, f:match("[^/]+$"))
    local out = assert(io.open(copy, "w"))
    out:write(text)
    out:close()
    args[#args + 1] = ("%q"):format(copy)
  end
  local code, out = util.sh("node tools/lint/deploy-check.mjs " .. table.concat(args, " "))
  os.execute(("rm -rf %q"):format(dir))
  return code, out
end

describe("deploy-check", function()
  it("passes the release path as it is", function()
    local code, out = check()
    assert.equal(0, code, out)
    assert.matches("0 finding%(s%)", out)
  end)

  describe("search-retention fails", function()
    local template = FILES[1]
    for _, case in ipairs({
      {"when nothing writes a retention policy", "Type: Custom::SearchRetention",
       "Type: AWS::CloudFormation::WaitConditionHandle", "nothing writes a retention policy into SearchDomain"},
      {"when the delete age is no stack parameter", "RetentionDays: !Ref SearchRetentionDays",
       'RetentionDays: "30"', "the delete age is not a stack parameter"},
      {"when the policy is for other indices than Firehose writes", "IndexPattern: moonkeep-logs-*",
       "IndexPattern: logs-*", "does not match moonkeep-logs-"},
      {"when the function cannot reach the domain", "SourceSecurityGroupId: !Ref SearchRetentionSecurityGroup",
       "SourceSecurityGroupId: !Ref FirehoseSecurityGroup", "cannot reach SearchDomain"},
      {"when the policy is written blindly", "if_seq_no", "if_seqno", "never mentions if_seq_no"},
    }) do
      it(case[1], function()
        local code, out = check(template, case[2], case[3])
        assert.equal(1, code, out)
        assert.matches("search-retention: ", out, 1, true)
        assert.matches(case[4], out, 1, true)
      end)
    end
  end)

  describe("database-app-role fails", function()
    it("when the service's DATABASE_URL is made from the master user's secret", function()
      local code, out = check(FILES[1], "${DatabaseAppSecret}:SecretString", "${DatabaseMasterSecret}:SecretString")
      assert.equal(1, code, out)
      assert.matches("database-app-role: TaskDefinition's DATABASE_URL is DatabaseUrlSecret, the database's master user",
        out, 1, true)
      assert.matches("database-app-role: DATABASE_URL is DatabaseUrlSecret, the database's master user", out, 1, true)
    end)

    it("when the service still migrates at start", function()
      local code, out = check(FILES[3], '{"name": "MIGRATE_ON_START", "value": "false"}',
        '{"name": "MIGRATE_ON_START", "value": "true"}')
      assert.equal(1, code, out)
      assert.matches("database-app-role: MIGRATE_ON_START is true", out, 1, true)
    end)

    it("when the migration runs as the app role", function()
      local code, out = check(FILES[8], "${MIGRATION_DATABASE_URL_ARN}", "${DATABASE_URL_ARN}")
      assert.equal(1, code, out)
      assert.matches("database-app-role: migrates as the app role (DatabaseUrlSecret)", out, 1, true)
    end)

    it("when the release updates the service without running the migration first", function()
      local code, out = check(FILES[2], 'bash tools/ecs-run-task.sh "$STACK_NAME" "$arn"', 'echo "$arn"')
      assert.equal(1, code, out)
      assert.matches("database-app-role: job deploy updates the service without first running the migration task",
        out, 1, true)
    end)
  end)
end)

-- The log search domain's retention (deploy/cloudformation/moonkeep.yml,
-- SearchRetentionFunction and the custom resource SearchRetention): the
-- function's inline code, as CloudFormation deploys it, runs against a
-- stand-in of the domain's ISM API (spec/support/search_retention.py, with
-- Debian's python3-botocore, which also checks every call's SigV4
-- signature). No AWS account is reached.
local cjson = require "cjson"

local TEMPLATE = "deploy/cloudformation/moonkeep.yml"

-- Runs the plan (see search_retention.py); returns its decoded result.
local function run(plan)
  local input = os.tmpname()
  local f = assert(io.open(input, "w"))
  f:write(cjson.encode(plan))
  f:close()
  local p = io.popen(("/usr/bin/python3 spec/support/search_retention.py %s < %s 2>&1; echo \"exit=$?\"")
    :format(TEMPLATE, input))
  local out = p:read("*a")
  p:close()
  os.remove(input)
  local code = tonumber(out:match("exit=(%d+)%s*$"))
  assert(code == 0, "search_retention.py failed:\n" .. out)
  -- the function's own log lines (stderr) come first, then the JSON
  return cjson.decode(out:match("(%b{})%s*exit=%d+%s*$"))
end

local function calls_of(step, method, path_prefix)
  local found = {}
  for _, c in ipairs(step.calls) do
    if c.method == method and c.path:sub(1, #path_prefix) == path_prefix then found[#found + 1] = c end
  end
  return found
end

local POLICY = "/_plugins/_ism/policies/moonkeep-log-retention"
local EXISTING = {"moonkeep-logs-2026-01-01", "moonkeep-logs-2026-01-02", "audit-2026-01-01"}

describe("the search domain's retention policy", function()
  it("is written on create, deleting each index Firehose writes RetentionDays after its creation", function()
    local r = run({indices = EXISTING, steps = {{request = "Create", days = "30"}}})
    local step = r.steps[1]
    assert.equal("SUCCESS", step.response.body.Status)
    assert.equal("moonkeep-log-retention", step.response.body.PhysicalResourceId)
    assert.equal("", step.response.content_type, "the pre-signed response URL is signed for no content type")
    for _, c in ipairs(step.calls) do assert.is_nil(c.refused, c.path .. ": " .. tostring(c.refused)) end
    local put = calls_of(step, "PUT", POLICY)
    assert.equal(1, #put)
    assert.same({}, put[1].query, "a new policy is created without if_seq_no")
    local policy = r.policies["moonkeep-log-retention"].policy
    assert.equal("hot", policy.default_state)
    assert.same({{state_name = "delete", conditions = {min_index_age = "30d"}}}, policy.states[1].transitions)
    assert.equal("delete", policy.states[2].name)
    assert.same({{delete = {}}}, policy.states[2].actions)
    assert.same({"moonkeep-logs-*"}, policy.ism_template[1].index_patterns)
  end)

  it("is added to the indices that were there before it, and to none other", function()
    local r = run({indices = EXISTING, steps = {{request = "Create", days = "30"}}})
    local seq = r.policies["moonkeep-log-retention"].seq_no
    assert.same({policy_id = "moonkeep-log-retention", policy_seq_no = seq}, r.indices["moonkeep-logs-2026-01-01"])
    assert.same({policy_id = "moonkeep-log-retention", policy_seq_no = seq}, r.indices["moonkeep-logs-2026-01-02"])
    assert.is_true(r.indices["audit-2026-01-01"].policy_id == cjson.null)
  end)

  it("reaches each new daily index through its ism_template", function()
    local r = run({steps = {{request = "Create", days = "30"}, {create_index = "moonkeep-logs-2026-02-01"}}})
    assert.equal("moonkeep-log-retention", r.indices["moonkeep-logs-2026-02-01"].policy_id)
  end)

  it("is left as it is when a deploy finds it already in place", function()
    local r = run({indices = EXISTING, steps = {{request = "Create", days = "30"}, {request = "Update", days = "30"}}})
    local again = r.steps[2]
    assert.equal("SUCCESS", again.response.body.Status)
    assert.equal("false", again.response.body.Data.Written)
    assert.same({}, calls_of(again, "PUT", POLICY))
    assert.same({}, calls_of(again, "POST", "/_plugins/_ism/change_policy/"))
  end)

  it("is rewritten with if_seq_no when the retention changes, and every index moves to the new version", function()
    local r = run({indices = EXISTING, steps = {
      {request = "Create", days = "30"}, {create_index = "moonkeep-logs-2026-02-01"}, {request = "Update", days = "7"},
    }})
    local update = r.steps[2]
    local put = calls_of(update, "PUT", POLICY)
    assert.equal(1, #put)
    assert.equal("1", put[1].query.if_seq_no, "the version the create wrote")
    assert.equal("1", put[1].query.if_primary_term)
    assert.equal(1, #calls_of(update, "POST", "/_plugins/_ism/change_policy/moonkeep-logs-*"))
    local p = r.policies["moonkeep-log-retention"]
    assert.equal("7d", p.policy.states[1].transitions[1].conditions.min_index_age)
    for _, name in ipairs({"moonkeep-logs-2026-01-01", "moonkeep-logs-2026-01-02", "moonkeep-logs-2026-02-01"}) do
      assert.equal(p.seq_no, r.indices[name].policy_seq_no, name .. " runs the current version")
    end
  end)

  it("is put back when someone edited it by hand", function()
    local r = run({steps = {{request = "Create", days = "30"}, {edit_policy = true}, {request = "Update", days = "30"}}})
    local put = calls_of(r.steps[2], "PUT", POLICY)
    assert.equal(1, #put)
    assert.equal("2", put[1].query.if_seq_no, "the version the hand edit made")
    assert.matches("deleted 30 days after creation", r.policies["moonkeep-log-retention"].policy.description)
  end)

  it("stays when the stack deletes the custom resource", function()
    local r = run({steps = {{request = "Create", days = "30"}, {request = "Delete"}}})
    assert.equal("SUCCESS", r.steps[2].response.body.Status)
    assert.same({}, r.steps[2].calls)
    assert.is_not_nil(r.policies["moonkeep-log-retention"])
  end)

  it("tells CloudFormation of a failure instead of leaving the stack waiting", function()
    local r = run({steps = {{request = "Create", days = "0"}}})
    assert.equal("FAILED", r.steps[1].response.body.Status)
    assert.matches("RetentionDays is 0", r.steps[1].response.body.Reason)
    assert.same({}, calls_of(r.steps[1], "PUT", POLICY))
  end)
end)

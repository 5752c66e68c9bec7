-- spec/support/engine.lua — the container engine for the image and compose
-- specs: podman through tools/podman.sh (the project's containers.conf),
-- the image of `make image`, an endpoint to talk to a published port, and
-- the journey both specs walk against what the engine runs.
local assert = require "luassert"
local client = require "support.http_client"
local api = require "support.api"
local util = require "support.util"

local engine = {}

engine.IMAGE = os.getenv("MOONKEEP_IMAGE") or "moonkeep:local"

-- Why these specs cannot run here, or nil. No engine inside an engine:
-- `make test-fresh` runs the suite in a podman container (podman leaves
-- /run/.containerenv in each), and the image specs run on its host. Where
-- the suite runs in a container of another engine (the GitHub workflow's
-- Docker jobs), MOONKEEP_NO_ENGINE=1 says so: /.dockerenv cannot, since
-- machines that do run podman (this workplace's) are built from Docker
-- images and keep that file. The sanitizer pass runs them once, not twice:
-- the image holds the plain build.
function engine.skip_reason()
  if util.read_file("/run/.containerenv") or os.getenv("MOONKEEP_NO_ENGINE") == "1" then
    return "inside a container (no engine inside an engine)"
  end
  if os.getenv("MOONKEEP_SANITIZED") == "1" then return "the sanitizer pass (the image holds the plain build)" end
  return nil
end

function engine.podman(args)
  return util.sh("tools/podman.sh " .. args)
end

-- Builds the image once per run of busted (tools/image.sh: a no-op where
-- the layers are cached and nothing changed).
local built
function engine.ensure_image()
  if not built then
    local code, out = util.sh("tools/image.sh " .. engine.IMAGE)
    assert(code == 0, "tools/image.sh failed:\n" .. out)
    built = true
  end
end

-- What support.api needs of a server: request() on the published port and
-- the PUBLIC_URL its mails link to.
function engine.endpoint(port, public_url)
  return {
    port = port,
    env = {PUBLIC_URL = public_url},
    request = function(self, method, path, opts) return client.request(self.port, method, path, opts) end,
  }
end

-- Waits until GET /healthz on the endpoint answers 200.
function engine.wait_healthy(target, seconds)
  return util.wait_for(seconds or 60, function()
    local res = target:request("GET", "/healthz", {timeout = 1})
    return res and res.status == 200
  end, 0.2)
end

-- register → the mail in mail_dir → confirm → log in, then create, read,
-- list and delete a user. Returns the admin's session.
function engine.journey(target, mail_dir)
  local session = api.admin_session(target, mail_dir)
  local h = api.bearer(session.access)
  local email = api.unique("grace") .. "@example.com"
  local res = target:request("POST", "/users", {headers = h, body = {email = email, name = "Grace Hopper"}})
  assert.equal(201, res.status, res.body)
  local user = res.json.user
  res = target:request("GET", "/users/" .. user.id, {headers = h})
  assert.equal(200, res.status, res.body)
  assert.same(user, res.json.user)
  res = target:request("GET", "/users?q=" .. email, {headers = h})
  assert.equal(200, res.status, res.body)
  assert.equal(1, #res.json.users)
  assert.equal(user.id, res.json.users[1].id)
  res = target:request("DELETE", "/users/" .. user.id, {headers = h})
  assert.equal(200, res.status, res.body)
  assert.equal(user.id, res.json.user.id)
  res = target:request("GET", "/users/" .. user.id, {headers = h})
  assert.equal(404, res.status, res.body)
  return session
end

return engine

-- docker-compose.yml as podman-compose brings it up, with
-- docker-compose.offline.yml (PostgreSQL 15 and the SMTP sink built from
-- Debian's packages: the upstream images cannot be pulled here): every
-- service reports healthy, and the journey passes through the published port.
local engine = require "support.engine"
local util = require "support.util"

local skip = engine.skip_reason()
local describe_here = skip and pending or describe

describe_here("docker-compose.yml under podman-compose" .. (skip and (": skipped, " .. skip) or ""), function()
  local work, project, compose, target

  local function up_log(what, out) return what .. " failed:\n" .. out end

  setup(function()
    engine.ensure_image() -- moonkeep:local with the build's extra CA, which compose's build cannot pass
    work = util.tmpdir("compose")
    os.execute(("chmod 755 %q"):format(work))
    local port = util.free_port()
    project = ("moonkeepspec%d"):format(port)
    -- docker-compose.yml has no default JWT_SECRET: compose refuses to start without one
    compose = ("JWT_SECRET=%q MOONKEEP_PORT=%d MAILPIT_PORT=%d MAIL_DIR=%q podman-compose --podman-path tools/podman.sh "
               .. "-p %s -f docker-compose.yml -f docker-compose.offline.yml"):format(
      os.getenv("JWT_SECRET") or "compose-spec-secret-compose-spec-secret-0123456789", port, util.free_port(),
      work .. "/mail", project)
    target = engine.endpoint(port, ("http://localhost:%d"):format(port))
    local code, out = util.sh(compose .. " up -d")
    assert(code == 0, up_log("podman-compose up", out))
  end)

  teardown(function()
    if compose then
      util.sh(compose .. " down -v")
      engine.podman(("network rm -f %s_default"):format(project))
    end
    if work then os.execute(("rm -rf %q"):format(work)) end
  end)

  it("brings up PostgreSQL, the mail catcher and moonkeep, each healthy by its own check", function()
    for _, service in ipairs({"db", "mail", "moonkeep"}) do
      local last
      local healthy = util.wait_for(90, function()
        local code, out = engine.podman(("healthcheck run %s_%s_1"):format(project, service))
        last = out
        return code == 0
      end, 1)
      assert.is_truthy(healthy, service .. " never became healthy: " .. tostring(last) .. "\n"
                       .. select(2, engine.podman(("logs %s_%s_1"):format(project, service))))
    end
    assert.is_truthy(engine.wait_healthy(target, 30))
  end)

  it("walks the journey through the published port, mail through the compose network", function()
    engine.journey(target, work .. "/mail")
  end)
end)

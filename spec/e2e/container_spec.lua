-- The container image's steps, run on the host (Docker itself is not
-- available to the test suite): tools/container-steps.sh builds the image's
-- tree into a temporary prefix exactly as the Dockerfile's build stage does,
-- checks it needs nothing beyond the run stage's packages, and starts it
-- with the run stage's command line (tini as the first process, the
-- HEALTHCHECK's probe, a SIGTERM drain). The Dockerfile and
-- docker-compose.yml are checked for calling those very steps.
local server = require "support.server"
local util = require "support.util"

local STEPS = "tools/container-steps.sh"

local sh = util.sh

local function lines_of(text)
  local out = {}
  for line in text:gmatch("[^\n]+") do out[#out + 1] = line end
  return out
end

-- The sanitizer pass builds nothing new here: the image holds the plain build.
local sanitized = os.getenv("MOONKEEP_SANITIZED") == "1"
local describe_unless_sanitized = sanitized and pending or describe

describe_unless_sanitized("the container image's steps on the host", function()
  local work, prefix

  setup(function()
    local _, dir = sh("mktemp -d /tmp/moonkeep-image.XXXXXX")
    work = dir:gsub("%s+$", "")
    os.execute(("chmod 755 %q"):format(work))
    prefix = work .. "/opt/moonkeep"
    local code, out = sh(("%s build . %q %q"):format(STEPS, prefix, work .. "/build"))
    assert(code == 0, "the build step failed:\n" .. out)
  end)

  teardown(function()
    if work then os.execute(("rm -rf %q"):format(work)) end
  end)

  it("installs the binary, the scripts, the migrations and the Swagger UI assets", function()
    for _, path in ipairs({"bin/moonkeep", "bin/container-steps.sh", "scripts/app.lua", "scripts/routes/meta.lua",
                           "swagger-ui/swagger-ui-bundle.js", "swagger-ui/swagger-ui.css",
                           "swagger-ui/swagger-ui-standalone-preset.js", "swagger-ui/favicon-32x32.png"}) do
      assert.is_truthy(util.read_file(prefix .. "/" .. path), path)
    end
    local code, migrations = sh(("ls %q/migrations"):format(prefix))
    assert.equal(0, code)
    assert.is_true(#lines_of(migrations) >= 1)
    local _, maps = sh(("find %q -name '*.map'"):format(prefix))
    assert.equal("", maps, "no source maps in the image")
    local _, version = sh(prefix .. "/bin/moonkeep version")
    assert.matches("^moonkeep ", version)
  end)

  it("needs no library beyond the run stage's packages, and its scripts load", function()
    local code, out = sh(("%s check-runtime %q"):format(STEPS, prefix))
    assert.equal(0, code, out)
  end)

  it("names Debian 12 packages that exist, and libjwt0 for libjwt.so.0", function()
    for _, step in ipairs({"runtime-packages", "build-packages"}) do
      local _, list = sh(STEPS .. " " .. step)
      for _, pkg in ipairs(lines_of(list)) do
        local _, policy = sh("apt-cache policy " .. pkg)
        assert.is_truthy(policy:match("Candidate: %d"), step .. ": " .. pkg .. " is not a Debian package here")
      end
    end
    local _, owner = sh("dpkg -S libjwt.so.0")
    assert.matches("^libjwt0:", owner)
  end)

  it("serves from the installed tree with the run stage's command line, and drains on SIGTERM", function()
    local srv = server.start({bin = prefix .. "/bin/container-steps.sh", args = {"start", "serve"},
                              scripts = prefix .. "/scripts", workers = 2})
    local comm = util.read_file("/proc/" .. srv.pid .. "/comm")
    assert.equal("tini", comm and comm:gsub("%s+$", ""), "tini is the first process")
    local healthy = sh(("PORT=%d %s/bin/container-steps.sh healthcheck"):format(srv.port, prefix))
    assert.equal(0, healthy, "the HEALTHCHECK probe passes")
    assert.equal(200, srv:request("GET", "/readyz").status)
    local res = srv:request("GET", "/apidocs/swagger-ui.css")
    assert.equal(200, res.status, "Swagger UI assets come from the installed tree")
    assert.equal(200, srv:request("GET", "/metrics").status)
    local how, code = srv:stop()
    assert.equal("exited", how)
    assert.equal(0, code, "tini passes on the master's clean exit")
    local after = sh(("PORT=%d %s/bin/container-steps.sh healthcheck"):format(srv.port, prefix))
    assert.is_true(after ~= 0, "the probe fails once the server is gone")
  end)

  it("migrates with the one-off task's command line", function()
    local code, out = sh(("%s/bin/container-steps.sh start migrate"):format(prefix))
    assert.equal(0, code, out)
  end)
end)

describe("the Dockerfile and docker-compose.yml", function()
  local dockerfile = util.read_file("Dockerfile") or ""

  it("builds on debian:bookworm-slim in two stages through container-steps.sh", function()
    local froms = {}
    for image in dockerfile:gmatch("\nFROM (%S+)") do froms[#froms + 1] = image end
    assert.same({"debian:bookworm-slim", "debian:bookworm-slim"}, froms)
    for _, step in ipairs({"build%-deps", "build /src /opt/moonkeep", "runtime%-deps", "user",
                           "check%-runtime /opt/moonkeep"}) do
      assert.matches("container%-steps%.sh " .. step, dockerfile)
    end
  end)

  it("runs as a non-root user, tini first, with a health check and SIGTERM", function()
    assert.matches("\nUSER 10001:10001\n", dockerfile)
    assert.matches('\nENTRYPOINT %["/opt/moonkeep/bin/container%-steps%.sh", "start"%]\n', dockerfile)
    assert.matches('\nCMD %["serve"%]\n', dockerfile)
    assert.matches("\nEXPOSE 5000\n", dockerfile)
    assert.matches("\nSTOPSIGNAL SIGTERM\n", dockerfile)
    assert.matches("\nHEALTHCHECK ", dockerfile)
    local steps = util.read_file(STEPS)
    assert.matches("exec tini ", steps)
    assert.matches("useradd %-%-no%-log%-init %-%-uid 10001 ", steps)
  end)

  it("keeps build trees, local state and node_modules out of the build context", function()
    local ignore = util.read_file(".dockerignore") or ""
    for _, entry in ipairs({".git", "build", "build-*", "var", "**/node_modules"}) do
      assert.matches("\n" .. entry:gsub("%p", "%%%0") .. "\n", "\n" .. ignore)
    end
  end)

  it("composes moonkeep, PostgreSQL 15 and a mail catcher, each healthy before moonkeep starts", function()
    local code, out = sh([[/usr/bin/python3 -c '
import json, sys, yaml
print(json.dumps(yaml.safe_load(open("docker-compose.yml"))))']])
    assert.equal(0, code, out)
    local compose = require("cjson").decode(out)
    local s = compose.services
    assert.matches("^postgres:15%.%d+%-bookworm$", s.db.image)
    assert.matches("^axllent/mailpit:v%d+%.%d+%.%d+$", s.mail.image)
    for _, name in ipairs({"moonkeep", "db", "mail"}) do
      assert.is_table(s[name].healthcheck, name .. " has a health check")
    end
    assert.equal("service_healthy", s.moonkeep.depends_on.db.condition)
    assert.equal("service_healthy", s.moonkeep.depends_on.mail.condition)
    assert.matches("@db:5432/", s.moonkeep.environment.DATABASE_URL)
    assert.matches("^smtp://mail:1025", s.moonkeep.environment.MAIL_URL)
  end)
end)

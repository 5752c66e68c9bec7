-- The image of `make image` as a container engine runs it (podman, the
-- project's containers.conf): on loopback (host network) against a
-- PostgreSQL of its own on 127.0.0.1 and a real SMTP server, the journey,
-- the image's HEALTHCHECK, a numeric non-root uid for every process, and
-- `podman stop` (SIGTERM) during 50 in-flight logins: each is answered and
-- the container exits 0.
local engine = require "support.engine"
local mailbox = require "support.mailbox"
local client = require "support.http_client"
local util = require "support.util"

local skip = engine.skip_reason()
local describe_here = skip and pending or describe

describe_here("the image under podman" .. (skip and (": skipped, " .. skip) or ""), function()
  local work, name, sink, target, session

  local function container_state(field)
    local _, out = engine.podman(("inspect --format '{{.%s}}' %s"):format(field, name))
    return (out:gsub("%s+$", ""))
  end

  setup(function()
    engine.ensure_image()
    work = util.tmpdir("image")
    os.execute(("chmod 755 %q"):format(work))
    local pg_port = util.free_port()
    local code, db_url = util.sh(("PG_FSYNC=off PG_TCP_PORT=%d tools/pg-cluster.sh start %q"):format(pg_port, work .. "/pg"))
    assert(code == 0, db_url)
    db_url = db_url:gsub("%s+$", "")
    local smtp_port = util.free_port()
    sink = mailbox.start_sink(smtp_port, work .. "/mail")
    local port = util.free_port()
    name = ("moonkeep-spec-%d"):format(port)
    target = engine.endpoint(port, ("http://127.0.0.1:%d"):format(port))
    local run = table.concat({
      "run -d --name " .. name, "--network host",
      "-e HOST=127.0.0.1", "-e PORT=" .. port, "-e WORKERS=2",
      -- one address, and 50 logins at once for one admin, each counted
      -- before its work (docs/api.md): neither limit is this spec's subject
      "-e CLIENT_HASH_BUDGET_PER_MIN=0", "-e LOGIN_FAILURE_LIMIT=100",
      ("-e DATABASE_URL=%q"):format(db_url),
      ("-e JWT_SECRET=%q"):format(os.getenv("JWT_SECRET") or "image-spec-secret-image-spec-secret-0123456789"),
      ("-e MAIL_URL=smtp://127.0.0.1:%d"):format(smtp_port), "-e MAIL_TLS=off",
      "-e PUBLIC_URL=" .. target.env.PUBLIC_URL,
      engine.IMAGE,
    }, " ")
    local out
    code, out = engine.podman(run)
    assert(code == 0, "podman run: " .. out)
    assert(engine.wait_healthy(target, 60), "the container did not become healthy:\n" .. select(2, engine.podman("logs " .. name)))
  end)

  teardown(function()
    if name then engine.podman("rm -f -t 0 " .. name) end
    if sink then sink.stop() end
    if work then
      util.sh(("tools/pg-cluster.sh stop %q"):format(work .. "/pg"))
      os.execute(("rm -rf %q"):format(work))
    end
  end)

  it("walks the journey: register, the mail, confirm, log in, create, read, list and delete a user", function()
    session = engine.journey(target, sink.dir)
  end)

  it("passes its own HEALTHCHECK, run by the engine", function()
    local code, out = engine.podman("healthcheck run " .. name)
    assert.equal(0, code, out)
    assert.matches("CMD", container_state("Config.Healthcheck.Test"), "the image keeps HEALTHCHECK (docker format)")
  end)

  it("runs every process under a numeric non-root uid", function()
    local user = container_state("Config.User")
    assert.matches("^%d+:%d+$", user, "USER is numeric")
    assert.is_true(tonumber(user:match("^%d+")) > 0)
    local code, out = engine.podman(("top %s huser comm"):format(name))
    assert.equal(0, code, out)
    local processes = 0
    for uid, comm in out:gmatch("\n(%S+)%s+(%S+)") do
      assert.equal(user:match("^%d+"), uid, comm .. " runs as " .. uid)
      processes = processes + 1
    end
    assert.is_true(processes >= 3, "tini, the master and its workers:\n" .. out)
  end)

  it("answers all of 50 in-flight logins through `podman stop`, then exits 0", function()
    assert.is_table(session, "the journey's admin")
    local body = ('{"email":"%s","password":"%s"}'):format(session.email, session.password)
    local request = ("POST /auth/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
      .. "Content-Length: %d\r\nConnection: close\r\n\r\n%s"):format(#body, body)
    -- 50 requests wholly sent before the stop: in flight, however fast the
    -- machine (curl processes, started one by one, raced the stop)
    local conns = {}
    for i = 1, 50 do
      conns[i] = assert(client.connect(target.port, 60))
      assert(conns[i]:send_raw(request))
    end
    local code, out = engine.podman("stop -t 30 " .. name)
    assert.equal(0, code, out)
    local statuses = {}
    for i = 1, 50 do
      local res = conns[i]:read_response()
      conns[i]:close()
      statuses[i] = res and res.status or 0
    end
    assert.same(("200 "):rep(50), (table.concat(statuses, " ") .. " "), "every login answered 200")
    assert.equal("exited", container_state("State.Status"))
    assert.equal("0", container_state("State.ExitCode"))
  end)
end)

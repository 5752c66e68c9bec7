-- The background jobs of app.jobs, run as a worker would run them, on the
-- fake database: the mail outbox sender (lib/outbox.lua) and the retention
-- sweeper (lib/retention.lua).
local kit = require "support.kit"

describe("app.jobs", function()
  it("lists the mail sender and the retention sweeper with their periods from the environment", function()
    local k = kit.new({env = {MAIL_POLL_S = "2", RETENTION_SWEEP_S = "60"}})
    assert.equal(2, k.app.jobs.mail.every)
    assert.equal(60, k.app.jobs.retention.every)
    assert.is_function(k.app.jobs.mail.run)
    assert.is_function(k.app.jobs.retention.run)
  end)
end)

describe("the mail job", function()
  local k

  before_each(function()
    k = kit.new({env = {MAIL_RETRY_MAX = "4", MAIL_BACKOFF_MAX_S = "5", MAIL_LEASE_S = "60"}})
    k:seed_admin({email = "ada@example.com", name = "Ada", confirmed = false})
    assert.status(202, k:post("/auth/confirm/resend", {json = {email = "ada@example.com"}}))
  end)

  local function row() return k.db.state.outbox[1] end

  it("sends a queued mail with the row's Message-ID and marks it sent, its token cleared", function()
    assert.equal(1, #k:mails())
    local mail = k.mail.sent[1]
    assert.equal(row().message_id, mail.id)
    assert.equal("ada@example.com", mail.to)
    assert.equal("sent", row().status)
    assert.is_nil(row().token)
    k:mails()
    assert.equal(1, #k.mail.sent) -- never twice
  end)

  it("retries after a backoff that doubles up to MAIL_BACKOFF_MAX_S, then gives up at MAIL_RETRY_MAX", function()
    k.mail.fail("smtp: 421 busy")
    local delays = {}
    for attempt = 1, 4 do
      local before = k.clock.now
      k:mails()
      assert.equal(attempt, row().attempts)
      if row().status ~= "due" then break end
      delays[attempt] = row().due_at - before
      k:mails() -- not due yet: nothing happens
      assert.equal(attempt, row().attempts)
      k:advance(delays[attempt])
    end
    assert.same({1, 2, 4}, delays)
    assert.equal("failed", row().status)
    assert.equal("smtp: 421 busy", row().last_error)
    assert.is_nil(row().token)
    assert.is_table(k.log.find("mail given up"))
    assert.equal(1, k.metrics.values["moonkeep_mail_given_up_total"])
  end)

  it("gives up at once when the server refuses the message for good", function()
    k.mail.fail("smtp: 550 no such user", true)
    k:mails()
    assert.equal("failed", row().status)
    assert.equal(1, row().attempts)
  end)

  it("leaves a leased mail alone until the lease runs out (a worker that died)", function()
    local store = require "lib.store"
    assert.is_table(store:claim_mail(60, k.config.mail_group)) -- claimed by a worker that then died
    assert.same({}, k:mails())
    k:advance(60)
    assert.equal(1, #k:mails())
    assert.equal(2, row().attempts)
  end)

  it("reports the outbox depth and the age of the oldest due mail", function()
    k.mail.fail("smtp: 421 busy")
    k:advance(3)
    k:mails()
    assert.equal(1, k.metrics.values["moonkeep_mail_outbox_depth"])
    assert.is_number(k.metrics.values["moonkeep_mail_outbox_oldest_due_seconds"])
  end)
end)

describe("the retention job", function()
  it("deletes what is past retention and counts it by table", function()
    local k = kit.new({env = {RETENTION_BATCH = "1", RETENTION_SESSIONS_S = "100"}})
    local s = k:signed_in()
    assert.status(204, k:post("/auth/logout", {token = s.access}))
    k:advance(50)
    k.app.jobs.retention.run()
    assert.equal(1, #k.db.state.sessions)
    k:advance(51)
    k.app.jobs.retention.run()
    assert.equal(0, #k.db.state.sessions)
    assert.equal(1, k.metrics.values['moonkeep_retention_deleted_rows_total{table="sessions"}'])
  end)

  it("refuses a rate-limit retention shorter than the longest window", function()
    assert.has_error(function()
      kit.new({env = {RETENTION_RATE_LIMITS_S = "60", LOGIN_FAILURE_WINDOW_S = "900"}})
    end, "config: RETENTION_RATE_LIMITS_S=60 is shorter than the longest rate-limit window (900 s)")
  end)
end)

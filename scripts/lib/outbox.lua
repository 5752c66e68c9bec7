-- lib/outbox.lua — sending the mail outbox (migrations/0005_mail_outbox.sql).
-- outbox.run is the `mail` job (app.jobs): every worker of every replica
-- runs it every MAIL_POLL_S seconds. Each round claims the oldest due mail
-- (FOR UPDATE SKIP LOCKED, with a lease), makes one delivery attempt through
-- host.mail (the job's task waits; the loop does not), and marks the row:
-- sent; due again after an exponential backoff with jitter; or failed, with
-- the last error kept, after a permanent refusal or MAIL_RETRY_MAX attempts.
-- A round goes on while there are due mails, up to MAIL_BATCH of them.
local mail = require "host.mail"
local log = require "host.log"
local metrics = require "host.metrics"
local config = require "lib.config"
local mails = require "lib.mails"
local store = require "lib.store"

local min, time = math.min, os.time

local outbox = {}

local HELP_DEPTH = "Mails in the outbox not yet sent nor given up (waiting, leased or in backoff)."
local HELP_OLDEST = "Seconds the oldest mail whose time has come has been waiting (0 when none)."
local HELP_GIVEN_UP = "Mails given up: refused by the server, or out of attempts (MAIL_RETRY_MAX)."
local STATS_EVERY_S = 5

local stats_at = 0

-- Backoff before the attempt after `attempts` failed ones: 1 s doubling, up
-- to MAIL_BACKOFF_MAX_S (the database adds the jitter: store.mail_retry).
local function backoff(attempts)
  return min(2 ^ (attempts - 1), config.mail_backoff_max)
end

-- The outcome of one attempt, written to the row.
local function settle(row, ok, err, permanent)
  if ok then return store:mail_sent(row.id) end
  local fields = {mail_id = row.message_id, kind = row.kind, attempt = row.attempts, error = err}
  if permanent or row.attempts >= config.mail_retry_max then
    fields.reason = permanent and "refused by the server" or "out of attempts"
    log.error("mail given up", fields)
    metrics.count("moonkeep_mail_given_up_total", 1, HELP_GIVEN_UP)
    return store:mail_failed(row.id, err)
  end
  local delay = backoff(row.attempts)
  fields.retry_in_s = delay
  log.warn("mail will be retried", fields)
  return store:mail_retry(row.id, delay, err)
end

-- Claims one due mail and sends it: true when there was one, false when
-- none was due, nil when the database failed.
local function send_one()
  local row, err = store:claim_mail(config.mail_lease, config.mail_group)
  if err then return nil end
  if not row then return false end
  local msg = mails.message(row.kind, row.to_addr, row.name, row.token, row.ttl_s)
  msg.id = row.message_id
  local ok, permanent
  ok, err, permanent = mail.deliver(msg)
  return settle(row, ok, err, permanent) ~= nil
end

local function report_depth()
  local row = store:outbox_stats(config.mail_group)
  if not row then return end
  metrics.gauge("moonkeep_mail_outbox_depth", row.depth, HELP_DEPTH)
  metrics.gauge("moonkeep_mail_outbox_oldest_due_seconds", row.oldest_due_s, HELP_OLDEST)
end

-- The `mail` job. A database failure ends the round (the store logged it);
-- the next round tries again.
function outbox.run()
  for _ = 1, config.mail_batch do
    if not send_one() then break end
  end
  if time() - stats_at >= STATS_EVERY_S then
    stats_at = time()
    report_depth()
  end
end

return outbox

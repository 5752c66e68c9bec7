-- lib/retention.lua — the retention sweeper: deletes rows nobody needs any
-- more, so the tables stop growing with time. retention.run is the
-- `retention` job (app.jobs): every worker of every replica runs it every
-- RETENTION_SWEEP_S seconds, but one process of the whole deployment sweeps
-- at a time: each batch is a short transaction that first takes a
-- PostgreSQL advisory lock with pg_try_advisory_xact_lock, and a sweeper
-- that finds it taken stops its round (the holder is doing the work).
-- Batches of RETENTION_BATCH rows, deleted by row address, keep every lock
-- short; a round stops after RETENTION_MAX_BATCHES per table and the next
-- round goes on. docs/db.md, "Retention".
local log = require "host.log"
local metrics = require "host.metrics"
local config = require "lib.config"
local store = require "lib.store"

local retention = {}

-- "moonkeep.retention" as a 64-bit advisory lock key (fixed: every replica
-- must use the same one).
local LOCK_KEY = 0x6d6b7265746e
local HELP = "Rows deleted by the retention sweeper, by table."

-- What goes, in order: the store's sweep statement, the table it names,
-- and the retention (seconds past the end of a row's life) from config.
local TARGETS = {
  {what = "sessions", tbl = "sessions", keep = "retention_sessions"},
  {what = "tokens", tbl = "one_time_tokens", keep = "retention_tokens"},
  {what = "rate_limits", tbl = "rate_limits", keep = "retention_rate_limits"},
  {what = "mail", tbl = "mail_outbox", keep = "retention_mail"},
  {what = "audit", tbl = "audit_events", keep = "retention_audit"},
}

-- Sweeps one target: rows deleted, and false when another process holds
-- the lock or the database failed (the round stops).
local function sweep(target)
  local total = 0
  for _ = 1, config.retention_max_batches do
    local deleted = store:transaction(function(tx)
      return tx:sweep(target.what, LOCK_KEY, config[target.keep], config.retention_batch)
    end)
    if not deleted then return total, false end
    total = total + deleted
    if deleted < config.retention_batch then break end
  end
  return total, true
end

-- The `retention` job.
function retention.run()
  local counts, any = {}, false
  for _, target in ipairs(TARGETS) do
    local deleted, go_on = sweep(target)
    if deleted > 0 then
      metrics.count('moonkeep_retention_deleted_rows_total{table="' .. target.tbl .. '"}', deleted, HELP)
      counts[target.tbl], any = deleted, true
    end
    if not go_on then break end
  end
  if any then log.info("retention sweep", counts) end
end

return retention

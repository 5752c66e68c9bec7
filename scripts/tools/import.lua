-- tools/import.lua — `moonkeep import --from <libpq URL> [--dry-run]`: the
-- Flask service's admins and users into moonkeep (docs/import.md).
--
-- The host (host/import.c) reads the source tables with the statements of
-- import.SOURCES, in one read-only snapshot, and calls
-- import.run(source, options) in a task on an event loop, as it would a
-- request: host.db is the target (DATABASE_URL) and host.password hashes
-- with the configured parameters, off the loop. It prints the report run
-- returns and exits with its status.
--
-- Each source row is checked with the API's own rules (lib/validate.lua),
-- then against the target, then imported, already imported, or refused
-- with its reasons; refusing a row never stops the others. Each table is
-- one transaction; each imported row has its admin.imported/user.imported
-- event (actor null, request_id the run's id). A second run finds what
-- the first imported (same id and email, or that event) and changes
-- nothing.
local password = require "host.password"
local cjson = require "cjson.safe"
local store = require "lib.store"
local validate = require "lib.validate"
local audit = require "lib.audit"

local ipairs, pairs, type, tostring, tonumber, pcall = ipairs, pairs, type, tostring, tonumber, pcall
local format, lower, concat, sort = string.format, string.lower, table.concat, table.sort
local null = cjson.null

local import = {}

-- The Flask schema: admins(id, email, name, password) with plain-text
-- passwords, users(id, email, active). Every column as text, so that any
-- column type reads the same.
import.SOURCES = {
  {"admins", "SELECT id::text AS id, email::text AS email, name::text AS name, password::text AS password"
    .. " FROM admins ORDER BY id"},
  {"users", "SELECT id::text AS id, email::text AS email, active::text AS active FROM users ORDER BY id"},
}

-- Exit statuses (docs/import.md).
import.OK, import.FAILED, import.REFUSED = 0, 1, 3

local LOOKUP_BATCH = 500

local MSG = {
  duplicate_email = "is the same address as %s %s of the source (addresses compare in their canonical form: "
    .. "trimmed, lower-case)",
  duplicate_name = "is the same name as admin %s of the source (names compare case-insensitively)",
  email_taken = "is already in use by %s %s",
  name_taken = "is already taken by admin %s",
  taken_meanwhile = "was taken while the import ran (run it again)",
  active = "must be true or false (t, f, 1, 0, yes, no)",
  null_active = "active was null: imported as active",
  weak_password = "its password breaks the rules for new passwords (%s): it still logs in; ask for a change",
}

local ACTIVE = {["true"] = true, t = true, ["1"] = true, yes = true, y = true, on = true,
                ["false"] = false, f = false, ["0"] = false, no = false, n = false, off = false}

local function text(v)
  if v == nil or v == null then return nil end
  return v
end

-- ---- checking a row on its own ------------------------------------------------

-- The entry of a source row, {source_id, id, email, problems = {"field
-- why"...}, notes = {...}}, with its id and email checked.
local function new_entry(row)
  local e = {source_id = text(row.id), problems = {}, notes = {}}
  local msg
  e.id, msg = validate.id(text(row.id) or "")
  if not e.id then e.problems[#e.problems + 1] = "id " .. msg end
  e.email, msg = validate.email(text(row.email) or "")
  if not e.email then e.problems[#e.problems + 1] = "email " .. msg end
  return e
end

-- admins: {id, email, name, password} -> the entry, with name, password.
local function check_admin(row)
  local e = new_entry(row)
  local msg
  e.name, msg = validate.admin_name(text(row.name) or "")
  if not e.name then e.problems[#e.problems + 1] = "name " .. msg end
  e.password, msg = validate.given_password(text(row.password) or "")
  if not e.password then
    e.problems[#e.problems + 1] = "password " .. msg
  else
    local ok, why = validate.password(e.password)
    local fields = ok and validate.password_differs(nil, e.password, e.email, e.name)
    why = why or (fields and fields.password)
    if why then e.notes[#e.notes + 1] = format(MSG.weak_password, why) end
  end
  return e
end

-- users: {id, email, active} -> the entry, with active.
local function check_user(row)
  local e = new_entry(row)
  local active = text(row.active)
  if active == nil then
    e.active = true
    e.notes[#e.notes + 1] = MSG.null_active
  else
    e.active = ACTIVE[lower(active)]
    if e.active == nil then e.problems[#e.problems + 1] = "active " .. MSG.active end
  end
  return e
end

-- ---- the tables ------------------------------------------------------------------

-- What each kind differs in.
local KINDS = {
  admins = {one = "admin", check = check_admin, unique_name = true,
            lookup_entry = function(e) return {id = e.id, email = e.email, name = e.name} end,
            insert = function(tx, e, run_id) return tx:import_admin(e, run_id) end},
  users = {one = "user", check = check_user,
           lookup_entry = function(e) return {id = e.id, email = e.email} end,
           insert = function(tx, e, run_id) return tx:import_user(e, run_id) end},
}

-- Refuses the later of two source rows that are one in moonkeep (the same
-- canonical email; for admins the same name, case-insensitively): the row
-- with the lower id is kept.
local function refuse_duplicates(kind, entries)
  local emails, names = {}, {}
  for _, e in ipairs(entries) do
    if #e.problems == 0 then
      local first = emails[e.email]
      if first then
        e.problems[#e.problems + 1] = "email " .. format(MSG.duplicate_email, kind.one, first.source_id)
      end
      local key = kind.unique_name and lower(e.name)
      local first_named = key and names[key]
      if first_named then
        e.problems[#e.problems + 1] = "name " .. format(MSG.duplicate_name, first_named.source_id)
      end
      if #e.problems == 0 then
        emails[e.email] = e
        if key then names[key] = e end
      end
    end
  end
end

-- Looks the valid entries up in the target and decides each one's fate:
-- e.state = "already" (e.target_id), "refused" (e.problems), or "import"
-- (e.keep_id: its id is free). Returns true, or nil and an error response.
local function classify(kind_name, kind, entries)
  local pending, batch = {}, {}
  local function flush()
    if #batch == 0 then return true end
    local rows, err = store:import_lookup(kind_name, batch)
    if not rows then return nil, err end
    for _, r in ipairs(rows) do
      local e = pending[validate.id(r.source_id)]
      e.found = r
    end
    batch, pending = {}, {}
    return true
  end
  for _, e in ipairs(entries) do
    if #e.problems == 0 then
      batch[#batch + 1] = kind.lookup_entry(e)
      pending[e.id] = e
      if #batch >= LOOKUP_BATCH then
        local ok, err = flush()
        if not ok then return nil, err end
      end
    end
  end
  local ok, err = flush()
  if not ok then return nil, err end

  for _, e in ipairs(entries) do
    if #e.problems > 0 then
      e.state = "refused"
    else
      local f = e.found
      if f.imported_as ~= null then
        e.state, e.target_id = "already", validate.id(f.imported_as)
      elseif f.id_email == e.email then
        e.state, e.target_id = "already", e.id
      else
        if f.email_owner ~= null then
          e.problems[#e.problems + 1] = "email " .. format(MSG.email_taken, kind.one, tostring(f.email_owner))
        end
        if kind.unique_name and f.name_owner ~= null then
          e.problems[#e.problems + 1] = "name " .. format(MSG.name_taken, tostring(f.name_owner))
        end
        if #e.problems > 0 then
          e.state = "refused"
        else
          e.state, e.keep_id = "import", f.id_email == null
        end
      end
    end
  end
  return true
end

-- Hashes the password of each admin to import (before the transaction, so
-- the tables are not held while argon2id works). Returns true, or nil and
-- a message.
local function hash_passwords(entries)
  for _, e in ipairs(entries) do
    if e.state == "import" and e.password then
      local hash, err = password.hash(e.password)
      if not hash then return nil, "password hashing failed: " .. tostring(err) end
      e.password_hash = hash
    end
  end
  return true
end

-- One transaction: the sequence moved past the ids kept, the rows with
-- their own id, then those that need a new one. A row a unique index
-- refuses (taken since the lookup) is tried once more with a new id, then
-- refused. Returns the events written, or nil and an error response.
local function write(kind_name, kind, entries, run_id)
  local max_kept = 0
  for _, e in ipairs(entries) do
    if e.state == "import" and e.keep_id and tonumber(e.id) > max_kept then max_kept = tonumber(e.id) end
  end
  local ordered = {}
  for _, e in ipairs(entries) do
    if e.state == "import" then ordered[#ordered + 1] = e end
  end
  sort(ordered, function(a, b)
    if a.keep_id ~= b.keep_id then return a.keep_id end
    return tonumber(a.id) < tonumber(b.id)
  end)
  local events = {}
  local ok, err = store:transaction(function(tx)
    events = {}
    local done, e = tx:import_sequence(kind_name, format("%.0f", max_kept))
    if not done then return nil, e end
    for _, entry in ipairs(ordered) do
      local row = {id = entry.keep_id and entry.id or nil, email = entry.email, name = entry.name,
                   password_hash = entry.password_hash, active = entry.active, source_id = entry.source_id}
      local id, ierr, recorded = kind.insert(tx, row, run_id)
      if ierr then return nil, ierr end
      if not id and row.id then
        row.id = nil
        id, ierr, recorded = kind.insert(tx, row, run_id)
        if ierr then return nil, ierr end
      end
      if id then
        entry.target_id = validate.id(id)
        for _, ev in ipairs(recorded) do events[#events + 1] = ev end
      else
        entry.state = "refused"
        entry.problems[#entry.problems + 1] = "email or name " .. MSG.taken_meanwhile
      end
    end
    return true
  end)
  if not ok then return nil, err end
  return events
end

-- ---- the report ---------------------------------------------------------------------

local function error_text(err)
  if type(err) == "table" and err.body and err.body.error then
    return format("%s (%s)", err.body.error.message, err.body.error.code)
  end
  return tostring(err)
end

-- The lines about one table; returns them and its counts.
local function report_table(kind_name, kind, entries, dry_run, failure)
  local lines, counts = {}, {read = #entries, imported = 0, kept = 0, new = 0, already = 0, refused = 0}
  lines[1] = format("%s: %d in the source", kind_name, #entries)
  for _, e in ipairs(entries) do
    local label = format("  %s %s", kind.one, e.source_id or "(no id)")
    if e.state == "refused" then
      counts.refused = counts.refused + 1
      lines[#lines + 1] = format("%s: refused: %s", label, concat(e.problems, "; "))
    elseif e.state == "already" then
      counts.already = counts.already + 1
    elseif e.state == "import" and not failure then
      counts.imported = counts.imported + 1
      if e.keep_id then
        counts.kept = counts.kept + 1
      else
        counts.new = counts.new + 1
        lines[#lines + 1] = dry_run and format("%s: would get a new id (id %s is taken in moonkeep)", label, e.id)
          or format("%s: imported as %s %s (id %s is taken in moonkeep)", label, kind.one, e.target_id, e.id)
      end
    end
    if e.state ~= "refused" and e.state ~= "already" then
      for _, note in ipairs(e.notes) do lines[#lines + 1] = format("%s: note: %s", label, note) end
    end
  end
  if failure then
    lines[#lines + 1] = format("%s: FAILED, nothing of this table was written: %s", kind_name, failure)
  else
    lines[#lines + 1] = format("%s: %d %s (%d with their own id, %d with a new id), %d already imported, %d refused",
      kind_name, counts.imported, dry_run and "would be imported" or "imported", counts.kept, counts.new,
      counts.already, counts.refused)
  end
  return lines, counts
end

-- ---- the run ----------------------------------------------------------------------

-- One table: check, classify, hash, write. Returns the entries and a
-- failure message (nil when it went through).
local function run_table(kind_name, rows, options)
  local kind = KINDS[kind_name]
  local entries = {}
  for i, row in ipairs(rows or {}) do entries[i] = kind.check(row) end
  refuse_duplicates(kind, entries)
  local ok, err = classify(kind_name, kind, entries)
  if not ok then return entries, error_text(err) end
  if options.dry_run then return entries end
  ok, err = hash_passwords(entries)
  if not ok then return entries, err end
  local events
  events, err = write(kind_name, kind, entries, options.run_id)
  if not events then return entries, error_text(err) end
  audit.log(events)
  return entries
end

-- source: {admins = rows, users = rows} (every value a string or null);
-- options: {dry_run = bool, run_id = string}. Returns the report (text)
-- and the exit status.
function import.run(source, options)
  options = options or {}
  local out = {}
  if options.dry_run then out[1] = "moonkeep import: dry run, nothing is written" end
  local total = {imported = 0, already = 0, refused = 0}
  local failed = false
  for _, spec in ipairs(import.SOURCES) do
    local kind_name = spec[1]
    local ok, entries, failure = pcall(run_table, kind_name, source[kind_name], options)
    if not ok then entries, failure = {}, tostring(entries) end
    local lines, counts = report_table(kind_name, KINDS[kind_name], entries, options.dry_run, failure)
    for _, line in ipairs(lines) do out[#out + 1] = line end
    for key in pairs(total) do total[key] = total[key] + counts[key] end
    failed = failed or failure ~= nil
  end
  local summary
  if failed then
    summary = "import FAILED (see above): run it again once the cause is fixed; what was imported stays"
  elseif options.dry_run then
    summary = format("dry run: %d rows would be imported, %d are already imported, %d would be refused",
                     total.imported, total.already, total.refused)
  elseif total.imported == 0 then
    summary = format("nothing changed: %d rows already imported, %d refused", total.already, total.refused)
  else
    summary = format("done: %d rows imported, %d already imported, %d refused",
                     total.imported, total.already, total.refused)
  end
  out[#out + 1] = summary
  local status = import.OK
  if failed then status = import.FAILED elseif total.refused > 0 then status = import.REFUSED end
  return concat(out, "\n") .. "\n", status
end

return import

-- GET /users?q= against the real binary and PostgreSQL: a q with a trigram
-- (pg_trgm indexes, migrations/0006) and a shorter one, which reads at most
-- a window of users per request (lib/store.lua, list_users_scan): a short
-- or empty page whose next_cursor goes on, every match reached by following
-- next_cursor.
local server = require "support.server"
local util = require "support.util"
local api = require "support.api"

describe("GET /users?q=", function()
  local srv, session, tag

  setup(function()
    srv = server.start({workers = 1})
    session = api.admin_session(srv)
    -- 25 000 users that do not match, then two that do: past one window
    tag = api.unique("sq")
    util.sql(("INSERT INTO users (email, name) SELECT '%s-' || g || '@example.com', NULL"
      .. " FROM generate_series(1, 25000) g"):format(tag))
    util.sql(("INSERT INTO users (email, name) VALUES ('%s-zq1@example.com', 'Zq One'),"
      .. " ('%s-zq2@example.com', NULL)"):format(tag, tag))
  end)

  teardown(function()
    if srv then srv:stop() end
  end)

  -- Every user of q, page by page: the emails and the number of requests.
  local function all_pages(q, limit)
    local emails, cursor, requests = {}, nil, 0
    repeat
      local path = ("/users?limit=%d&q=%s"):format(limit, q) .. (cursor and "&cursor=" .. cursor or "")
      local res = srv:request("GET", path, {headers = api.bearer(session.access)})
      assert.equal(200, res.status, res.body)
      requests = requests + 1
      for _, u in ipairs(res.json.users) do emails[#emails + 1] = u.email end
      cursor = res.json.next_cursor ~= nil and res.json.next_cursor ~= require("cjson").null and res.json.next_cursor
        or nil
    until not cursor or requests > 100
    return emails, requests
  end

  it("answers a short q with a short page and a next_cursor when the window holds no match", function()
    local res = srv:request("GET", "/users?limit=5&q=" .. tag .. "-zq", {headers = api.bearer(session.access)})
    assert.equal(200, res.status)
    local short = srv:request("GET", "/users?limit=5&q=zq", {headers = api.bearer(session.access)})
    assert.equal(200, short.status)
    assert.is_true(#short.json.users < 5)
    assert.is_string(short.json.next_cursor)
  end)

  it("reaches every match of a short q by following next_cursor", function()
    local emails = all_pages("zq", 5)
    local mine = {}
    for _, e in ipairs(emails) do
      if e:find(tag, 1, true) then mine[#mine + 1] = e end
    end
    table.sort(mine)
    assert.same({tag .. "-zq1@example.com", tag .. "-zq2@example.com"}, mine)
  end)

  it("finds the same users through the trigram indexes with a longer q", function()
    local emails = all_pages(tag .. "-zq", 1)
    table.sort(emails)
    assert.same({tag .. "-zq1@example.com", tag .. "-zq2@example.com"}, emails)
    local by_name = {}
    for _, e in ipairs(all_pages("zq%20one", 5)) do
      if e:find(tag, 1, true) then by_name[#by_name + 1] = e end
    end
    assert.same({tag .. "-zq1@example.com"}, by_name)
  end)
end)

-- The same routes with the real host.crypto, host.jwt and host.password of
-- build/lua/host.so (only the database and mail stay fakes): the scripts
-- and the bindings agree on their contracts.
local kit = require "support.kit"

local function have(name)
  package.cpath = "build/lua/?.so;" .. package.cpath
  local ok = pcall(require, name)
  package.loaded[name] = nil
  return ok
end

local available = have("host.crypto") and have("host.jwt") and have("host.password")
local it_real = available and it or pending

describe("with the real crypto, jwt and password bindings", function()
  local k

  before_each(function()
    if available then k = kit.new({real = {crypto = true, jwt = true, password = true}}) end
  end)

  it_real("registers, confirms, logs in, refreshes and reads /auth/me", function()
    assert.status(201, k:post("/auth/register", {json = {email = "ada@example.com", name = "ada",
                                                         password = kit.PASSWORD}}))
    assert.matches("^%$argon2id%$", k.db.state.admins[1].password_hash)
    assert.status(200, k:get("/auth/confirm?token=" .. kit.link_token(k:last_mail())))
    local login = k:post("/auth/login", {json = {email = "ada@example.com", password = kit.PASSWORD}})
    assert.status(200, login)
    local refreshed = k:post("/auth/refresh", {json = {refresh_token = login.json.refresh_token}})
    assert.status(200, refreshed)
    assert.status(200, k:get("/auth/me", {token = refreshed.json.access_token}))
    assert.status(401, k:post("/auth/refresh", {json = {refresh_token = login.json.refresh_token}}))
  end)

  it_real("refuses a wrong password and an unknown email alike", function()
    k:seed_admin({email = "ada@example.com"})
    local wrong = k:post("/auth/login", {json = {email = "ada@example.com", password = "not it at all"}})
    local unknown = k:post("/auth/login", {json = {email = "nobody@example.com", password = "not it at all"}})
    assert.status(401, wrong)
    assert.same(wrong.json, unknown.json)
  end)

  it_real("refuses an access token where a refresh token is expected", function()
    local s = k:signed_in()
    assert.status(401, k:post("/auth/refresh", {token = s.access}))
    assert.status(401, k:get("/auth/me", {token = s.refresh}))
  end)

  it_real("pages with real HMAC-signed cursors", function()
    local s = k:signed_in()
    k:seed_users(3)
    local first = k:get("/users?limit=2", {token = s.access})
    local second = k:get("/users?limit=2&cursor=" .. kit.url_encode(first.json.next_cursor), {token = s.access})
    assert.equal(1, #second.json.users)
  end)
end)

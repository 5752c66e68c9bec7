-- lib/cursor.lua — opaque pagination cursors. A cursor is
-- base64url("<list>:<last id>") "." HMAC-SHA-256(key, same)[1..32 hex], so a
-- cursor this server did not issue (or one of another list) is refused.
-- The key is derived from CURSOR_SECRET (default JWT_SECRET), so every
-- worker and replica accepts the cursors of the others.
local crypto = require "host.crypto"
local config = require "lib.config"
local log = require "host.log"
local validate = require "lib.validate"

local type, match, sub = type, string.match, string.sub

local cursor = {}

local KEY_CONTEXT = "moonkeep pagination cursor v1"
local MAC_HEX = 32 -- 128 bits of HMAC
local MAX_LENGTH = 200
cursor.MESSAGE = "the cursor is not valid (use next_cursor as it was given)"

local key
local function signing_key()
  if not key then
    if config.cursor_secret then
      key = crypto.hmac_sha256(config.cursor_secret, KEY_CONTEXT)
    else
      -- Only this VM will accept its cursors: fine for one worker in development.
      key = crypto.random_token(32)
      log.warn("neither CURSOR_SECRET nor JWT_SECRET is set; cursors are valid in this worker only")
    end
  end
  return key
end

local function mac(payload)
  return sub(crypto.hmac_sha256(signing_key(), payload), 1, MAC_HEX)
end

-- The cursor that continues list `list` after id `last_id` (decimal string).
function cursor.encode(list, last_id)
  local payload = list .. ":" .. last_id
  return crypto.b64url_encode(payload) .. "." .. mac(payload)
end

-- The last id (decimal string) of a cursor of list `list`, or nil and a message.
function cursor.decode(list, s)
  if type(s) ~= "string" or #s > MAX_LENGTH then return nil, cursor.MESSAGE end
  local encoded, given = match(s, "^([%w_-]+)%.(%x+)$")
  if not encoded then return nil, cursor.MESSAGE end
  local payload = crypto.b64url_decode(encoded)
  if not payload or not crypto.equal(given, mac(payload)) then return nil, cursor.MESSAGE end
  local kind, id = match(payload, "^([%w_]+):(%d+)$")
  if kind ~= list then return nil, cursor.MESSAGE end
  id = validate.id(id)
  if not id then return nil, cursor.MESSAGE end
  return id
end

return cursor

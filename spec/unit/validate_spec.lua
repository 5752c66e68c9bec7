-- lib/validate.lua: the field rules of docs/api.md.
local cjson = require "cjson.safe"
local validate = require "lib.validate"

local null = cjson.null
local MSG = validate.MESSAGES

describe("validate.email", function()
  it("trims and lower-cases", function()
    assert.equal("ada@example.com", validate.email("  Ada@Example.COM\t"))
  end)

  it("accepts a plus and dots in the local part and a subdomain", function()
    assert.equal("ada.l+test@mail.example.co.uk", validate.email("ada.l+test@mail.example.co.uk"))
  end)

  it("accepts exactly 254 characters and refuses 255", function()
    local domain = "@" .. string.rep("d", 63) .. "." .. string.rep("e", 63) .. "." .. string.rep("f", 63) .. ".com"
    local local_part = string.rep("a", 254 - #domain)
    assert.is_true(#local_part <= 64)
    assert.equal(254, #validate.email(local_part .. domain))
    local v, msg = validate.email("b" .. local_part .. domain)
    assert.is_nil(v)
    assert.equal(MSG.email_long, msg)
  end)

  for _, bad in ipairs({
    "ada", "ada@", "@example.com", "ada@@example.com", "a@b@example.com", "ada@example",
    "ada@example.", "ada@.example.com", "ada@example..com", "ada@-example.com", "ada@example-.com",
    "ada example@example.com", "ada@exa mple.com", "ada@example.com\r\nBcc: x@y.z", "ada\0@example.com",
    "ada@1.2.3.4", ".ada@example.com", "ada.@example.com", "a..da@example.com", "<ada>@example.com",
  }) do
    it("refuses " .. string.format("%q", bad), function()
      local v, msg = validate.email(bad)
      assert.is_nil(v)
      assert.is_string(msg)
    end)
  end

  it("refuses a local part over 64 characters", function()
    assert.is_nil(validate.email(string.rep("a", 65) .. "@example.com"))
  end)

  it("says 'must be a string' for a number", function()
    assert.same({nil, MSG.string}, {validate.email(123)})
  end)

  it("says 'is required' for blanks", function()
    assert.same({nil, MSG.required}, {validate.email("   ")})
  end)

  it("refuses invalid UTF-8", function()
    assert.same({nil, MSG.utf8}, {validate.email("ad\255a@example.com")})
  end)

  it("refuses any character beyond ASCII: one spelling per address, and mail goes to ASCII only", function()
    assert.same({nil, MSG.email_ascii}, {validate.email("ada@bücher.example")})
    assert.same({nil, MSG.email_ascii}, {validate.email("jos\195\169@example.com")})
    -- U+212A KELVIN SIGN, which Unicode case folding takes to "k"
    assert.same({nil, MSG.email_ascii}, {validate.email("\226\132\170k@example.com")})
  end)

  it("gives the canonical form: trimmed, ASCII letters lower-cased", function()
    assert.equal("kk@example.com", validate.email("  KK@Example.COM "))
  end)
end)

describe("validate.admin_name", function()
  it("accepts 3 to 32 letters, digits, _ - and .", function()
    assert.equal("Ada_L-1.x", validate.admin_name("Ada_L-1.x"))
    assert.equal("abc", validate.admin_name("abc"))
    assert.equal(string.rep("z", 32), validate.admin_name(string.rep("z", 32)))
  end)

  for _, bad in ipairs({"ab", string.rep("z", 33), "ada lovelace", "ada!", "adä", "", "ada\n"}) do
    it("refuses " .. string.format("%q", bad), function()
      assert.same({nil, MSG.admin_name}, {validate.admin_name(bad)})
    end)
  end

  it("refuses a non-string", function()
    assert.same({nil, MSG.string}, {validate.admin_name(true)})
  end)
end)

describe("validate.user_name", function()
  it("accepts up to 100 characters, counted as code points", function()
    local name = string.rep("é", 100) -- 200 bytes
    assert.equal(name, validate.user_name(name))
    assert.same({nil, MSG.user_name_long}, {validate.user_name(name .. "e")})
  end)

  it("refuses control characters, C1 ones included", function()
    assert.same({nil, MSG.control}, {validate.user_name("Ada\tL")})
    assert.same({nil, MSG.control}, {validate.user_name("Ada\194\133L")})
  end)
end)

describe("validate.password", function()
  it("counts Unicode code points, not bytes", function()
    assert.equal("äöüäöüäö", validate.password("äöüäöüäö")) -- 8 code points, 16 bytes
    assert.same({nil, MSG.password_length}, {validate.password("äöüäöüä")})
    assert.equal(string.rep("€", 128), validate.password(string.rep("€", 128)))
    assert.same({nil, MSG.password_length}, {validate.password(string.rep("€", 129))})
  end)

  for _, bad in ipairs({"\192\128abcdefgh", "abcdefg\237\160\128", "abcdefgh\244\144\128\128", "abcdefgh\128"}) do
    it("refuses invalid UTF-8 " .. string.format("%q", bad), function()
      assert.same({nil, MSG.utf8}, {validate.password(bad)})
    end)
  end
end)

describe("validate.utf8_length", function()
  it("counts code points of valid UTF-8", function()
    assert.equal(0, validate.utf8_length(""))
    assert.equal(4, validate.utf8_length("a\195\169\226\130\172\240\159\152\128"))
  end)

  it("refuses overlong forms, surrogates, truncation and values past U+10FFFF", function()
    assert.is_nil(validate.utf8_length("\193\129"))
    assert.is_nil(validate.utf8_length("\224\128\128"))
    assert.is_nil(validate.utf8_length("\237\160\128"))
    assert.is_nil(validate.utf8_length("\226\130"))
    assert.is_nil(validate.utf8_length("\244\144\128\128"))
  end)
end)

describe("validate.id", function()
  it("returns a canonical decimal string", function()
    assert.equal("42", validate.id("42"))
    assert.equal("42", validate.id("0042"))
    assert.equal("42", validate.id(42))
    assert.equal("9223372036854775807", validate.id("9223372036854775807"))
  end)

  for _, bad in ipairs({"0", "-1", "1.5", "1e3", "abc", "", " 1", "1 ", "9223372036854775808",
                        "99999999999999999999", "0x10", "+1"}) do
    it("refuses " .. string.format("%q", bad), function()
      assert.same({nil, MSG.id}, {validate.id(bad)})
    end)
  end

  it("refuses numbers that are not positive whole numbers in 64 bits", function()
    for _, bad in ipairs({0, -3, 1.5, 2 ^ 63, 0 / 0, math.huge}) do
      assert.is_nil(validate.id(bad))
    end
  end)

  it("refuses other types", function()
    assert.is_nil(validate.id(true))
    assert.is_nil(validate.id(nil))
    assert.is_nil(validate.id({}))
  end)
end)

describe("validate.limit", function()
  it("takes the default when absent", function()
    assert.equal(20, validate.limit(nil, 20))
  end)

  it("accepts 1 to 100", function()
    assert.equal(1, validate.limit("1", 20))
    assert.equal(100, validate.limit("100", 20))
  end)

  for _, bad in ipairs({"0", "101", "-1", "abc", "", "1.5", "10000000000000"}) do
    it("refuses " .. string.format("%q", bad), function()
      assert.same({nil, MSG.limit}, {validate.limit(bad, 20)})
    end)
  end
end)

describe("validate.flag", function()
  it("reads true/false/1/0 and absent as false", function()
    assert.is_true(validate.flag("true"))
    assert.is_true(validate.flag("1"))
    assert.is_false(validate.flag("false"))
    assert.is_false(validate.flag("0"))
    assert.is_false(validate.flag(nil))
    assert.is_nil(validate.flag("yes please"))
  end)
end)

describe("validate.register", function()
  local good = {email = "Ada@Example.com", name = "ada", password = "correct horse battery"}

  it("returns the cleaned input", function()
    assert.same({email = "ada@example.com", name = "ada", password = "correct horse battery"},
                validate.register(good))
  end)

  it("ignores unknown fields", function()
    local input = validate.register({email = "a@example.com", name = "ada", password = "12345678", admin = true})
    assert.is_nil(input.admin)
  end)

  it("names every missing field", function()
    local _, fields = validate.register({})
    assert.same({email = MSG.required, name = MSG.required, password = MSG.required}, fields)
  end)

  it("treats null as missing", function()
    local _, fields = validate.register({email = null, name = "ada", password = "12345678"})
    assert.same({email = MSG.required}, fields)
  end)

  it("names a field of the wrong JSON type", function()
    local _, fields = validate.register({email = 123, name = {}, password = false})
    assert.same({email = MSG.string, name = MSG.string, password = MSG.string}, fields)
  end)

  it("refuses a password equal to the email, whatever its case", function()
    local _, fields = validate.register({email = "ada@example.com", name = "ada", password = "ADA@example.com"})
    assert.same({password = MSG.password_is_email}, fields)
  end)

  it("refuses a password equal to the name", function()
    local _, fields = validate.register({email = "ada@example.com", name = "adalovelace", password = "AdaLovelace"})
    assert.same({password = MSG.password_is_name}, fields)
  end)
end)

describe("validate.admin_update", function()
  local current = {email = "ada@example.com", name = "ada"}

  it("requires current_password to change the email", function()
    local _, fields = validate.admin_update({email = "new@example.com"}, current)
    assert.is_string(fields.current_password)
  end)

  it("requires current_password to change the password", function()
    local _, fields = validate.admin_update({password = "a new password"}, current)
    assert.is_string(fields.current_password)
  end)

  it("does not require it to change the name", function()
    assert.same({name = "ada2"}, validate.admin_update({name = "ada2"}, current))
  end)

  it("treats the same email (in another case) as no change", function()
    assert.same({}, validate.admin_update({email = "ADA@example.com"}, current))
  end)

  it("refuses a new password equal to the new email", function()
    local _, fields = validate.admin_update({email = "new@example.com", password = "new@example.com",
                                            current_password = "x"}, current)
    assert.equal(MSG.password_is_email, fields.password)
  end)
end)

describe("validate.user_create and user_update", function()
  it("defaults name to null and active to true", function()
    assert.same({email = "u@example.com", name = null, active = true}, validate.user_create({email = "u@example.com"}))
  end)

  it("keeps active false", function()
    assert.is_false(validate.user_create({email = "u@example.com", active = false}).active)
  end)

  it("says active must be true or false", function()
    local _, fields = validate.user_create({email = "u@example.com", active = "yes"})
    assert.same({active = MSG.boolean}, fields)
  end)

  it("lets an update clear the name with null", function()
    assert.same({name = null}, validate.user_update({name = null}))
  end)

  it("refuses null for the email of an update", function()
    local _, fields = validate.user_update({email = null})
    assert.same({email = MSG.not_null}, fields)
  end)

  it("returns nothing to change for an empty body", function()
    assert.same({}, validate.user_update({}))
  end)
end)

describe("validate.contains_pattern", function()
  it("escapes LIKE wildcards and the escape character", function()
    assert.equal("%50\\%\\_off\\\\%", validate.contains_pattern("50%_off\\"))
  end)
end)

describe("validate.search", function()
  it("reads absent or empty as no filter", function()
    assert.is_false(validate.search(nil))
    assert.is_false(validate.search(""))
  end)

  it("refuses control characters and overlong text", function()
    assert.is_nil(validate.search("a\nb"))
    assert.is_nil(validate.search(string.rep("a", 255)))
  end)
end)

describe("validate.timestamp", function()
  it("takes RFC 3339 with Z or an offset, and fractions of a second", function()
    for _, t in ipairs({"2026-12-01T13:45:00Z", "2026-12-01t13:45:00z", "2026-12-01T13:45:00.123456Z",
                        "2026-12-01T14:45:00+01:00", "2026-12-01T08:15:00-05:30", "2028-02-29T00:00:00Z",
                        "2000-02-29T23:59:60Z"}) do
      assert.equal(t, validate.timestamp(t), t)
    end
  end)

  it("reads a space before the offset as the + an unencoded query string lost", function()
    assert.equal("2026-12-01T14:45:00+01:00", validate.timestamp("2026-12-01T14:45:00 01:00"))
  end)

  it("refuses dates that do not exist and anything but RFC 3339", function()
    for _, t in ipairs({"2026-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2026-04-31T00:00:00Z",
                        "2026-13-01T00:00:00Z", "2026-00-10T00:00:00Z", "2026-12-01T24:00:00Z",
                        "2026-12-01T13:60:00Z", "2026-12-01T13:45:00", "2026-12-01", "2026-12-01 13:45:00Z",
                        "2026-12-01T13:45:00.Z", "2026-12-01T13:45:00+24:00", "0000-01-01T00:00:00Z",
                        "yesterday", "", string.rep("9", 50)}) do
      local v, msg = validate.timestamp(t)
      assert.is_nil(v, t)
      assert.equal(MSG.timestamp, msg)
    end
  end)
end)

describe("validate.audit_filters", function()
  local actions = {["user.created"] = true}

  it("cleans every filter, and ignores what it does not know", function()
    assert.same({actor = "7", action = "user.created", target_type = "admin", target_id = "3",
                 since = "2026-12-01T13:45:00Z", ["until"] = "2026-12-02T00:00:00Z"},
                validate.audit_filters({actor = "007", action = "user.created", target = "admin:3",
                                        since = "2026-12-01T13:45:00Z", ["until"] = "2026-12-02T00:00:00Z",
                                        other = "x"}, actions))
  end)

  it("names each filter it refuses", function()
    local out, fields = validate.audit_filters({actor = "x", action = "user.gone", target = "user:",
                                                since = "soon"}, actions)
    assert.is_nil(out)
    assert.same({actor = MSG.id, action = MSG.action, target = MSG.target, since = MSG.timestamp}, fields)
  end)
end)

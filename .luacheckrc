-- luacheck configuration (`make lint`). Debian's lua-check 1.1.
-- The service runs on LuaJIT 2.1 (luajit2): the standard is luajit, which
-- knows `jit`, `bit` and LuaJIT's table/string extras.
std = "luajit"

-- Generated and third-party trees are not ours to lint.
exclude_files = {
  "spec/browser/node_modules/**",
  "vendor/node_modules/**",
  "build/**",
  "build-*/**",
  "var/**",
}

-- 140 columns for code and comments (specs spell out a request on one line).
-- A line that is long because of a string literal (an OpenAPI description, an SQL statement, an expected reply body in
-- a spec) is not held to it: splitting the literal with `..` makes it harder to
-- grep for and to compare with docs/api.md.
max_line_length = 140
max_string_line_length = false

-- `self` is implicit in `function obj:method()`; an unused one is not a smell.
self = false

-- scripts/: the host exposes everything as modules (`require "host.db"`,
-- `require "cjson"`, ...), never as globals, so the scripts get no extra
-- globals at all: a stray global is a bug (a missing `local`) or a leak
-- between requests in the same VM.
files["scripts/"] = {
  std = "luajit",
}

-- spec/: busted's globals (describe, it, assert.*, spy, stub, mock, ...).
files["spec/"] = {
  std = "luajit+busted",
}

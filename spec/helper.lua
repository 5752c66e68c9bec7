-- spec/helper.lua — loaded by busted before any spec (.busted). The host's
-- bindings built as a Lua C module come first on the C path, so that
-- `require "host.json"` (and the other host.* modules that exist) loads the
-- real code from build/lua/host.so.
package.cpath = "build/lua/?.so;" .. package.cpath

-- Specs run on the production VM: LuaJIT (busted --lua=luajit).
assert(jit ~= nil, "run the specs under LuaJIT: busted --lua=luajit")

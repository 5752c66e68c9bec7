-- lib/html_pages.lua — the few HTML pages the service serves: the result of a
-- confirmation link opened in a browser, the password reset form, and the
-- Swagger UI shell. Self-contained (no external assets), every value
-- HTML-escaped, inline script and style allowed only by a per-response nonce.
local gsub, format = string.gsub, string.format

local pages = {}

local ESCAPES = {["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;"}

function pages.escape(s)
  return (gsub(tostring(s), "[&<>\"']", ESCAPES))
end
local escape = pages.escape

local STYLE = [[
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem;color:#222}
h1{font-size:1.4rem}label{display:block;margin:.8rem 0 .2rem}
input{width:100%;padding:.5rem;box-sizing:border-box;font-size:1rem}
button{margin-top:1rem;padding:.5rem 1.2rem;font-size:1rem}
.msg{margin-top:1rem}.error{color:#a00}.ok{color:#070}
]]

-- Headers of a page whose inline script/style carry `nonce`: nothing else
-- loads, it cannot be framed, and the token in its URL is not sent on as a
-- Referer.
function pages.headers(nonce)
  local src = nonce and format("'nonce-%s'", nonce) or "'none'"
  return {
    ["Content-Security-Policy"] = format("default-src 'none'; script-src %s; style-src %s; "
      .. "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'", src, src),
    ["Cache-Control"] = "no-store",
    ["Referrer-Policy"] = "no-referrer",
    ["X-Content-Type-Options"] = "nosniff",
    ["X-Frame-Options"] = "DENY",
  }
end

local function document(title, nonce, body, script)
  return format([[<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>%s</title>
<style nonce="%s">%s</style>
</head>
<body>
%s%s
</body>
</html>
]], escape(title), escape(nonce), STYLE, body,
    script and format('\n<script nonce="%s">%s</script>', escape(nonce), script) or "")
end

-- A page with a heading and one paragraph (`ok` picks the colour).
function pages.message(title, text, ok, nonce)
  return document(title, nonce, format('<h1>%s</h1>\n<p class="msg %s">%s</p>',
                                       escape(title), ok and "ok" or "error", escape(text)))
end

local RESET_SCRIPT = [[
(function () {
  var form = document.getElementById("reset");
  var msg = document.getElementById("msg");
  function show(text, ok) { msg.textContent = text; msg.className = "msg " + (ok ? "ok" : "error"); }
  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var password = form.elements.password.value;
    if (password !== form.elements.again.value) { show("The two passwords are not the same."); return; }
    form.elements.submit.disabled = true;
    fetch(window.location.pathname, {
      method: "POST",
      headers: {"Content-Type": "application/json", "Accept": "application/json"},
      body: JSON.stringify({token: form.elements.token.value, password: password})
    }).then(function (res) {
      if (res.status === 204) {
        form.hidden = true;
        show("Your password has been changed. You can log in with it now.", true);
        return;
      }
      return res.json().then(function (body) {
        var err = body && body.error || {};
        var text = err.message || "The password could not be changed.";
        if (err.fields) {
          text += ": " + Object.keys(err.fields).map(function (k) { return k + " " + err.fields[k]; }).join("; ");
        }
        show(text);
      });
    }).catch(function () {
      show("The server could not be reached. Try again.");
    }).then(function () { form.elements.submit.disabled = false; });
  });
})();
]]

-- The reset form: posts {token, password} as JSON to this same path.
function pages.reset_form(token, nonce)
  local body = format([[<h1>Choose a new password</h1>
<form id="reset" autocomplete="off">
<input type="hidden" name="token" value="%s">
<label for="password">New password (8 to 128 characters)</label>
<input id="password" name="password" type="password" minlength="8" maxlength="128" autocomplete="new-password" required autofocus>
<label for="again">The same again</label>
<input id="again" name="again" type="password" minlength="8" maxlength="128" autocomplete="new-password" required>
<button name="submit" type="submit">Set the password</button>
</form>
<p id="msg" class="msg" role="status"></p>]], escape(token))
  return document("Reset your password", nonce, body, RESET_SCRIPT)
end

-- Headers of the Swagger UI shell: its scripts (files under /apidocs/) run
-- only with the response's nonce, styles and images come from this server
-- (images also as data: URLs, which Swagger UI draws its icons with), and
-- "Try it out" talks to this server alone.
--
-- SWAGGER_STYLE_HASH: the one <style> element swagger-ui-bundle.js (5.35.0,
-- vendor/package.json) inserts by itself, allowed by its hash. Another
-- version may insert another: spec/e2e/swagger_spec.lua then fails with the
-- browser's refusal, which names the hash to put here.
local SWAGGER_STYLE_HASH = "'sha256-RL3ie0nH+Lzz2YNqQN83mnU0J1ot4QL7b99vMdIX99w='"

function pages.swagger_headers(nonce)
  local src = format("'nonce-%s'", nonce)
  return {
    ["Content-Security-Policy"] = format("default-src 'none'; script-src %s; style-src 'self' %s %s; "
      .. "img-src 'self' data:; font-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; "
      .. "frame-ancestors 'none'", src, src, SWAGGER_STYLE_HASH),
    ["Cache-Control"] = "no-cache",
    ["Referrer-Policy"] = "no-referrer",
    ["X-Content-Type-Options"] = "nosniff",
    ["X-Frame-Options"] = "DENY",
  }
end

-- The Swagger UI shell: assets and initializer under /apidocs/, each script
-- carrying `nonce`.
function pages.swagger_ui(title, nonce)
  return format([[<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>%s</title>
<link rel="stylesheet" href="/apidocs/swagger-ui.css">
<link rel="icon" type="image/png" href="/apidocs/favicon-32x32.png" sizes="32x32">
<link rel="icon" type="image/png" href="/apidocs/favicon-16x16.png" sizes="16x16">
</head>
<body>
<div id="swagger-ui"></div>
<script nonce="%s" src="/apidocs/swagger-ui-bundle.js" charset="UTF-8"></script>
<script nonce="%s" src="/apidocs/swagger-ui-standalone-preset.js" charset="UTF-8"></script>
<script nonce="%s" src="/apidocs/swagger-initializer.js" charset="UTF-8"></script>
</body>
</html>
]], escape(title), escape(nonce), escape(nonce), escape(nonce))
end

-- Served as /apidocs/swagger-initializer.js (a file, so the page needs no
-- inline script). The token entered under "Authorize" stays in the page's
-- memory: persistAuthorization would keep it in localStorage, where any
-- script of this origin could read it long after.
pages.SWAGGER_INITIALIZER = [[
window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    persistAuthorization: false,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    plugins: [SwaggerUIBundle.plugins.DownloadUrl],
    layout: "StandaloneLayout"
  });
};
]]

return pages

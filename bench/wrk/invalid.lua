-- Invalid: what bots and broken forms send, in turn: malformed JSON (400 malformed_body), a
-- signup breaking the field rules (bad email, scores out of range: 422 validation_failed), and
-- a form post missing most fields (422). Every answer should be 4xx and nothing reaches Prefect.
package.path = os.getenv("BENCH_WRK_DIR") .. "/?.lua;" .. package.path
local common = require("common")
common.install()

local path = "/hooks/christmas-signup"
local json = { ["Content-Type"] = "application/json" }
local form = { ["Content-Type"] = "application/x-www-form-urlencoded" }
local counter = 0

local function body_for(n)
  local kind = n % 3
  if kind == 0 then
    return json, string.format('{"email":"bench-%d@example.com","first_name":"Jo","assessment_score":', n)
  elseif kind == 1 then
    return json, string.format('{"email":"not-an-email-%d","first_name":"Jo","business_name":"Jo Co",'
      .. '"assessment_score":140,"red_systems":1,"orange_systems":1,"yellow_systems":1,"green_systems":0,'
      .. '"gps_score":-5,"money_score":70,"marketing_score":75,"weakest_system_1":"GPS",'
      .. '"weakest_system_2":"Money","revenue_leak_total":624}', n)
  else
    return form, string.format("email=bench-%d%%40example.com&first_name=Jo&assessment_score=abc", n)
  end
end

function request()
  counter = counter + 1
  local headers, body = body_for(counter)
  headers["X-Forwarded-For"] = common.client_address(id, counter)
  return wrk.format("POST", path, headers, body)
end

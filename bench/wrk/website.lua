-- Website: distinct Christmas signups (the 14 fields of README "Try it"; the email is unique per
-- request: run, thread, counter), each from its own X-Forwarded-For address.
package.path = os.getenv("BENCH_WRK_DIR") .. "/?.lua;" .. package.path
local common = require("common")
common.install()

local path = "/hooks/christmas-signup"
local headers = { ["Content-Type"] = "application/json" }
local template = '{"email":"bench-%s-%d-%d@example.com","first_name":"Jo","business_name":"Jo Co %d",'
  .. '"assessment_score":%d,"red_systems":1,"orange_systems":1,"yellow_systems":1,"green_systems":0,'
  .. '"gps_score":50,"money_score":70,"marketing_score":75,"weakest_system_1":"GPS",'
  .. '"weakest_system_2":"Money","revenue_leak_total":%d}'
local counter = 0

function request()
  counter = counter + 1
  headers["X-Forwarded-For"] = common.client_address(id, counter)
  local body = string.format(template, common.run, id, counter, counter, counter % 101, 600 + counter % 1000)
  return wrk.format("POST", path, headers, body)
end

-- Load script of bench/results_load (wrk -s wrk.lua). Arguments after "--":
--   mode (results|echo), token, run id (8 hex), sessions, hot sessions, hot share, ops,
--   nonce (new for every wrk invocation, so keys never repeat across warm-up and run)
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_usec; } fm_timeval;
int gettimeofday(fm_timeval *tv, void *tz);
]]
local tv = ffi.new("fm_timeval")
local function now_ms()
  ffi.C.gettimeofday(tv, nil)
  return tonumber(tv.tv_sec) * 1000 + math.floor(tonumber(tv.tv_usec) / 1000)
end

local thread_count = 0
local threads = {}
function setup(thread)
  thread_count = thread_count + 1
  thread:set("tid", thread_count)
  table.insert(threads, thread)
end

-- Per thread: count of each failing status, and the first failing body.
failures = {}
failure_sample = ""
function response(status, headers, body)
  if status >= 400 then
    local k = tostring(status)
    failures[k] = (failures[k] or 0) + 1
    if failure_sample == "" then failure_sample = string.sub(body or "", 1, 400) end
  end
end

local mode, token, run_id, sessions, hot, hot_share, ops, nonce, prefix, device
local seq, last_ms, counter = 0, 0, 0
local results = {"pass", "fail", "pass", "pass"}

function init(args)
  mode, token, run_id = args[1], args[2], args[3]
  sessions, hot = tonumber(args[4]), tonumber(args[5])
  hot_share, ops, nonce = tonumber(args[6]), tonumber(args[7]), args[8]
  prefix = (mode == "echo") and "/echo/" or "/v1/tests/sessions/"
  device = "bench-" .. run_id .. "-t" .. tid
  math.randomseed(tid * 7919 + now_ms() % 1000003)
end

-- A hybrid logical clock, as a device keeps one.
local function tick()
  local now = now_ms()
  if now > last_ms then
    last_ms, counter = now, 0
  else
    counter = counter + 1
    if counter > 9999 then last_ms, counter = last_ms + 1, 0 end
  end
  return os.date("!%Y-%m-%dT%H:%M:%S", math.floor(last_ms / 1000))
    .. string.format(".%03dZ/%04d", last_ms % 1000, counter)
end

local function session_path()
  local index
  if hot > 0 and math.random() < hot_share then
    index = math.random(0, hot - 1)
  else
    index = hot + math.random(0, sessions - 1)
  end
  return prefix .. string.format("%s-0000-4000-8000-%012d", run_id, index) .. "/results"
end

function request()
  seq = seq + 1
  local asset = "/assets/ext-" .. math.random(1, 40)
  local key = run_id .. "-" .. nonce .. "-" .. tid .. "-" .. seq
  local changes = {}
  for i = 1, ops do
    local ts = tick()
    local op_id = key .. "-" .. i
    local kind = i % 5
    if kind == 1 then
      changes[i] = '{"op":"set","path":"' .. asset .. '/pressure_kpa","value":'
        .. math.random(800, 1400) .. ',"ts":"' .. ts .. '","op_id":"' .. op_id .. '"}'
    elseif kind == 2 then
      changes[i] = '{"op":"set","path":"' .. asset .. '/result","value":"'
        .. results[math.random(1, 4)] .. '","ts":"' .. ts .. '","op_id":"' .. op_id .. '"}'
    elseif kind == 3 then
      changes[i] = '{"op":"set","path":"' .. asset .. '/inspected_at","value":"' .. ts
        .. '","ts":"' .. ts .. '","op_id":"' .. op_id .. '"}'
    elseif kind == 4 then
      changes[i] = '{"op":"set","path":"' .. asset .. '/note' .. i
        .. '","value":"gauge in green, seal intact","ts":"' .. ts .. '","op_id":"' .. op_id .. '"}'
    else
      changes[i] = '{"op":"delete","path":"' .. asset .. '/defect' .. i .. '","ts":"' .. ts
        .. '","op_id":"' .. op_id .. '"}'
    end
  end
  local body = '{"device_id":"' .. device .. '","changes":[' .. table.concat(changes, ",") .. "]}"
  local headers = {["Content-Type"] = "application/json", ["Idempotency-Key"] = key}
  if mode == "results" then headers["Authorization"] = "Bearer " .. token end
  return wrk.format("POST", session_path(), headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  local statuses = {}
  for _, thread in ipairs(threads) do
    for k, v in pairs(thread:get("failures") or {}) do
      statuses[#statuses + 1] = '"' .. k .. '":' .. v
    end
    local sample = thread:get("failure_sample")
    if sample and sample ~= "" then io.write("FMSAMPLE " .. sample:gsub("\n", " ") .. "\n") end
  end
  io.write("FMSTATUS {" .. table.concat(statuses, ",") .. "}\n")
  io.write(string.format(
    'FMJSON {"requests":%d,"duration_us":%d,"status_errors":%d,"connect_errors":%d,'
    .. '"read_errors":%d,"write_errors":%d,"timeouts":%d,"p50_us":%d,"p95_us":%d,'
    .. '"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99),
    latency.max, latency.mean))
end

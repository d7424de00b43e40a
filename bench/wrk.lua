-- wrk script for `make bench`: optional list of requests, and a JSON summary on stdout.
-- Usage: wrk -t THREADS ... -s bench/wrk.lua URL -- [requests-file THREADS]
-- The requests file holds one "path?query<TAB>xml-body" per line (a POST), each unique (MsgId,
-- user, nonce), so the bot does its full work for every request; or one path per line (a GET,
-- e.g. a link of its own per download); of T threads, thread i takes lines i, i+T, ... (each
-- line once until the file wraps; T must be wrk's -t, or lines are skipped and others reused).
local lines = {}
local counter = 0
local threads = {}
local step = 16

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  step = tonumber(args[2]) or step
  if args[1] then
    for line in io.lines(args[1]) do
      lines[#lines + 1] = line
    end
  end
end

function request()
  if #lines == 0 then
    return wrk.format()
  end
  local index = (id + counter * step) % #lines + 1
  counter = counter + 1
  local target, body = lines[index]:match("^([^\t]*)\t(.*)$")
  if target == nil then
    return wrk.format("GET", lines[index])
  end
  return wrk.format("POST", target, {["Content-Type"] = "text/xml"}, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests": %d, "bytes": %d, "duration_us": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.bytes, summary.duration, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(99), latency.max))
end

/**
 * The whole decision in one script, so it is atomic: no other client can slip a hit between the
 * count and the add, whatever the number of callers or server instances (no over-admission).
 * Time comes from the Redis server (TIME), so every instance shares one clock and app-server
 * clock skew cannot widen or shrink the window.
 *
 * KEYS[i]      sorted set of admitted hits of the i-th counter, score = Redis time in µs
 * ARGV[1]      member, unique per call (instance nonce + sequence): two hits in the same
 *              microsecond must stay two members (one call adds it to each counter it admits)
 * ARGV[2i]     the i-th counter's limit
 * ARGV[2i + 1] its window in microseconds
 *
 * The counters are taken in order and the first that refuses ends the call: the ones after it
 * are not counted, as when they were hit one by one and the caller stopped at the refusal, but in
 * one round trip. Only admitted hits are recorded: a refused hit writes nothing, so hammering
 * while refused does not push the window forward; the client gets in again when its oldest
 * admitted hit expires. A set therefore never holds more than its limit. PEXPIRE drops idle keys.
 *
 * Returns, per counter taken: allowed (0|1), count in window after this hit, microseconds until
 * the oldest counted hit leaves the window (0 when none); flattened, three numbers each.
 */
export const SLIDING_WINDOW_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {}
for i = 1, #KEYS do
  local key = KEYS[i]
  local limit = tonumber(ARGV[2 * i])
  local window = tonumber(ARGV[2 * i + 1])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local count = redis.call('ZCARD', key)
  local allowed = 0
  if count < limit then
    redis.call('ZADD', key, now, ARGV[1])
    redis.call('PEXPIRE', key, math.ceil(window / 1000))
    count = count + 1
    allowed = 1
  end
  local reset = 0
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if oldest[2] then
    reset = tonumber(oldest[2]) + window - now
  end
  out[#out + 1] = allowed
  out[#out + 1] = count
  out[#out + 1] = reset
  if allowed == 0 then break end
end
return out
`;

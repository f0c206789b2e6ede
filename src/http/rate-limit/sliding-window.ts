/**
 * The whole decision in one script, so it is atomic: no other client can slip a hit between the
 * count and the add, whatever the number of callers or server instances (no over-admission).
 * Time comes from the Redis server (TIME), so every instance shares one clock and app-server
 * clock skew cannot widen or shrink the window.
 *
 * KEYS[1]  sorted set of admitted hits, score = Redis time in microseconds
 * ARGV[1]  limit
 * ARGV[2]  window in microseconds
 * ARGV[3]  member, unique per call (instance nonce + sequence): two hits in the same
 *          microsecond must stay two members
 *
 * Only admitted hits are recorded: a refused hit writes nothing, so hammering while refused does
 * not push the window forward; the client gets in again when its oldest admitted hit expires.
 * The set therefore never holds more than `limit` members. PEXPIRE drops idle keys.
 *
 * Returns { allowed (0|1), count in window after this hit, microseconds until the oldest counted
 * hit leaves the window (0 when none) }.
 */
export const SLIDING_WINDOW_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
local allowed = 0
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000))
  count = count + 1
  allowed = 1
end
local reset = 0
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if oldest[2] then
  reset = tonumber(oldest[2]) + window - now
end
return { allowed, count, reset }
`;

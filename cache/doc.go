// Package cache stores opaque byte values for the gateway: ONNX model bytes
// addressed by their SHA-256, and the small mapping values that resolve
// (task, supernet version, canonical budgets) to a model id. It knows no
// model; callers build the keys and interpret the bytes.
//
// # Tiers
//
// [Memory] is an in-process LRU bounded by total bytes (key + value length)
// and optionally by entry count. It is always present and is the only tier
// when the gateway runs without --redis.
//
// [Redis] wraps a go-redis client built from a URL. Every key is stored under
// a prefix (e.g. "natgw:") so several deployments can share one server;
// values are stored as-is.
//
// [Tiered] puts Memory in front of an optional Redis: Get reads the memory
// tier, then Redis (filling memory with the remaining Redis TTL); Set writes
// both. Redis failures never reach the caller: a small circuit breaker skips
// Redis for a backoff that doubles up to a cap of a few seconds, then probes
// again (go-redis reconnects by itself). The breaker logs once per state
// change and counts every error in [Metrics].
//
// [Group] is the single-flight loader. Identical concurrent misses within a
// process share one call (golang.org/x/sync/singleflight); across replicas
// sharing one Redis, a lock (SET NX PX with a random token, released by a
// compare-and-delete script, kept alive while loading) elects one loader and
// the others poll the cache until the value appears, they win the lock (the
// holder vanished and its lock expired, or its load failed), or MaxWait runs
// out, when they load themselves. With Redis down only process-local
// deduplication remains.
//
// # Keys
//
// Callers choose the keys. The suggested layout is "model:<sha256 hex>" for
// model bytes and "map:<task>:<supernet version>:<canonical budgets>" for
// mappings. Keys beginning with "lock:" are reserved for [Redis.Lock].
// Redis sees prefix+key; the memory tier sees key.
//
// # TTL policy and eviction
//
// A TTL of 0 means no expiry. Mapping keys get a TTL (minutes to hours) so a
// re-trained subnet replaces an old mapping on every replica within that
// bound: a Set or Delete on one replica does not invalidate the memory tier
// of the others. Model bytes are content-addressed, hence never stale; they
// get a long TTL (days) or none.
//
// The memory tier evicts least-recently-used entries when the byte or entry
// cap is exceeded, drops expired entries lazily, and does not store an entry
// larger than its byte cap. Redis expires keys by TTL and, beyond that, relies
// on the server's maxmemory policy (allkeys-lru or volatile-lru are
// suitable); a value evicted from Redis is simply loaded again.
//
// Returned slices are shared with the cache: callers must not modify them.
package cache

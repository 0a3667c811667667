package cache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisOptions configures a [Redis].
type RedisOptions struct {
	// URL is a redis:// or rediss:// URL as accepted by redis.ParseURL.
	URL string
	// Prefix is prepended to every key, e.g. "natgw:".
	Prefix string
	// DialTimeout, ReadTimeout and WriteTimeout default to 200 ms (unless set
	// in the URL, e.g. ?read_timeout=1s) so a dead server costs little before
	// the breaker in [Tiered] takes over. Read and write timeouts bound the
	// transfer of a whole value: raise them when model bytes are large or the
	// link is slow, or a big value will look like an outage.
	DialTimeout, ReadTimeout, WriteTimeout time.Duration
}

const defaultRedisTimeout = 200 * time.Millisecond

// Redis is a [Store] on a Redis server. It also provides cross-replica locks.
type Redis struct {
	client *redis.Client
	prefix string
	unlock *redis.Script
	extend *redis.Script
}

// NewRedis parses opts.URL and returns a client; it does not connect yet.
func NewRedis(opts RedisOptions) (*Redis, error) {
	ro, err := redis.ParseURL(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("cache: parse redis url: %w", err)
	}
	ro.DialTimeout = pickTimeout(opts.DialTimeout, ro.DialTimeout)
	ro.ReadTimeout = pickTimeout(opts.ReadTimeout, ro.ReadTimeout)
	ro.WriteTimeout = pickTimeout(opts.WriteTimeout, ro.WriteTimeout)
	ro.ContextTimeoutEnabled = true
	// The breaker in Tiered decides when to try again; go-redis retries would
	// only multiply the latency of a dead server.
	if ro.MaxRetries == 0 {
		ro.MaxRetries = -1
	}
	if ro.DialerRetries == 0 {
		ro.DialerRetries = 1 // one dial attempt per call; default 5 with 100 ms pauses
	}
	ro.DisableIdentity = true
	return NewRedisClient(redis.NewClient(ro), opts.Prefix), nil
}

func pickTimeout(explicit, fromURL time.Duration) time.Duration {
	switch {
	case explicit != 0:
		return explicit
	case fromURL != 0:
		return fromURL
	default:
		return defaultRedisTimeout
	}
}

// NewRedisClient wraps an existing client; keys are stored under prefix.
func NewRedisClient(c *redis.Client, prefix string) *Redis {
	return &Redis{
		client: c,
		prefix: prefix,
		unlock: redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`),
		extend: redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end return 0`),
	}
}

// Client returns the underlying client (for health checks and metrics).
func (r *Redis) Client() *redis.Client { return r.client }

// Close closes the client's connections.
func (r *Redis) Close() error { return r.client.Close() }

// Ping checks that the server answers.
func (r *Redis) Ping(ctx context.Context) error {
	if err := r.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("cache: redis ping: %w", err)
	}
	return nil
}

// Get returns the value stored under prefix+key.
func (r *Redis) Get(ctx context.Context, key string) ([]byte, bool, error) {
	v, err := r.client.Get(ctx, r.prefix+key).Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("cache: redis get %q: %w", key, err)
	}
	return v, true, nil
}

// getTTL reads the value and its remaining TTL in one round trip.
func (r *Redis) getTTL(ctx context.Context, key string) ([]byte, time.Duration, bool, error) {
	pipe := r.client.Pipeline()
	get := pipe.Get(ctx, r.prefix+key)
	pttl := pipe.PTTL(ctx, r.prefix+key)
	_, err := pipe.Exec(ctx)
	if errors.Is(get.Err(), redis.Nil) {
		return nil, 0, false, nil
	}
	if err != nil {
		return nil, 0, false, fmt.Errorf("cache: redis get %q: %w", key, err)
	}
	v, _ := get.Bytes()
	ttl := pttl.Val()
	switch {
	case ttl == -2: // expired between the two commands
		return nil, 0, false, nil
	case ttl < 0: // -1: no expiry
		ttl = 0
	}
	return v, ttl, true, nil
}

// Set stores val under prefix+key with ttl (0: no expiry).
func (r *Redis) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	if ttl < 0 {
		return ErrNegativeTTL
	}
	if err := r.client.Set(ctx, r.prefix+key, val, ttl).Err(); err != nil {
		return fmt.Errorf("cache: redis set %q: %w", key, err)
	}
	return nil
}

// Delete removes prefix+key.
func (r *Redis) Delete(ctx context.Context, key string) error {
	if err := r.client.Del(ctx, r.prefix+key).Err(); err != nil {
		return fmt.Errorf("cache: redis delete %q: %w", key, err)
	}
	return nil
}

var _ Store = (*Redis)(nil)

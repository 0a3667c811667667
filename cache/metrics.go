package cache

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the cache's Prometheus collectors. The caller registers them
// on its own registry (see Collectors); any field may be nil.
type Metrics struct {
	// Hits and Misses count lookups by tier, label "tier" = memory|redis.
	Hits, Misses *prometheus.CounterVec
	// RedisErrors counts failed Redis calls (the breaker skips Redis after one).
	RedisErrors prometheus.Counter
	// Loads counts load calls made by a Group.
	Loads prometheus.Counter
}

// NewMetrics creates unregistered collectors named <namespace>_cache_*.
func NewMetrics(namespace string) *Metrics {
	return &Metrics{
		Hits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "cache", Name: "hits_total",
			Help: "Cache lookups answered by a tier.",
		}, []string{"tier"}),
		Misses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "cache", Name: "misses_total",
			Help: "Cache lookups a tier could not answer.",
		}, []string{"tier"}),
		RedisErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "cache", Name: "redis_errors_total",
			Help: "Failed Redis calls; the cache kept serving from memory.",
		}),
		Loads: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "cache", Name: "loads_total",
			Help: "Values computed by the single-flight loader after a miss.",
		}),
	}
}

// Collectors lists the non-nil collectors, for registry.MustRegister.
func (m *Metrics) Collectors() []prometheus.Collector {
	var cs []prometheus.Collector
	if m.Hits != nil {
		cs = append(cs, m.Hits)
	}
	if m.Misses != nil {
		cs = append(cs, m.Misses)
	}
	if m.RedisErrors != nil {
		cs = append(cs, m.RedisErrors)
	}
	if m.Loads != nil {
		cs = append(cs, m.Loads)
	}
	return cs
}

func (m *Metrics) hit(tier string) {
	if m != nil && m.Hits != nil {
		m.Hits.WithLabelValues(tier).Inc()
	}
}

func (m *Metrics) miss(tier string) {
	if m != nil && m.Misses != nil {
		m.Misses.WithLabelValues(tier).Inc()
	}
}

func (m *Metrics) redisError() {
	if m != nil && m.RedisErrors != nil {
		m.RedisErrors.Inc()
	}
}

func (m *Metrics) load() {
	if m != nil && m.Loads != nil {
		m.Loads.Inc()
	}
}

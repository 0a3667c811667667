package gateway

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/natgw/natgw/cache"
)

// metrics are the gateway's Prometheus collectors, on the server's own registry.
type metrics struct {
	registry       *prometheus.Registry
	requests       *prometheus.HistogramVec
	exports        *prometheus.CounterVec
	queueSeconds   prometheus.Histogram
	computeSeconds prometheus.Histogram
	sessionLoads   prometheus.Histogram
	batchSize      prometheus.Histogram
	sessions       prometheus.GaugeFunc
	cache          *cache.Metrics
}

func newMetrics(liveSessions func() float64) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "natgw", Name: "http_request_duration_seconds",
			Help:    "HTTP request latency by route and status code.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "code"}),
		exports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "natgw", Name: "model_exports_total",
			Help: "ONNX exports: models made once per arch, or made again after the cache lost their bytes.",
		}, []string{"task"}),
		queueSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "natgw", Name: "inference_queue_seconds",
			Help:    "Time an inference request waited for its batch to start.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		computeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "natgw", Name: "inference_compute_seconds",
			Help:    "onnxruntime time per batch.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		sessionLoads: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "natgw", Name: "session_load_seconds",
			Help:    "Time to fetch, compile and warm an onnxruntime session on its first request (not in inference_compute_seconds).",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 12),
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "natgw", Name: "inference_batch_size",
			Help:    "Images per onnxruntime run.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64},
		}),
		sessions: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "natgw", Name: "sessions_resident",
			Help: "onnxruntime sessions alive in this process.",
		}, liveSessions),
		cache: cache.NewMetrics("natgw"),
	}
	m.registry.MustRegister(m.requests, m.exports, m.queueSeconds, m.computeSeconds, m.sessionLoads, m.batchSize, m.sessions,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.registry.MustRegister(m.cache.Collectors()...)
	// Expose every tier from the start so dashboards see zeros, not gaps.
	for _, tier := range []string{"memory", "redis"} {
		m.cache.Hits.WithLabelValues(tier)
		m.cache.Misses.WithLabelValues(tier)
	}
	return m
}

package log

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the log's own Prometheus metrics, in a registry of their own
// (so that several logs can run in one process, as in tests).
type metrics struct {
	reg          *prometheus.Registry
	added        *prometheus.CounterVec
	receipt      prometheus.Histogram
	publish      prometheus.Histogram
	size         prometheus.Gauge
	tiled        prometheus.Gauge
	backlog      prometheus.Gauge
	stalled      prometheus.Gauge
	publishErrs  prometheus.Counter
	integrity    prometheus.Counter
	scrubIndex   prometheus.Gauge
	attributed   prometheus.Gauge
	scrubPasses  prometheus.Counter
	httpRequests *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		added: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "evident_entries_added_total",
			Help: "Entries accepted by add-entry, by result (new or duplicate).",
		}, []string{"result"}),
		receipt: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "evident_add_entry_seconds",
			Help:    "Time from an add-entry request to its receipt.",
			Buckets: prometheus.ExponentialBuckets(0.01, 1.6, 16),
		}),
		publish: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "evident_publish_seconds",
			Help:    "Time to verify, sign, cosign and store a new checkpoint.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		size: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "evident_published_tree_size",
			Help: "Size of the latest published checkpoint.",
		}),
		tiled: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "evident_tiled_tree_size",
			Help: "Size of the tree the log's tiler has hashed and stored as tiles.",
		}),
		backlog: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "evident_backlog_entries",
			Help: "Entries accepted here and not yet covered by a published checkpoint (estimate).",
		}),
		stalled: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "evident_publisher_stalled",
			Help: "1 when the publisher stopped because Trillian's tree is inconsistent with a published checkpoint.",
		}),
		publishErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "evident_publish_errors_total",
			Help: "Publisher rounds that failed.",
		}),
		integrity: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "evident_integrity_failures_total",
			Help: "Checks of stored data that failed (a leaf, proof or root that does not verify, or damaged storage); /healthz is red after the first.",
		}),
		scrubIndex: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "evident_scrub_index",
			Help: "How far the scrubber's current pass has re-read and re-hashed the log (entries).",
		}),
		attributed: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "evident_attributed_entries",
			Help: "Entries whose tenants are recorded for listing (GET /v1/tenant/entries); below evident_published_tree_size while attribution catches up.",
		}),
		scrubPasses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "evident_scrub_passes_total",
			Help: "Complete scrubber passes that found every entry and checkpoint root in order.",
		}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "evident_http_requests_total",
			Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
	}
	m.reg.MustRegister(m.added, m.receipt, m.publish, m.size, m.tiled, m.backlog, m.stalled, m.publishErrs, m.integrity, m.scrubIndex, m.attributed, m.scrubPasses, m.httpRequests)
	return m
}

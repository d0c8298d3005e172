package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/veil-ipsec/veil/core/control/controlpb"
	"github.com/veil-ipsec/veil/core/ikesa"
)

// metricsCollector reads the engine's state at scrape time, so the numbers
// are never stale and the engine keeps no Prometheus objects.
type metricsCollector struct {
	sas   func() []*controlpb.IKESA
	stats func() ikesa.Stats

	ikeSAs, childSAs, handshakes, rekeys, retransmits, dpd, drops, bytes, packets *prometheus.Desc
}

func newMetricsCollector(sas func() []*controlpb.IKESA, stats func() ikesa.Stats) *metricsCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("veil_"+name, help, labels, nil)
	}
	return &metricsCollector{sas: sas, stats: stats,
		ikeSAs:      d("ike_sas", "IKE SAs by state.", "state"),
		childSAs:    d("child_sas", "Child SAs by state.", "state"),
		handshakes:  d("handshakes_total", "IKE handshakes by result (ok, or the failure reason).", "result"),
		rekeys:      d("rekeys_total", "Rekeys by kind (ike, child, collision).", "kind"),
		retransmits: d("retransmits_total", "IKE requests retransmitted."),
		dpd:         d("dpd_total", "Dead peer detection: probes sent and peers declared dead.", "event"),
		drops:       d("dropped_packets_total", "IKE packets dropped, by reason.", "reason"),
		bytes:       d("child_bytes_total", "Bytes through each Child SA.", "connection", "child", "direction"),
		packets:     d("child_packets_total", "Packets through each Child SA.", "connection", "child", "direction"),
	}
}

func (m *metricsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.ikeSAs, m.childSAs, m.handshakes, m.rekeys, m.retransmits, m.dpd, m.drops, m.bytes, m.packets} {
		ch <- d
	}
}

func (m *metricsCollector) Collect(ch chan<- prometheus.Metric) {
	ike, child := map[string]float64{}, map[string]float64{}
	for _, s := range m.sas() {
		ike[s.State]++
		for _, c := range s.Children {
			child[c.State]++
			for _, dir := range []struct {
				name           string
				bytes, packets uint64
			}{{"in", c.BytesIn, c.PacketsIn}, {"out", c.BytesOut, c.PacketsOut}} {
				ch <- prometheus.MustNewConstMetric(m.bytes, prometheus.CounterValue, float64(dir.bytes), s.Name, c.Name, dir.name)
				ch <- prometheus.MustNewConstMetric(m.packets, prometheus.CounterValue, float64(dir.packets), s.Name, c.Name, dir.name)
			}
		}
	}
	for st, n := range ike {
		ch <- prometheus.MustNewConstMetric(m.ikeSAs, prometheus.GaugeValue, n, st)
	}
	for st, n := range child {
		ch <- prometheus.MustNewConstMetric(m.childSAs, prometheus.GaugeValue, n, st)
	}
	st := m.stats()
	for k, v := range st.Handshakes {
		ch <- prometheus.MustNewConstMetric(m.handshakes, prometheus.CounterValue, float64(v), k)
	}
	for k, v := range st.Rekeys {
		ch <- prometheus.MustNewConstMetric(m.rekeys, prometheus.CounterValue, float64(v), k)
	}
	for k, v := range st.Drops {
		ch <- prometheus.MustNewConstMetric(m.drops, prometheus.CounterValue, float64(v), k)
	}
	ch <- prometheus.MustNewConstMetric(m.retransmits, prometheus.CounterValue, float64(st.Retransmits))
	ch <- prometheus.MustNewConstMetric(m.dpd, prometheus.CounterValue, float64(st.DPDSent), "sent")
	ch <- prometheus.MustNewConstMetric(m.dpd, prometheus.CounterValue, float64(st.DPDTimeouts), "timeout")
}

// pluginRPCSeconds is the plugin call latency histogram, fed by the host.
var pluginRPCSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
	Name:    "veil_plugin_rpc_seconds",
	Help:    "Latency of calls to plugins.",
	Buckets: prometheus.ExponentialBuckets(50e-6, 2, 16),
}, []string{"kind", "name", "method", "result"})

// observePluginCall feeds pluginRPCSeconds (pluginhost.Options.OnCall).
func observePluginCall(kind, name, method string, d time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	pluginRPCSeconds.WithLabelValues(kind, name, method, result).Observe(d.Seconds())
}

// serveMetrics serves /metrics on addr until ctx ends.
func serveMetrics(ctx context.Context, addr string, c prometheus.Collector, log *slog.Logger) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c, pluginRPCSeconds, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics endpoint stopped", "err", err)
		}
	}()
	log.Info("metrics endpoint listening", "addr", l.Addr().String())
	return nil
}

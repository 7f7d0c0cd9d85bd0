package interop

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/internal/pyro4test"
)

// scrape reads the dispatcher's Prometheus exposition as a scraper would.
func scrape(t *testing.T, p *proxy) map[string]*dto.MetricFamily {
	t.Helper()
	ts := httptest.NewServer(promhttp.HandlerFor(p.srv.Metrics().Registry, promhttp.HandlerOpts{}))
	defer ts.Close()
	resp, err := http.Get(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// sample returns the value of the series of family name with exactly these labels (a
// counter's or gauge's value, a histogram's count), -1 when there is none.
func sample(fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		match := true
		for _, lp := range m.GetLabel() {
			if labels[lp.GetName()] != lp.GetValue() {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return -1
}

// Known traffic from a real Pyro4 client, then the exposition: exact counts of calls by
// outcome, of the duration histogram, of connections accepted and refused, of the
// handshake cache; member health; and no lint problem in any metric.
func TestMetricsExact(t *testing.T) {
	requirePyro4(t)
	backend := sessDaemon(t)
	for _, mode := range []string{config.ModeSession, config.ModePooled, sessPipelined} {
		t.Run(mode, func(t *testing.T) {
			p := startProxy(t, backend, func(c *config.Config) {
				c.Admin.Listen = "127.0.0.1:0"
				l := &c.Listeners[0]
				l.Mode = mode
				if mode == sessPipelined {
					l.Mode, l.Pool.Pipeline = config.ModePooled, sessPipeline
				}
				l.Routes = []config.Route{{Match: config.Match{Object: config.StringList{"blocked.*"}}, Deny: "blocked here"}}
				if l.Mode == config.ModePooled {
					l.Routes = append(l.Routes, config.Route{Match: config.Match{Method: config.StringList{"add"}}, Deny: "no adding"})
				}
			})
			out, _ := pyro4test.RunPython(t, script(t, "metrics_client.py"), nil, p.addr)
			var res map[string]int
			if err := json.Unmarshal(out, &res); err != nil {
				t.Fatalf("metrics_client.py printed %q: %v", out, err)
			}
			member := map[string]string{"listener": "test", "group": "test", "member": backend}
			with := func(k, v string) map[string]string {
				m := map[string]string{k: v}
				for a, b := range member {
					m[a] = b
				}
				return m
			}
			ok, denied, accepted, hits := 9.0, 0.0, 2.0, -1.0
			if mode != config.ModeSession {
				ok, denied, accepted, hits = 7, 2, 4, 2
			}
			if res["ok"] != int(ok) || res["exceptions"] != 3 || res["denied"] != int(denied) || res["refused_connect"] != 1 {
				t.Fatalf("the client saw %v", res)
			}
			fams := scrape(t, p)
			for _, c := range []struct {
				name   string
				labels map[string]string
				want   float64
			}{
				{"pyro_dispatch_calls_total", with("outcome", "ok"), ok},
				{"pyro_dispatch_calls_total", with("outcome", "exception"), 3},
				{"pyro_dispatch_calls_total", with("outcome", "oneway"), 1},
				{"pyro_dispatch_calls_total", with("outcome", "backend_lost"), 0},
				{"pyro_dispatch_call_duration_seconds", member, ok + 3 + 1},
				{"pyro_dispatch_client_connections_accepted_total", map[string]string{"listener": "test"}, accepted},
				{"pyro_dispatch_client_connections_refused_total", map[string]string{"listener": "test", "cause": "denied"}, 1},
				{"pyro_dispatch_backend_up", map[string]string{"group": "test", "member": backend}, 1},
				{"pyro_dispatch_handshake_cache_total", map[string]string{"listener": "test", "result": "hit"}, hits},
			} {
				if got := sample(fams, c.name, c.labels); got != c.want {
					t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
				}
			}
			if mode != config.ModeSession {
				none := map[string]string{"listener": "test", "group": "none", "member": "none", "outcome": "denied"}
				if got := sample(fams, "pyro_dispatch_calls_total", none); got != denied {
					t.Errorf("denied calls = %v, want %v", got, denied)
				}
			}
			if problems, err := testutil.GatherAndLint(p.srv.Metrics().Registry); err != nil || len(problems) > 0 {
				t.Errorf("metric lint: %v %v", problems, err)
			}
		})
	}
}

package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestHTTP(t *testing.T) {
	reg := prometheus.NewRegistry()
	h, err := NewHTTP(reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewHTTP(reg); err == nil {
		t.Error("registered twice in one registry without an error")
	}
	s := h.Listener("web")
	for _, code := range []int{200, 200, 404, 700} {
		s.Begin()
		s.Done(code, time.Millisecond)
	}
	s.Begin()
	var none *HTTPStats
	none.Begin()
	none.Done(200, time.Second)
	const want = `
# HELP pyro_dispatch_http_requests_in_flight HTTP gateway requests being served, by listener.
# TYPE pyro_dispatch_http_requests_in_flight gauge
pyro_dispatch_http_requests_in_flight{listener="web"} 1
# HELP pyro_dispatch_http_requests_total HTTP gateway requests, by listener and status code.
# TYPE pyro_dispatch_http_requests_total counter
pyro_dispatch_http_requests_total{code="200",listener="web"} 2
pyro_dispatch_http_requests_total{code="404",listener="web"} 1
pyro_dispatch_http_requests_total{code="700",listener="web"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "pyro_dispatch_http_requests_total", "pyro_dispatch_http_requests_in_flight"); err != nil {
		t.Error(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		s.Done(200, time.Millisecond)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per recorded request, want 0", allocs)
	}
}

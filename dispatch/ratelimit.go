package dispatch

import (
	"fmt"
	"strconv"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"

	"github.com/pyro-dispatch/pyro-dispatch/config"
)

// rateTableSize bounds how many client IPs' rate limiters are remembered: memory stays
// bounded however many addresses connect; the least recently seen IP's limiters are
// forgotten first (and start full again if it returns).
const rateTableSize = 1 << 16

// rates holds the per-client-IP token buckets of limits.calls_per_second_per_ip and
// limits.connections_per_second_per_ip. Safe for concurrent use.
type rates struct {
	cfg   config.Limits
	table *lru.Cache[string, *ipRates]
}

// ipRates are one client IP's buckets, shared by its connections; nil when that limit
// is off.
type ipRates struct {
	calls, connects *rate.Limiter
}

// newRates returns nil when no rate limit is configured.
func newRates(lim config.Limits) *rates {
	if lim.CallsPerSecondPerIP <= 0 && lim.ConnectionsPerSecondPerIP <= 0 {
		return nil
	}
	table, _ := lru.New[string, *ipRates](rateTableSize) // only a size <= 0 fails
	return &rates{cfg: lim, table: table}
}

// of returns the buckets of client IP ip (nil on unix sockets, or without limits).
func (r *rates) of(ip string) *ipRates {
	if r == nil || ip == "" {
		return nil
	}
	if b, ok := r.table.Get(ip); ok {
		return b
	}
	b := &ipRates{}
	if r.cfg.CallsPerSecondPerIP > 0 {
		b.calls = rate.NewLimiter(rate.Limit(r.cfg.CallsPerSecondPerIP), r.cfg.Burst)
	}
	if r.cfg.ConnectionsPerSecondPerIP > 0 {
		b.connects = rate.NewLimiter(rate.Limit(r.cfg.ConnectionsPerSecondPerIP), r.cfg.ConnectionBurst)
	}
	if prev, ok, _ := r.table.PeekOrAdd(ip, b); ok { // another connection added it first
		return prev
	}
	return b
}

// connectRefusal is the CONNECTFAIL reason for a new connection of an IP over its
// connection rate, "" when it may connect.
func (b *ipRates) connectRefusal(r *rates, ip string) string {
	if b == nil || b.connects == nil || b.connects.Allow() {
		return ""
	}
	return "pyro-dispatch: connection rate limit of " + formatRate(r.cfg.ConnectionsPerSecondPerIP) +
		"/s per client IP exceeded by " + ip + " (burst " + strconv.Itoa(r.cfg.ConnectionBurst) + ")"
}

// callAllowed takes a token for one call.
func (b *ipRates) callAllowed() bool {
	return b == nil || b.calls == nil || b.calls.Allow()
}

// callRefusal is the error a call over its IP's rate gets.
func (r *rates) callRefusal(ip string) error {
	return &rateError{fmt.Sprintf("pyro-dispatch: rate limit of %s calls/s per client IP exceeded by %s (burst %d)",
		formatRate(r.cfg.CallsPerSecondPerIP), ip, r.cfg.Burst)}
}

// rateError is a call refused by a rate limit: logged at debug level only, as a client
// over its rate may make many.
type rateError struct{ reason string }

func (e *rateError) Error() string { return e.reason }

func formatRate(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

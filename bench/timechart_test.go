package bench

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestTimeChart(t *testing.T) {
	mins := func(m ...float64) []time.Duration {
		var d []time.Duration
		for _, v := range m {
			d = append(d, time.Duration(v*float64(time.Minute)))
		}
		return d
	}
	c := &TimeChart{
		Title: "soak <run>", Subtitle: "3 panels", Foot: "foot", End: 30 * time.Minute,
		Panels: []TimePanel{
			{Title: "RSS", Format: func(v float64) string { return formatShort(v) + " MiB" },
				Series: []TimeSeries{{Name: "rss", At: mins(0, 10, 30), V: []float64{40, 55, 42}}},
				Band:   &[2]float64{0, 44}, BandLabel: "baseline +10%"},
			{Title: "calls", Series: []TimeSeries{{Name: "ok", At: mins(0, 30), V: []float64{900, 1000}}, {Name: "failed", At: mins(0, 30), V: []float64{0, 3}}}},
		},
		Marks:     []TimeMark{{At: 5 * time.Minute, Kind: 1, Title: "backend_kill 1"}},
		MarkKinds: []string{"reload", "backend_kill"},
		Spans:     []TimeSpan{{0, time.Minute, "warm-up"}, {time.Minute, 28 * time.Minute, "soak"}},
	}
	var b bytes.Buffer
	if err := c.WriteSVG(&b); err != nil {
		t.Fatal(err)
	}
	text := checkSVG(t, b.Bytes())
	for _, want := range []string{"soak <run>", "RSS", "40 MiB", "baseline +10%", "backend_kill 1", "reload", "warm-up", "min", "failed"} {
		if !strings.Contains(text, want) {
			t.Errorf("chart text lacks %q:\n%s", want, text)
		}
	}
	if n := strings.Count(b.String(), "<polyline"); n != 3 {
		t.Errorf("%d lines, want 3", n)
	}
}

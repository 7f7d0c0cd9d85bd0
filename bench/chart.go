package bench

import (
	"bytes"
	"fmt"
	"html"
	"io"
	"math"
	"strconv"
	"time"
)

// chartColors is the Okabe-Ito palette: distinct for people with colour-blindness too.
var chartColors = []string{"#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#999999", "#000000"}

// Chart geometry, in SVG user units.
const (
	chartW      = 1040
	legendY0    = 508 // baseline of the first legend row
	latX0       = 78  // latency plot area
	latX1       = 620 //
	plotY0      = 122 //
	plotY1      = 440 //
	thrX0       = 720 // throughput bars
	thrX1       = 1010
	chartFont   = "DejaVu Sans, Helvetica, Arial, sans-serif"
	labelColour = "#333333"
	gridColour  = "#e5e5e5"
)

// WriteChart draws the result as an SVG picture: on the left the latency of every
// target by percentile (all rounds merged; percentile axis stretched toward the tail,
// log latency axis when the spread is wide), on the right each target's median calls/s
// as a bar with its ratio to the first target and a dot per round.
func (r *Result) WriteChart(w io.Writer) error {
	var b bytes.Buffer
	// The legend goes under the latency panel, one row per target, so that it never hides
	// a curve; the picture grows to hold it.
	height := legendY0 + 18*len(r.Targets) + 12
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="%s">`+"\n",
		chartW, height, chartW, height, chartFont)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n")
	text(&b, 24, 34, 20, "start", "bold", "#111111", "pyro-dispatch bench")
	text(&b, 24, 58, 13, "start", "", "#555555", r.Config.Describe())
	r.latencyPanel(&b)
	r.throughputPanel(&b)
	foot := fmt.Sprintf("%s · %v in all", r.Start.Format("2006-01-02 15:04:05 MST"), r.Elapsed.Round(time.Millisecond))
	text(&b, chartW-16, float64(height-12), 11, "end", "", "#888888", foot)
	b.WriteString("</svg>\n")
	_, err := w.Write(b.Bytes())
	return err
}

func text(b *bytes.Buffer, x, y float64, size int, anchor, weight, fill, s string) {
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="%d" text-anchor="%s" fill="%s"`, x, y, size, anchor, fill)
	if weight != "" {
		fmt.Fprintf(b, ` font-weight="%s"`, weight)
	}
	fmt.Fprintf(b, ">%s</text>\n", html.EscapeString(s))
}

func line(b *bytes.Buffer, x0, y0, x1, y1 float64, stroke string, width float64) {
	fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="%.1f"/>`+"\n", x0, y0, x1, y1, stroke, width)
}

func colour(i int) string { return chartColors[i%len(chartColors)] }

// tailPos maps a percentile to the percentile axis: log10(1/(1-p)), so 90, 99, 99.9 are
// evenly spaced.
func tailPos(p float64) float64 {
	if p >= 100 {
		return math.Inf(1)
	}
	return math.Log10(100 / (100 - p))
}

func (r *Result) latencyPanel(b *bytes.Buffer) {
	text(b, latX0, plotY0-22, 15, "start", "bold", "#111111", "Latency by percentile")
	text(b, latX1, plotY0-22, 11, "end", "", "#777777", "all rounds merged · lower is better")

	// Which percentiles to draw: those the sample sizes can resolve, then max.
	var total int64
	var lo, hi int64 = math.MaxInt64, 0
	curves := make([][]int64, len(r.Targets))
	for i, t := range r.Targets {
		curves[i] = percentiles(t.Latency)
		if t.Latency != nil && t.Latency.TotalCount() > 0 {
			total = max(total, t.Latency.TotalCount())
			lo = min(lo, max(t.Latency.Min(), 1))
			hi = max(hi, t.Latency.Max())
		}
	}
	if total == 0 {
		text(b, (latX0+latX1)/2, (plotY0+plotY1)/2, 14, "middle", "", "#999999", "no successful calls")
		return
	}
	var idx []int // indices into CurvePercentiles, max excluded
	for i, p := range CurvePercentiles {
		if p > 0 && p < 100 && 100/(100-p) <= float64(total) {
			idx = append(idx, i)
		}
	}
	lastTail := tailPos(CurvePercentiles[idx[len(idx)-1]])
	maxPos := math.Max(1, math.Ceil(lastTail)) + 0.8 // "max" sits past the last tick
	xOf := func(pos float64) float64 { return latX0 + (latX1-latX0)*pos/maxPos }

	// Latency axis: logarithmic when the values spread over more than a factor of 20.
	logY := float64(hi)/float64(lo) > 20
	var yMin, yMax float64
	var ticks []float64
	if logY {
		yMin, yMax = niceFloor(float64(lo)), niceCeil(float64(hi))
		for d := math.Pow(10, math.Floor(math.Log10(yMin))); d <= yMax; d *= 10 {
			for _, m := range []float64{1, 2, 5} {
				if v := d * m; v >= yMin && v <= yMax {
					ticks = append(ticks, v)
				}
			}
		}
	} else {
		step := niceStep(float64(hi) / 5)
		yMax = math.Ceil(float64(hi)/step) * step
		for v := 0.0; v <= yMax+step/2; v += step {
			ticks = append(ticks, v)
		}
	}
	yOf := func(v float64) float64 {
		if logY {
			f := (math.Log10(math.Max(v, yMin)) - math.Log10(yMin)) / (math.Log10(yMax) - math.Log10(yMin))
			return plotY1 - (plotY1-plotY0)*f
		}
		return plotY1 - (plotY1-plotY0)*v/yMax
	}

	// Grid and axes.
	for _, v := range ticks {
		y := yOf(v)
		line(b, latX0, y, latX1, y, gridColour, 1)
		text(b, latX0-8, y+4, 11, "end", "", labelColour, FormatLatency(time.Duration(v)))
	}
	xTicks := []struct {
		pos   float64
		label string
	}{{0, "0%"}, {tailPos(50), "50%"}, {1, "90%"}, {2, "99%"}, {3, "99.9%"}, {4, "99.99%"}, {5, "99.999%"}}
	for _, t := range xTicks {
		if t.pos > lastTail+1e-9 {
			break
		}
		x := xOf(t.pos)
		line(b, x, plotY0, x, plotY1, gridColour, 1)
		text(b, x, plotY1+18, 11, "middle", "", labelColour, t.label)
	}
	xm := xOf(maxPos - 0.15)
	line(b, xm, plotY0, xm, plotY1, gridColour, 1)
	text(b, xm, plotY1+18, 11, "middle", "bold", labelColour, "max")
	line(b, latX0, plotY1, latX1, plotY1, "#999999", 1)
	line(b, latX0, plotY0, latX0, plotY1, "#999999", 1)
	text(b, (latX0+latX1)/2, plotY1+40, 12, "middle", "", "#555555", "percentile of calls (axis stretched toward the tail)")
	fmt.Fprintf(b, `<text x="20" y="%.1f" font-size="12" fill="#555555" text-anchor="middle" transform="rotate(-90 20 %.1f)">latency%s</text>`+"\n",
		(plotY0+plotY1)/2.0, (plotY0+plotY1)/2.0, map[bool]string{true: " (log scale)", false: ""}[logY])

	// One curve per target, with marked points at p50, p99 and max.
	for i, t := range r.Targets {
		c := curves[i]
		if t.Latency == nil || t.Latency.TotalCount() == 0 {
			continue
		}
		var pts bytes.Buffer
		for _, k := range idx {
			fmt.Fprintf(&pts, "%.1f,%.1f ", xOf(tailPos(CurvePercentiles[k])), yOf(float64(c[k])))
		}
		fmt.Fprintf(&pts, "%.1f,%.1f", xm, yOf(float64(c[len(c)-1])))
		fmt.Fprintf(b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2.5" stroke-linejoin="round"><title>%s</title></polyline>`+"\n",
			pts.String(), colour(i), html.EscapeString(t.Name))
		for _, k := range idx {
			p := CurvePercentiles[k]
			if p != 50 && p != 99 && p != 99.9 {
				continue
			}
			x, y := xOf(tailPos(p)), yOf(float64(c[k]))
			fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"><title>%s p%s: %s</title></circle>`+"\n",
				x, y, colour(i), html.EscapeString(t.Name), strconv.FormatFloat(p, 'f', -1, 64), FormatLatency(time.Duration(c[k])))
		}
		fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"/>`+"\n", xm, yOf(float64(c[len(c)-1])), colour(i))
	}

	// Legend with p50 / p99 / max of each target, under the panel.
	ly := float64(legendY0)
	for i, t := range r.Targets {
		fmt.Fprintf(b, `<rect x="%d" y="%.1f" width="14" height="4" fill="%s"/>`+"\n", latX0+12, ly-5, colour(i))
		c := curves[i]
		label := fmt.Sprintf("%s   p50 %s · p99 %s · max %s", t.Name, FormatLatency(time.Duration(c[pctIndex(50)])),
			FormatLatency(time.Duration(c[pctIndex(99)])), FormatLatency(time.Duration(c[len(c)-1])))
		text(b, latX0+32, ly, 12, "start", "", "#222222", label)
		ly += 18
	}
}

func (r *Result) throughputPanel(b *bytes.Buffer) {
	text(b, thrX0-30, plotY0-22, 15, "start", "bold", "#111111", "Throughput")
	text(b, thrX1, plotY0-22, 11, "end", "", "#777777", "median calls/s · higher is better")
	n := len(r.Targets)
	if n == 0 {
		return
	}
	var top float64
	for _, t := range r.Targets {
		top = math.Max(top, t.Median.CallsPerSec)
		for _, rr := range t.Rounds {
			top = math.Max(top, rr.CallsPerSec)
		}
	}
	if top == 0 {
		top = 1
	}
	step := niceStep(top / 4)
	top = math.Ceil(top/step) * step
	xOf := func(v float64) float64 { return thrX0 + (thrX1-thrX0)*v/top }
	for v := 0.0; v <= top+step/2; v += step {
		x := xOf(v)
		line(b, x, plotY0, x, plotY1, gridColour, 1)
		text(b, x, plotY1+18, 11, "middle", "", labelColour, formatShort(v))
	}
	line(b, thrX0, plotY0, thrX0, plotY1, "#999999", 1)
	text(b, (thrX0+thrX1)/2, plotY1+40, 12, "middle", "", "#555555", "calls per second")

	slot := (plotY1 - plotY0) / float64(n)
	barH := math.Min(46, slot*0.55)
	for i, t := range r.Targets {
		yc := plotY0 + slot*(float64(i)+0.5)
		v := t.Median.CallsPerSec
		fmt.Fprintf(b, `<rect x="%d" y="%.1f" width="%.1f" height="%.1f" fill="%s" fill-opacity="0.85"><title>%s: %s calls/s</title></rect>`+"\n",
			thrX0, yc-barH/2, xOf(v)-thrX0, barH, colour(i), html.EscapeString(t.Name), FormatCount(v))
		text(b, thrX0-8, yc+4, 13, "end", "bold", "#222222", t.Name)
		label := FormatCount(v) + "/s"
		if i > 0 && t.Ratio.CallsPerSec > 0 {
			label += "  (" + formatRatio(t.Ratio.CallsPerSec) + ")"
		}
		// Inside the bar when it is long enough, else after it.
		if xOf(v)-thrX0 > 150 {
			text(b, xOf(v)-8, yc+4, 12, "end", "bold", "#ffffff", label)
		} else {
			text(b, xOf(v)+6, yc+4, 12, "start", "", "#222222", label)
		}
		if len(t.Rounds) > 1 {
			// Each round as a dot on a strip under the bar: the spread behind the median.
			ys := yc + barH/2 + 7
			lo, hi := math.Inf(1), 0.0
			for _, rr := range t.Rounds {
				lo, hi = math.Min(lo, rr.CallsPerSec), math.Max(hi, rr.CallsPerSec)
			}
			line(b, xOf(lo), ys, xOf(hi), ys, "#bbbbbb", 1.5)
			for _, rr := range t.Rounds {
				fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="3" fill="#ffffff" stroke="%s" stroke-width="1.5"><title>round %d: %s calls/s</title></circle>`+"\n",
					xOf(rr.CallsPerSec), ys, colour(i), rr.Round, FormatCount(rr.CallsPerSec))
			}
		}
		if t.Median.Errors > 0 {
			text(b, thrX0+4, yc-barH/2-5, 11, "start", "", "#D55E00", fmt.Sprintf("%d errors", t.Median.Errors))
		}
	}
	if n > 0 && len(r.Targets[0].Rounds) > 1 {
		text(b, thrX1, plotY1+40, 11, "end", "", "#777777", "○ each round")
	}
}

// pctIndex returns the index of p in CurvePercentiles.
func pctIndex(p float64) int {
	for i, q := range CurvePercentiles {
		if q == p {
			return i
		}
	}
	return 0
}

// niceStep rounds v up to 1, 2 or 5 times a power of ten.
func niceStep(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// niceFloor and niceCeil round to 1, 2 or 5 times a power of ten, down or up.
func niceFloor(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{5, 2, 1} {
		if m*p <= v {
			return m * p
		}
	}
	return p
}

func niceCeil(v float64) float64 { return niceStep(v) }

// formatShort writes an axis number: 0, 500, 20k, 1.5M.
func formatShort(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', -1, 64) + "M"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'f', -1, 64) + "k"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

package bench

import (
	"bytes"
	"fmt"
	"html"
	"io"
	"math"
	"strings"
	"time"
)

// TimeChart is a picture of values over time, in the style of WriteChart: panels stacked
// over one time axis, each with its lines and an optional band (say, the range a value
// must come back to), events marked along the top (coloured by kind), and spans shaded
// across every panel (the phases of a run).
type TimeChart struct {
	Title, Subtitle, Foot string
	End                   time.Duration // the time axis runs from 0 to End
	Panels                []TimePanel
	Marks                 []TimeMark
	MarkKinds             []string // legend of Marks, by Kind
	Spans                 []TimeSpan
}

// TimePanel is one panel of a TimeChart.
type TimePanel struct {
	Title  string
	Format func(float64) string // axis labels; nil: 0, 500, 20k, 1.5M
	Series []TimeSeries
	Band   *[2]float64 // shaded from Band[0] to Band[1]; nil: none
	// BandLabel says what the band is.
	BandLabel string
}

// TimeSeries is a line: values V at times At (from the start of the chart).
type TimeSeries struct {
	Name string
	At   []time.Duration
	V    []float64
}

// TimeMark is an event at At, drawn as a tick of colour Kind along the top.
type TimeMark struct {
	At    time.Duration
	Kind  int
	Title string // shown on hover
}

// TimeSpan is a stretch of time shaded in every panel, labelled along the top.
type TimeSpan struct {
	From, To time.Duration
	Label    string
}

// Time chart geometry, in SVG user units.
const (
	tcX0     = 90
	tcX1     = 1010
	tcTop    = 84  // marks strip
	tcPanel0 = 122 // first panel's top
	tcPanelH = 150
	tcGap    = 56
)

// WriteSVG draws the chart as SVG.
func (c *TimeChart) WriteSVG(w io.Writer) error {
	var b bytes.Buffer
	legendY := tcPanel0 + len(c.Panels)*(tcPanelH+tcGap) + 10
	height := legendY + 18*((len(c.MarkKinds)+3)/4) + 30
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="%s">`+"\n",
		chartW, height, chartW, height, chartFont)
	b.WriteString(`<rect width="100%" height="100%" fill="#ffffff"/>` + "\n")
	text(&b, 24, 34, 20, "start", "bold", "#111111", c.Title)
	text(&b, 24, 58, 13, "start", "", "#555555", c.Subtitle)
	end := max(c.End.Seconds(), 1)
	xOf := func(d time.Duration) float64 { return tcX0 + (tcX1-tcX0)*math.Min(math.Max(d.Seconds(), 0), end)/end }
	bottom := float64(tcPanel0 + len(c.Panels)*(tcPanelH+tcGap) - tcGap)

	for i, s := range c.Spans {
		fill := []string{"#f2f2f2", "#fbfbfb"}[i%2]
		width := xOf(s.To) - xOf(s.From)
		fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.1f" height="%.1f" fill="%s"><title>%s</title></rect>`+"\n",
			xOf(s.From), tcTop-8, width, bottom-tcTop+8, fill, html.EscapeString(s.Label))
		if width >= 7*float64(len(s.Label)) { // else only on hover
			text(&b, xOf(s.From)+width/2, tcTop-14, 11, "middle", "", "#777777", s.Label)
		}
	}
	for _, m := range c.Marks {
		x := xOf(m.At)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="2"><title>%s</title></line>`+"\n",
			x, tcTop-4, x, tcTop+18, colour(m.Kind), html.EscapeString(m.Title))
	}

	// The time axis: minutes (seconds for a short run), under every panel.
	step := niceStep(end / 8)
	unit, div := "s", 1.0
	if end >= 300 {
		step, unit, div = niceStep(end/60/8)*60, "min", 60
	}
	for i, p := range c.Panels {
		y0 := float64(tcPanel0 + i*(tcPanelH+tcGap))
		c.panel(&b, p, y0, xOf)
		for v := 0.0; v <= end+step/100; v += step {
			x := xOf(time.Duration(v * float64(time.Second)))
			line(&b, x, y0, x, y0+tcPanelH, gridColour, 1)
			text(&b, x, y0+tcPanelH+15, 10, "middle", "", labelColour, formatShort(v/div))
		}
		text(&b, tcX1, y0+tcPanelH+15, 10, "end", "", "#999999", unit)
	}

	x := float64(tcX0)
	for i, k := range c.MarkKinds {
		y := float64(legendY + 18*(i/4))
		if i%4 == 0 {
			x = tcX0
		}
		line(&b, x, y-9, x, y+3, colour(i), 3)
		text(&b, x+8, y, 11, "start", "", "#222222", k)
		x += 230
	}
	text(&b, chartW-16, float64(height-10), 11, "end", "", "#888888", c.Foot)
	b.WriteString("</svg>\n")
	_, err := w.Write(b.Bytes())
	return err
}

// panel draws one panel with its top at y0.
func (c *TimeChart) panel(b *bytes.Buffer, p TimePanel, y0 float64, xOf func(time.Duration) float64) {
	format := p.Format
	if format == nil {
		format = formatShort
	}
	hi := 0.0
	for _, s := range p.Series {
		for _, v := range s.V {
			hi = math.Max(hi, v)
		}
	}
	if p.Band != nil {
		hi = math.Max(hi, p.Band[1])
	}
	step := niceStep(math.Max(hi, 1) / 4)
	top := math.Ceil(math.Max(hi, 1)/step) * step
	yOf := func(v float64) float64 { return y0 + tcPanelH - tcPanelH*v/top }
	text(b, tcX0, y0-10, 13, "start", "bold", "#111111", p.Title)
	if p.Band != nil {
		fmt.Fprintf(b, `<rect x="%d" y="%.1f" width="%d" height="%.1f" fill="#009E73" fill-opacity="0.12"/>`+"\n",
			tcX0, yOf(p.Band[1]), tcX1-tcX0, yOf(p.Band[0])-yOf(p.Band[1]))
		text(b, tcX1, y0-10, 11, "end", "", "#009E73", p.BandLabel)
	}
	for v := 0.0; v <= top+step/2; v += step {
		line(b, tcX0, yOf(v), tcX1, yOf(v), gridColour, 1)
		text(b, tcX0-8, yOf(v)+4, 10, "end", "", labelColour, format(v))
	}
	line(b, tcX0, y0+tcPanelH, tcX1, y0+tcPanelH, "#999999", 1)
	line(b, tcX0, y0, tcX0, y0+tcPanelH, "#999999", 1)
	names := make([]string, 0, len(p.Series))
	for i, s := range p.Series {
		var pts strings.Builder
		for j, at := range s.At {
			fmt.Fprintf(&pts, "%.1f,%.1f ", xOf(at), yOf(s.V[j]))
		}
		fmt.Fprintf(b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="1.8" stroke-linejoin="round"><title>%s</title></polyline>`+"\n",
			strings.TrimSpace(pts.String()), colour(i), html.EscapeString(s.Name))
		names = append(names, s.Name)
	}
	if len(p.Series) > 1 {
		x := float64(tcX0 + 8 + 7*len(p.Title) + 24)
		for i, n := range names {
			line(b, x, y0-14, x+14, y0-14, colour(i), 3)
			text(b, x+18, y0-10, 11, "start", "", "#222222", n)
			x += 30 + 7*float64(len(n))
		}
	}
}

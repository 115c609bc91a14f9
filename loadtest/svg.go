package loadtest

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"strconv"
	"strings"
)

// The report's charts: small hand-written SVG, line charts over time and
// bar charts for histograms, so the HTML report needs no script and no
// network. Every chart is an <svg data-plot="name">; the marks that draw
// data (paths, bars, points) carry class="data", and a chart without data
// says so in place of them.

// Chart geometry, in SVG user units.
const (
	chartW, chartH = 640, 260
	padL, padR     = 60, 16
	padT, padB     = 40, 42
)

// palette colours a chart's series in order.
var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"}

// line is one series of a line chart.
type line struct {
	label  string
	x, y   []float64
	dashed bool
}

// bar is one bar of a bar chart: its label under the axis (shown when room
// allows) and its hover text.
type bar struct {
	label string
	value float64
	title string
}

// svgWriter builds one chart.
type svgWriter struct{ b strings.Builder }

func (w *svgWriter) printf(format string, args ...any) { fmt.Fprintf(&w.b, format, args...) }

// open starts the chart and its title.
func (w *svgWriter) open(name, title string) {
	w.printf(`<svg data-plot="%s" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s">`,
		esc(name), chartW, chartH, chartW, chartH, esc(title))
	w.printf(`<text x="%d" y="18" class="title">%s</text>`, padL, esc(title))
}

func (w *svgWriter) close() template.HTML {
	w.printf(`</svg>`)
	return template.HTML(w.b.String()) // every text in it went through esc
}

// noData closes a chart that has nothing to draw.
func (w *svgWriter) noData() template.HTML {
	w.printf(`<text x="%d" y="%d" class="nodata" text-anchor="middle">no data</text>`, chartW/2, chartH/2)
	return w.close()
}

// axes draws the frame, the y grid with its labels from 0 to yMax and the
// axis titles.
func (w *svgWriter) axes(yMax, yStep float64, xTitle, yTitle string) {
	x0, x1, y0, y1 := float64(padL), float64(chartW-padR), float64(chartH-padB), float64(padT)
	for v := 0.0; v <= yMax*1.0000001; v += yStep {
		y := y0 - (y0-y1)*v/yMax
		w.printf(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" class="grid"/>`, x0, y, x1, y)
		w.printf(`<text x="%.1f" y="%.1f" class="tick" text-anchor="end">%s</text>`, x0-6, y+4, esc(num(v)))
	}
	w.printf(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" class="frame"/>`, x0, y1, x1-x0, y0-y1)
	w.printf(`<text x="%.1f" y="%d" class="axis" text-anchor="middle">%s</text>`, (x0+x1)/2, chartH-6, esc(xTitle))
	w.printf(`<text x="14" y="%.1f" class="axis" text-anchor="middle" transform="rotate(-90 14 %.1f)">%s</text>`, (y0+y1)/2, (y0+y1)/2, esc(yTitle))
}

// lineChart draws lines over a shared x axis starting at 0, the y axis
// from 0 to a round maximum; points are marked when there are few.
func lineChart(name, title, xTitle, yTitle string, lines []line) template.HTML {
	var w svgWriter
	w.open(name, title)
	xMax, yMax, n := 0.0, 0.0, 0
	for _, l := range lines {
		for i := range l.x {
			xMax, yMax = math.Max(xMax, l.x[i]), math.Max(yMax, l.y[i])
			n++
		}
	}
	if n == 0 {
		return w.noData()
	}
	yMax, yStep := niceAxis(yMax)
	xMax, xStep := niceAxis(xMax)
	w.axes(yMax, yStep, xTitle, yTitle)
	x0, x1, y0, y1 := float64(padL), float64(chartW-padR), float64(chartH-padB), float64(padT)
	px := func(v float64) float64 { return x0 + (x1-x0)*v/xMax }
	py := func(v float64) float64 { return y0 - (y0-y1)*v/yMax }
	for v := 0.0; v <= xMax*1.0000001; v += xStep {
		w.printf(`<text x="%.1f" y="%.1f" class="tick" text-anchor="middle">%s</text>`, px(v), y0+16, esc(num(v)))
	}
	for i, l := range lines {
		if len(l.x) == 0 {
			continue
		}
		color := palette[i%len(palette)]
		var d strings.Builder
		for j := range l.x {
			cmd := 'L'
			if j == 0 {
				cmd = 'M'
			}
			fmt.Fprintf(&d, "%c%.1f %.1f", cmd, px(l.x[j]), py(l.y[j]))
		}
		dash := ""
		if l.dashed {
			dash = ` stroke-dasharray="5 4"`
		}
		w.printf(`<path class="data" d="%s" fill="none" stroke="%s" stroke-width="2"%s/>`, d.String(), color, dash)
		if len(l.x) <= 40 {
			for j := range l.x {
				w.printf(`<circle class="data" cx="%.1f" cy="%.1f" r="2.5" fill="%s"><title>%s: %s at %s</title></circle>`,
					px(l.x[j]), py(l.y[j]), color, esc(l.label), esc(num(l.y[j])), esc(num(l.x[j])))
			}
		}
		// The legend, right-aligned under the title.
		lx := float64(chartW-padR) - float64(len(lines)-i)*110
		w.printf(`<rect x="%.1f" y="24" width="12" height="4" fill="%s"/><text x="%.1f" y="30" class="legend">%s</text>`, lx, color, lx+16, esc(l.label))
	}
	return w.close()
}

// barChart draws bars side by side, the y axis from 0 to a round maximum
// (at least yFloor), with every k-th label shown so that they do not
// overlap.
func barChart(name, title, xTitle, yTitle string, bars []bar, yFloor float64) template.HTML {
	var w svgWriter
	w.open(name, title)
	if len(bars) == 0 {
		return w.noData()
	}
	yMax := yFloor
	for _, b := range bars {
		yMax = math.Max(yMax, b.value)
	}
	if yMax <= 0 {
		yMax = 1
	}
	yMax, yStep := niceAxis(yMax)
	w.axes(yMax, yStep, xTitle, yTitle)
	x0, x1, y0, y1 := float64(padL), float64(chartW-padR), float64(chartH-padB), float64(padT)
	slot := (x1 - x0) / float64(len(bars))
	every := int(math.Ceil(float64(len(bars)) * 44 / (x1 - x0))) // labels ~44 units apart
	for i, b := range bars {
		h := (y0 - y1) * b.value / yMax
		x := x0 + float64(i)*slot
		w.printf(`<rect class="data" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s</title></rect>`,
			x+slot*0.1, y0-h, slot*0.8, math.Max(h, 0), palette[0], esc(b.title))
		if i%every == 0 {
			w.printf(`<text x="%.1f" y="%.1f" class="tick" text-anchor="middle">%s</text>`, x+slot/2, y0+16, esc(b.label))
		}
	}
	return w.close()
}

// niceAxis rounds max up to a multiple of a round step (1, 2 or 5 × a
// power of ten) giving four to ten gridlines.
func niceAxis(max float64) (top, step float64) {
	if !(max > 0) {
		return 1, 0.25
	}
	raw := max / 5
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	step = 10 * p
	for _, m := range []float64{1, 2, 5} {
		if m*p >= raw {
			step = m * p
			break
		}
	}
	return math.Ceil(max/step-1e-9) * step, step
}

// num formats an axis or hover value briefly: at most three significant
// digits or so, k and M for thousands and millions.
func num(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1e6:
		return trimFloat(v/1e6, 1) + "M"
	case a >= 1e4:
		return trimFloat(v/1e3, 1) + "k"
	case a >= 100:
		return trimFloat(v, 0)
	case a >= 1:
		return trimFloat(v, 1)
	}
	return trimFloat(v, 2)
}

// trimFloat formats v with prec decimals, less trailing zeros.
func trimFloat(v float64, prec int) string {
	s := strconv.FormatFloat(v, 'f', prec, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	if s == "-0" {
		s = "0"
	}
	return s
}

func esc(s string) string { return html.EscapeString(s) }

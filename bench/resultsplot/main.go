// Command resultsplot draws a task's served front on the test split (the test_top1 that
// natgw evaluate recorded) against MAdds, next to baseline points, as a PNG for
// docs/results.md.
//
//	go run ./bench/resultsplot --archive models/flowers/archive.json --out docs/flowers.png \
//	  --baseline "MobileNetV2 fine-tuned=97.9:74.4" --baseline "MobileNetV2 fine-tuned=299.6:77.2"
//
// Baseline points with the same label form one series.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image/color"
	"os"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

type baselines []string

func (b *baselines) String() string     { return strings.Join(*b, "; ") }
func (b *baselines) Set(v string) error { *b = append(*b, v); return nil }

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "resultsplot:", err)
		os.Exit(1)
	}
}

func run() error {
	archive := flag.String("archive", "", "task archive.json with test_top1 recorded")
	out := flag.String("out", "", "PNG to write")
	title := flag.String("title", "", "plot title")
	var base baselines
	flag.Var(&base, "baseline", `baseline point "LABEL=MADDS_M:TOP1_PERCENT" (repeatable)`)
	flag.Parse()
	if *archive == "" || *out == "" {
		return errors.New("--archive and --out are required")
	}
	data, err := os.ReadFile(*archive)
	if err != nil {
		return err
	}
	var a struct {
		Entries []struct {
			MAdds    int64    `json:"madds"`
			Top1     float64  `json:"top1"`
			TestTop1 *float64 `json:"test_top1"`
		} `json:"entries"`
	}
	if err := json.Unmarshal(data, &a); err != nil {
		return fmt.Errorf("%s: %w", *archive, err)
	}
	var test, val plotter.XYs
	for _, e := range a.Entries {
		if e.TestTop1 != nil {
			test = append(test, plotter.XY{X: float64(e.MAdds) / 1e6, Y: 100 * *e.TestTop1})
			val = append(val, plotter.XY{X: float64(e.MAdds) / 1e6, Y: 100 * e.Top1})
		}
	}
	if len(test) == 0 {
		return fmt.Errorf("%s: no entry has test_top1 (run natgw evaluate first)", *archive)
	}
	sort.Slice(test, func(i, j int) bool { return test[i].X < test[j].X })
	sort.Slice(val, func(i, j int) bool { return val[i].X < val[j].X })
	p := plot.New()
	p.Title.Text = *title
	p.X.Label.Text = "MAdds (M)"
	p.Y.Label.Text = "top-1 (%)"
	p.Add(plotter.NewGrid())
	blue := color.RGBA{R: 30, G: 90, B: 200, A: 255}
	line, marks, err := plotter.NewLinePoints(test)
	if err != nil {
		return err
	}
	line.Color, line.Width = blue, vg.Points(1.5)
	marks.Color, marks.Shape, marks.Radius = blue, draw.CircleGlyph{}, vg.Points(3)
	vline, vmarks, err := plotter.NewLinePoints(val)
	if err != nil {
		return err
	}
	grey := color.Gray{Y: 150}
	vline.Color, vline.Dashes = grey, []vg.Length{vg.Points(3), vg.Points(3)}
	vmarks.Color, vmarks.Shape, vmarks.Radius = grey, draw.CircleGlyph{}, vg.Points(2)
	p.Add(vline, vmarks, line, marks)
	p.Legend.Add("NAT front, test", line, marks)
	p.Legend.Add("same subnets, val (used for selection)", vline, vmarks)
	shapes := []draw.GlyphDrawer{draw.TriangleGlyph{}, draw.SquareGlyph{}, draw.CrossGlyph{}, draw.PyramidGlyph{}, draw.PlusGlyph{}}
	colors := []color.Color{color.RGBA{R: 200, G: 40, B: 40, A: 255}, color.RGBA{R: 30, G: 150, B: 60, A: 255}, color.RGBA{R: 150, G: 60, B: 170, A: 255}}
	// Points that share a label are one series: a line through them, one legend entry.
	var order []string
	series := map[string]plotter.XYs{}
	var basePts []plotter.XY
	for _, b := range base {
		label, pt, ok := strings.Cut(b, "=")
		ms, acc, ok2 := strings.Cut(pt, ":")
		x, err1 := strconv.ParseFloat(ms, 64)
		y, err2 := strconv.ParseFloat(acc, 64)
		if !ok || !ok2 || err1 != nil || err2 != nil {
			return fmt.Errorf("--baseline %q: want LABEL=MADDS_M:TOP1_PERCENT", b)
		}
		if _, seen := series[label]; !seen {
			order = append(order, label)
		}
		series[label] = append(series[label], plotter.XY{X: x, Y: y})
		basePts = append(basePts, plotter.XY{X: x, Y: y})
	}
	for i, label := range order {
		pts := series[label]
		sort.Slice(pts, func(a, b int) bool { return pts[a].X < pts[b].X })
		l, s, err := plotter.NewLinePoints(pts)
		if err != nil {
			return err
		}
		c := colors[i%len(colors)]
		s.GlyphStyle.Shape, s.GlyphStyle.Radius, s.GlyphStyle.Color = shapes[i%len(shapes)], vg.Points(5), c
		l.Color, l.Width = c, vg.Points(1)
		if len(pts) > 1 {
			p.Add(l)
		}
		p.Add(s)
		p.Legend.Add(label, s)
	}
	// Room around every point, the legend in the bottom-right corner (small models sit left, accuracy rises with cost).
	maxX, minY, maxY := 0.0, 100.0, 0.0
	for _, d := range [][]plotter.XY{test, val, basePts} {
		for _, q := range d {
			maxX, minY, maxY = max(maxX, q.X), min(minY, q.Y), max(maxY, q.Y)
		}
	}
	p.X.Min, p.X.Max = 0, maxX*1.08
	p.Y.Min, p.Y.Max = minY-2, maxY+2
	p.Legend.Top, p.Legend.Left = false, false
	p.Y.Min -= 8 // room for the legend under the curves
	return p.Save(7*vg.Inch, 4.5*vg.Inch, *out)
}

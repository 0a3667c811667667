// Command resultsplot draws a task's served front on the test split (the test_top1 that
// natgw evaluate recorded) against MAdds, next to baseline points, as a PNG for
// docs/results.md.
//
//	go run ./bench/resultsplot --archive models/flowers/archive.json --out docs/flowers.png \
//	  --baseline "MobileNetV2 fine-tuned, 128 px=97.9:74.4" --baseline "...=299.6:77.2"
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
	var basePts []plotter.XY
	for i, b := range base {
		label, pt, ok := strings.Cut(b, "=")
		ms, acc, ok2 := strings.Cut(pt, ":")
		x, err1 := strconv.ParseFloat(ms, 64)
		y, err2 := strconv.ParseFloat(acc, 64)
		if !ok || !ok2 || err1 != nil || err2 != nil {
			return fmt.Errorf("--baseline %q: want LABEL=MADDS_M:TOP1_PERCENT", b)
		}
		basePts = append(basePts, plotter.XY{X: x, Y: y})
		s, err := plotter.NewScatter(plotter.XYs{{X: x, Y: y}})
		if err != nil {
			return err
		}
		s.GlyphStyle.Shape, s.GlyphStyle.Radius = shapes[i%len(shapes)], vg.Points(5)
		s.GlyphStyle.Color = colors[i%len(colors)]
		p.Add(s)
		p.Legend.Add(label, s)
	}
	// Room around every point, the legend in the empty top-left corner.
	maxX, minY, maxY := 0.0, 100.0, 0.0
	for _, d := range [][]plotter.XY{test, val, basePts} {
		for _, q := range d {
			maxX, minY, maxY = max(maxX, q.X), min(minY, q.Y), max(maxY, q.Y)
		}
	}
	p.X.Min, p.X.Max = 0, maxX*1.08
	p.Y.Min, p.Y.Max = minY-2, maxY+2
	p.Legend.Top, p.Legend.Left = true, true
	return p.Save(7*vg.Inch, 4.5*vg.Inch, *out)
}

package specializer

import (
	"errors"
	"fmt"
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/natgw/natgw/task"
)

// PlotFront draws top-1 accuracy (%) against MAdds (millions) as a PNG at path: every
// measured archive entry in grey, the measured front as a blue line with markers, and the
// chosen entries (e.g. the answers to some budgets) as red triangles. Predicted entries
// among entries are left out; chosen ones are drawn whatever they are.
func PlotFront(entries, chosen []task.Entry, path string) error {
	var all plotter.XYs
	for _, e := range entries {
		if !e.Predicted {
			all = append(all, plotter.XY{X: float64(e.MAdds) / 1e6, Y: 100 * e.Top1})
		}
	}
	if len(all) == 0 {
		return errors.New("plot: no measured entries")
	}
	var front plotter.XYs
	for _, e := range task.Front(entries) {
		front = append(front, plotter.XY{X: float64(e.MAdds) / 1e6, Y: 100 * e.Top1})
	}
	p := plot.New()
	p.Title.Text = "Accuracy vs MAdds"
	p.X.Label.Text = "MAdds (M)"
	p.Y.Label.Text = "top-1 on val (%)"
	p.Add(plotter.NewGrid())

	pts, err := plotter.NewScatter(all)
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	pts.GlyphStyle.Color = color.Gray{Y: 150}
	pts.GlyphStyle.Radius = vg.Points(2)
	pts.GlyphStyle.Shape = draw.CircleGlyph{}
	line, marks, err := plotter.NewLinePoints(front)
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	blue := color.RGBA{R: 30, G: 90, B: 200, A: 255}
	line.Color, line.Width = blue, vg.Points(1.5)
	marks.Color, marks.Shape, marks.Radius = blue, draw.CircleGlyph{}, vg.Points(3)
	p.Add(pts, line, marks)
	p.Legend.Add(fmt.Sprintf("archive (%d)", len(all)), pts)
	p.Legend.Add(fmt.Sprintf("front (%d)", len(front)), line, marks)
	if len(chosen) > 0 {
		var ch plotter.XYs
		for _, e := range chosen {
			ch = append(ch, plotter.XY{X: float64(e.MAdds) / 1e6, Y: 100 * e.Top1})
		}
		sc, err := plotter.NewScatter(ch)
		if err != nil {
			return fmt.Errorf("plot: %w", err)
		}
		sc.GlyphStyle.Color = color.RGBA{R: 220, G: 30, B: 30, A: 255}
		sc.GlyphStyle.Shape = draw.TriangleGlyph{}
		sc.GlyphStyle.Radius = vg.Points(5)
		p.Add(sc)
		p.Legend.Add(fmt.Sprintf("chosen (%d)", len(chosen)), sc)
	}
	p.Legend.Top, p.Legend.Left = false, false
	p.Legend.YPosition = draw.PosBottom
	if err := p.Save(8*vg.Inch, 5*vg.Inch, path); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	return nil
}

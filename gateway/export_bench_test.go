package gateway

import (
	"context"
	"slices"
	"testing"

	"github.com/natgw/natgw/task"
)

// BenchmarkExportArchiveLargest times what the first request for a shipped task's largest
// archive member costs the gateway: the subnet taken out with its stored BatchNorm
// statistics (slicing and folding, no forward pass) and written as an ONNX file, as
// makeModel does before caching it.
func BenchmarkExportArchiveLargest(b *testing.B) {
	for _, name := range []string{"flowers", "cifar10"} {
		b.Run(name, func(b *testing.B) {
			t, err := task.Load("../models/" + name)
			if err != nil {
				b.Skipf("shipped task %s: %v", name, err)
			}
			s, err := New(Config{Tasks: []*task.Task{t}})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			es := t.Archive.Snapshot()
			largest := slices.MaxFunc(es, func(a, b task.Entry) int { return int(a.MAdds - b.MAdds) })
			ts := s.tasks[name]
			var size int
			for b.Loop() {
				data, err := s.export(context.Background(), ts, largest)
				if err != nil {
					b.Fatal(err)
				}
				size = len(data)
			}
			b.ReportMetric(float64(largest.MAdds)/1e6, "MAdds-M")
			b.ReportMetric(float64(size)/1e6, "file-MB")
		})
	}
}

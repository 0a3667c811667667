package trainer

import "testing"

func TestSizeClass(t *testing.T) {
	for _, tc := range []struct{ n, want int }{
		{0, 16}, {1, 16}, {16, 16}, {17, 20}, {20, 20}, {21, 24}, {32, 32}, {33, 40},
		{1000, 1024}, {1025, 1280}, {1 << 20, 1 << 20}, {1<<20 + 1, 1<<20 + 1<<18},
	} {
		if got := sizeClass(tc.n); got != tc.want {
			t.Errorf("sizeClass(%d) = %d, want %d", tc.n, got, tc.want)
		}
	}
}

// run gets buffers of the given sizes and resets, as one graph run does.
func (a *arena) run(sizes ...int) {
	for _, n := range sizes {
		a.get(n)
	}
	a.reset()
}

func TestArenaReuse(t *testing.T) {
	big := []int{4096, 4096, 2048, 1000}   // 11264 floats in classes, over maxHeld
	small := []int{512, 512, 300, 100, 64} // 1520 floats in classes
	for _, tc := range []struct {
		name     string
		maxHeld  int
		runs     [][]int
		wantHeld int
	}{
		// A run bigger than maxHeld keeps its buffers: repeating it allocates nothing.
		{"big run repeated", 1024, [][]int{big, big, big}, 11264},
		// Alternating subnets both stay cached while within 1.5× the peak run (the
		// small run's first 512 takes big's 1024: only 1008 of its floats are its own).
		{"big and small alternate", 1024, [][]int{big, small, big, small}, 11264 + 1520 - 512},
		// A smaller shape takes free buffers of up to twice its size before allocating
		// (2000 takes the 2048, 3000 the 4096), but not larger ones (1000 does not take a
		// 4096: it allocates its own class, 1024).
		{"smaller shape reuses", 1 << 20, [][]int{{2048, 4096, 4096}, {2000, 3000, 1000}}, 2048 + 4096 + 4096 + 1024},
		// Within maxHeld nothing is dropped.
		{"under maxHeld", 1 << 20, [][]int{big, small, {8192}}, 11264 + 1520 - 512 + 8192},
		// Over the limit the least recently used free buffers go, not the last run's.
		// (limit 1.5×8192: dropping the 4096 of the first run suffices).
		{"trim oldest", 1024, [][]int{{4096}, {1024}, {8192}}, 1024 + 8192},
		// Oldest first, then largest first, down to the limit (1.5×8192).
		{"trim largest of oldest", 1024, [][]int{{1024, 2048, 3072, 512}, {8192}}, 8192 + 1024 + 2048 + 512},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newArena(tc.maxHeld)
			for _, r := range tc.runs {
				a.run(r...)
			}
			if a.held != tc.wantHeld {
				t.Errorf("held %d floats, want %d", a.held, tc.wantHeld)
			}
			n := 0
			for _, l := range a.free {
				for _, f := range l {
					n += cap(f.b)
				}
			}
			if n != a.held {
				t.Errorf("free lists hold %d floats, held says %d", n, a.held)
			}
		})
	}
}

package pth

import (
	"testing"

	"github.com/natgw/natgw/internal/testutil"
)

const ofaCheckpoint = "fixtures/ofa-parity/ofa_mbv3_d234_e346_k357_w1.0_seed0.pth"

func BenchmarkLoadFileOFA(b *testing.B) {
	path := testutil.Shared(b, ofaCheckpoint)
	b.ReportAllocs()
	for b.Loop() {
		ts, err := LoadFile(path)
		if err != nil {
			b.Fatal(err)
		}
		if len(ts) != 475 {
			b.Fatalf("got %d tensors", len(ts))
		}
	}
}

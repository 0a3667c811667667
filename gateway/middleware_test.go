package gateway

import "testing"

func TestRequestIDs(t *testing.T) {
	g := newRequestIDs()
	seen := map[string]bool{}
	for range 10000 {
		id := g.next()
		if !requestIDRE.MatchString(id) {
			t.Fatalf("id %q would be refused as an incoming X-Request-ID", id)
		}
		if seen[id] {
			t.Fatalf("id %q repeated", id)
		}
		seen[id] = true
	}
}

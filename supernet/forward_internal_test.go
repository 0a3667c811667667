package supernet

import "testing"

func TestDropBuffers(t *testing.T) {
	var m Net
	for range 3 {
		m.pool.Put(&workspace{})
	}
	m.dropBuffers()
	if v := m.pool.Get(); v != nil {
		t.Fatalf("pool still holds %T after dropBuffers", v)
	}
}

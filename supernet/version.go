package supernet

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
	"math"
)

// Version identifies a supernet's weights: "id@version" from its metadata (the id alone
// when there is no version). natgw stamps versions with StampVersion, a digest of the
// tensors, so weights that differ never share one; archives, stored statistics and the
// gateway's caches are keyed by it.
func (sn *Supernet) Version() string {
	id, v := sn.Meta[MetaID], sn.Meta[MetaVersion]
	if v == "" {
		return id
	}
	return id + "@" + v
}

// Digest is a digest of every tensor's name and bits: "sha256:" and 16 hex digits.
func (sn *Supernet) Digest() string {
	h := sha256.New()
	var buf [4]byte
	for _, p := range sn.params {
		io.WriteString(h, p.Name)
		for _, v := range p.Data {
			binary.LittleEndian.PutUint32(buf[:], math.Float32bits(v))
			h.Write(buf[:])
		}
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))[:16]
}

// StampVersion sets the metadata's version to the tensors' Digest.
func (sn *Supernet) StampVersion() { sn.Meta[MetaVersion] = sn.Digest() }

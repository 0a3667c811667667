package pth

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// Limits on a single pickle. Lines hold module/class names and decimal numbers; longs hold Python ints. Real
// checkpoints stay far below both, and big values would make gopickle do quadratic work.
const (
	maxLineLen = 64 << 10
	maxLongLen = 1 << 10
	// minOpBudget is the opcode allowance every file gets on top of the part proportional to its size. A torch
	// state dict takes about 40 opcodes per tensor, so this alone admits roughly 6,000 tensors.
	minOpBudget = 1 << 18
	// opBudgetDivisor: one more opcode per this many bytes of file. gopickle makes at most about 320 bytes of Go
	// objects per opcode (measured with a stream of MARKs and EMPTY_DICTs; a real state dict makes about 80), so the
	// unpickler's memory stays under about 85 MB plus 10 times the file size whatever the bytes.
	opBudgetDivisor = 32
)

// opBudget is the number of pickle opcodes a file of the given size may contain, all pickles together.
func opBudget(size int64) int64 {
	return minOpBudget + size/opBudgetDivisor
}

// pickleScanner copies one pickle out of a stream, validating every length argument against the bytes that are
// left before reading (so nothing larger than the input is ever allocated) and checking the stack discipline, so
// that gopickle later only sees well-formed lengths.
type pickleScanner struct {
	r      *bufio.Reader
	left   int64  // bytes of input left
	ops    *int64 // opcodes left in the budget, shared by all pickles of a file
	out    []byte
	depth  int   // objects on the simulated stack (including those under marks)
	marks  []int // stack depth at each open mark
	consum int64 // bytes consumed from r
}

var errOpBudget = errors.New("pickle has too many opcodes for the file size")

func (s *pickleScanner) byte1() (byte, error) {
	if s.left < 1 {
		return 0, io.ErrUnexpectedEOF
	}
	b, err := s.r.ReadByte()
	if err != nil {
		return 0, unexpected(err)
	}
	s.left--
	s.consum++
	s.out = append(s.out, b)
	return b, nil
}

// take copies n bytes, n having been checked against s.left by the caller.
func (s *pickleScanner) take(n int64) ([]byte, error) {
	if n < 0 || n > s.left {
		return nil, fmt.Errorf("pickle argument of %d bytes but only %d left: %w", n, s.left, io.ErrUnexpectedEOF)
	}
	start := len(s.out)
	s.out = slices.Grow(s.out, int(n))[:start+int(n)]
	if _, err := io.ReadFull(s.r, s.out[start:]); err != nil {
		return nil, unexpected(err)
	}
	s.left -= n
	s.consum += n
	return s.out[start:], nil
}

func (s *pickleScanner) line() error {
	for i := 0; ; i++ {
		if i > maxLineLen {
			return fmt.Errorf("pickle text argument longer than %d bytes", maxLineLen)
		}
		b, err := s.byte1()
		if err != nil {
			return err
		}
		if b == '\n' {
			return nil
		}
	}
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// stack effects
func (s *pickleScanner) push(n int) { s.depth += n }

func (s *pickleScanner) pop(n int) error {
	floor := 0
	if len(s.marks) > 0 {
		floor = s.marks[len(s.marks)-1]
	}
	if s.depth-n < floor {
		return errors.New("pickle stack underflow")
	}
	s.depth -= n
	return nil
}

// need checks that n items are on the stack above the topmost mark.
func (s *pickleScanner) need(n int) error {
	if err := s.pop(n); err != nil {
		return err
	}
	s.push(n)
	return nil
}

func (s *pickleScanner) popMark() error {
	if len(s.marks) == 0 {
		return errors.New("pickle mark missing")
	}
	s.depth = s.marks[len(s.marks)-1]
	s.marks = s.marks[:len(s.marks)-1]
	return nil
}

// lenArg reads an n-byte little-endian length, then takes that many bytes.
func (s *pickleScanner) lenArg(n int, signed bool, max int64) error {
	b, err := s.take(int64(n))
	if err != nil {
		return err
	}
	var l int64
	switch n {
	case 1:
		l = int64(b[0])
	case 4:
		if signed {
			l = int64(int32(binary.LittleEndian.Uint32(b)))
		} else {
			l = int64(binary.LittleEndian.Uint32(b))
		}
	case 8:
		u := binary.LittleEndian.Uint64(b)
		if u > uint64(s.left) {
			return fmt.Errorf("pickle argument of %d bytes but only %d left: %w", u, s.left, io.ErrUnexpectedEOF)
		}
		l = int64(u)
	}
	if l < 0 {
		return errors.New("pickle negative length")
	}
	if max >= 0 && l > max {
		return fmt.Errorf("pickle argument of %d bytes exceeds limit %d", l, max)
	}
	_, err = s.take(l)
	return err
}

// scanPickle copies one pickle (through its STOP opcode) from r, reading at most left bytes, and returns its bytes.
func scanPickle(r *bufio.Reader, left int64, ops *int64) ([]byte, int64, error) {
	s := &pickleScanner{r: r, left: left, ops: ops}
	for {
		if *s.ops <= 0 {
			return nil, 0, errOpBudget
		}
		*s.ops--
		op, err := s.byte1()
		if err != nil {
			return nil, 0, fmt.Errorf("pickle truncated: %w", err)
		}
		if err := s.step(op); err != nil {
			if errors.Is(err, errStop) {
				return s.out, s.consum, nil
			}
			return nil, 0, fmt.Errorf("pickle opcode 0x%02x at byte %d: %w", op, s.consum-1, err)
		}
	}
}

var errStop = errors.New("stop")

func (s *pickleScanner) step(op byte) error {
	switch op {
	// pushes with a text-line argument
	case 'I', 'L', 'F', 'S', 'V', 'P', 'g':
		if err := s.line(); err != nil {
			return err
		}
		s.push(1)
	case 'c': // GLOBAL: module and name lines
		if err := s.line(); err != nil {
			return err
		}
		if err := s.line(); err != nil {
			return err
		}
		s.push(1)
	case 'i': // INST: two lines, pops to mark, pushes the instance
		if err := s.line(); err != nil {
			return err
		}
		if err := s.line(); err != nil {
			return err
		}
		if err := s.popMark(); err != nil {
			return err
		}
		s.push(1)
	case 'p': // PUT
		if err := s.line(); err != nil {
			return err
		}
		return s.need(1)
	// fixed-size pushes
	case 'J', 0x84: // BININT, EXT4
		_, err := s.take(4)
		s.push(1)
		return err
	case 'K', 'h', 0x82: // BININT1, BINGET, EXT1
		_, err := s.take(1)
		s.push(1)
		return err
	case 'M', 0x83: // BININT2, EXT2
		_, err := s.take(2)
		s.push(1)
		return err
	case 'G': // BINFLOAT
		_, err := s.take(8)
		s.push(1)
		return err
	case 'j': // LONG_BINGET
		_, err := s.take(4)
		s.push(1)
		return err
	case 'q': // BINPUT
		if _, err := s.take(1); err != nil {
			return err
		}
		return s.need(1)
	case 'r': // LONG_BINPUT
		if _, err := s.take(4); err != nil {
			return err
		}
		return s.need(1)
	case 0x80: // PROTO
		_, err := s.take(1)
		return err
	case 0x95: // FRAME: gopickle allocates the frame up front, so its length must fit what is left
		b, err := s.take(8)
		if err != nil {
			return err
		}
		if n := binary.LittleEndian.Uint64(b); n > uint64(s.left) {
			return fmt.Errorf("frame of %d bytes but only %d left: %w", n, s.left, io.ErrUnexpectedEOF)
		}
	// length-prefixed pushes
	case 'T': // BINSTRING
		s.push(1)
		return s.lenArg(4, true, -1)
	case 'U', 'C', 0x8c: // SHORT_BINSTRING, SHORT_BINBYTES, SHORT_BINUNICODE
		s.push(1)
		return s.lenArg(1, false, -1)
	case 'X', 'B': // BINUNICODE, BINBYTES
		s.push(1)
		return s.lenArg(4, false, -1)
	case 0x8d, 0x8e, 0x96: // BINUNICODE8, BINBYTES8, BYTEARRAY8
		s.push(1)
		return s.lenArg(8, false, -1)
	case 0x8a: // LONG1 (gopickle indexes the last byte, so zero length is refused here)
		s.push(1)
		b, err := s.take(1)
		if err != nil {
			return err
		}
		if b[0] == 0 {
			return errors.New("LONG1 of zero bytes")
		}
		_, err = s.take(int64(b[0]))
		return err
	case 0x8b: // LONG4
		s.push(1)
		b, err := s.take(4)
		if err != nil {
			return err
		}
		n := int64(int32(binary.LittleEndian.Uint32(b)))
		if n <= 0 || n > maxLongLen {
			return fmt.Errorf("LONG4 of %d bytes not supported", n)
		}
		_, err = s.take(n)
		return err
	// argument-less pushes
	case 'N', 0x88, 0x89, ']', '}', ')', 0x8f, 0x97: // NONE, NEWTRUE, NEWFALSE, EMPTY_LIST/DICT/TUPLE/SET, NEXT_BUFFER
		s.push(1)
	case '2': // DUP
		if err := s.pop(1); err != nil {
			return err
		}
		s.push(2)
	case '(': // MARK
		s.marks = append(s.marks, s.depth)
	case 'e', 'u', 0x90, '1': // APPENDS, SETITEMS, ADDITEMS, POP_MARK
		if op == 'u' && len(s.marks) > 0 && (s.depth-s.marks[len(s.marks)-1])%2 != 0 {
			return errors.New("SETITEMS with an odd number of items")
		}
		if err := s.popMark(); err != nil {
			return err
		}
		if op != '1' {
			return s.need(1)
		}
	case 't', 'l', 'd', 0x91, 'o': // TUPLE, LIST, DICT, FROZENSET, OBJ
		if err := s.popMark(); err != nil {
			return err
		}
		s.push(1)
	case 0x85, 'Q', 0x98, 0x94: // TUPLE1, BINPERSID, READONLY_BUFFER, MEMOIZE: pop 1 push 1 (or peek)
		return s.need(1)
	case 0x86, 'a', 'R', 'b', 0x81, 0x93: // TUPLE2, APPEND, REDUCE, BUILD, NEWOBJ, STACK_GLOBAL: net -1
		if err := s.pop(2); err != nil {
			return err
		}
		s.push(1)
	case 0x87, 's', 0x92: // TUPLE3, SETITEM, NEWOBJ_EX: net -2
		if err := s.pop(3); err != nil {
			return err
		}
		s.push(1)
	case '0': // POP: removes the top item, or the topmost mark when nothing is above it
		if len(s.marks) > 0 && s.depth == s.marks[len(s.marks)-1] {
			return s.popMark()
		}
		return s.pop(1)
	case '.': // STOP
		if err := s.pop(1); err != nil {
			return err
		}
		return errStop
	default:
		return errors.New("unknown opcode")
	}
	return nil
}

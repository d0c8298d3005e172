// Package replay implements the ESP anti-replay window of RFC 4303 §3.4.3
// with extended sequence numbers (RFC 4303 Appendix A) as a ring of 64-bit
// bitmap blocks (RFC 6479), so a check and an update cost constant time.
//
// A receiver calls Check before authenticating a packet (it learns the full
// 64-bit sequence number the ICV must cover) and Accept after the ICV
// verified, as RFC 4303 §3.4.3 orders.
package replay

import "sync"

// DefaultSize is the window size used when a caller asks for less.
const DefaultSize = 1024

// Result says why Check or Accept refused a sequence number.
type Result uint8

const (
	OK Result = iota
	Duplicate
	TooOld
	Invalid // sequence number 0, or below the first ESN epoch
)

func (r Result) String() string {
	switch r {
	case OK:
		return "ok"
	case Duplicate:
		return "duplicate"
	case TooOld:
		return "too old"
	case Invalid:
		return "invalid"
	}
	return "unknown"
}

// Window is safe for concurrent use by several receive goroutines.
type Window struct {
	mu     sync.Mutex
	top    uint64   // highest sequence number accepted
	blocks []uint64 // ring of bitmap blocks, len is a power of two
	size   uint64   // packets the window covers
	esn    bool
}

// New returns a window of at least size packets (DefaultSize when size is
// smaller), rounded up to a power of two multiple of 64.
func New(size uint32, esn bool) *Window {
	n := uint64(DefaultSize)
	for n < uint64(size) {
		n <<= 1
	}
	// One spare block so the oldest block can be cleared while the window
	// still covers n packets.
	return &Window{blocks: make([]uint64, n/64+1+nextPow2Pad(n/64+1)), size: n, esn: esn}
}

func nextPow2Pad(n uint64) uint64 {
	p := uint64(1)
	for p < n {
		p <<= 1
	}
	return p - n
}

// Size returns the number of packets the window covers.
func (w *Window) Size() uint64 { return w.size }

// Check returns the full sequence number for the 32 bits on the wire and
// whether a packet carrying it could still be accepted. It changes nothing.
func (w *Window) Check(low uint32) (uint64, Result) {
	w.mu.Lock()
	defer w.mu.Unlock()
	seq, ok := w.infer(low)
	if !ok {
		return 0, Invalid
	}
	return seq, w.check(seq)
}

// Accept records seq after its packet authenticated. It checks again because
// another goroutine may have accepted the same number in between.
func (w *Window) Accept(seq uint64) Result {
	w.mu.Lock()
	defer w.mu.Unlock()
	if r := w.check(seq); r != OK {
		return r
	}
	mask := uint64(len(w.blocks) - 1)
	if seq > w.top {
		cur, next := w.top>>6, seq>>6
		diff := next - cur
		if diff > uint64(len(w.blocks)) {
			diff = uint64(len(w.blocks))
		}
		for i := uint64(1); i <= diff; i++ {
			w.blocks[(cur+i)&mask] = 0
		}
		w.top = seq
	}
	w.blocks[(seq>>6)&mask] |= 1 << (seq & 63)
	return OK
}

func (w *Window) check(seq uint64) Result {
	if seq == 0 {
		return Invalid
	}
	if seq > w.top {
		return OK
	}
	if w.top-seq >= w.size {
		return TooOld
	}
	if w.blocks[(seq>>6)&uint64(len(w.blocks)-1)]&(1<<(seq&63)) != 0 {
		return Duplicate
	}
	return OK
}

// infer reconstructs the high 32 bits per RFC 4303 Appendix A2.2.
func (w *Window) infer(low uint32) (uint64, bool) {
	if !w.esn {
		return uint64(low), low != 0
	}
	tl, th := uint32(w.top), uint32(w.top>>32)
	wsize := uint32(w.size)
	var high uint32
	if tl >= wsize-1 {
		// Case A: the window lies within one epoch.
		high = th
		if low < tl-wsize+1 {
			high = th + 1
		}
	} else {
		// Case B: the window spans the boundary with the previous epoch.
		high = th
		if low >= tl-wsize+1 { // wraps: belongs to the previous epoch
			if th == 0 {
				return 0, false
			}
			high = th - 1
		}
	}
	return uint64(high)<<32 | uint64(low), true
}

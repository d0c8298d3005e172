package replay

import "testing"

func accept(t *testing.T, w *Window, low uint32) uint64 {
	t.Helper()
	seq, r := w.Check(low)
	if r != OK {
		t.Fatalf("Check(%#x) = %v, want ok", low, r)
	}
	if r := w.Accept(seq); r != OK {
		t.Fatalf("Accept(%#x) = %v, want ok", seq, r)
	}
	return seq
}

func TestWindowInOrderDuplicateTooOld(t *testing.T) {
	w := New(1024, false)
	if w.Size() != 1024 {
		t.Fatalf("size %d", w.Size())
	}
	for i := uint32(1); i <= 3000; i++ {
		accept(t, w, i)
	}
	if _, r := w.Check(3000); r != Duplicate {
		t.Fatalf("replayed 3000: %v", r)
	}
	if _, r := w.Check(3000 - 1023); r != Duplicate {
		t.Fatalf("oldest in-window duplicate: %v", r)
	}
	if _, r := w.Check(3000 - 1024); r != TooOld {
		t.Fatalf("just outside the window: %v", r)
	}
	if _, r := w.Check(0); r != Invalid {
		t.Fatalf("seq 0: %v", r)
	}
}

func TestWindowOutOfOrderWithinWindow(t *testing.T) {
	w := New(1024, false)
	accept(t, w, 2000)
	// Every number in the window below the top is still acceptable once.
	for i := uint32(2000 - 1023); i < 2000; i += 7 {
		accept(t, w, i)
		if _, r := w.Check(i); r != Duplicate {
			t.Fatalf("second %d: %v", i, r)
		}
	}
	// A large jump clears the old bits: numbers that were seen and are still
	// inside the new window stay duplicates, and fresh ones are accepted.
	accept(t, w, 2900)
	if _, r := w.Check(2000); r != Duplicate {
		t.Fatalf("2000 after jump: %v", r)
	}
	accept(t, w, 2500)
	if _, r := w.Check(1000); r != TooOld {
		t.Fatalf("1000 after jump: %v", r)
	}
	// A jump beyond the whole ring must not leave stale bits behind.
	accept(t, w, 1_000_000)
	accept(t, w, 1_000_000-64*5)
	accept(t, w, 1_000_000-1000)
}

func TestWindowDoubleAcceptRace(t *testing.T) {
	w := New(0, false)
	seq, _ := w.Check(5)
	if r := w.Accept(seq); r != OK {
		t.Fatal(r)
	}
	if r := w.Accept(seq); r != Duplicate {
		t.Fatalf("second accept of the same number: %v", r)
	}
}

func TestWindowESNWrap(t *testing.T) {
	w := New(1024, true)
	// Move to the end of epoch 0 in two steps (a first packet can only be
	// near the start of epoch 0).
	accept(t, w, 0x80000000)
	accept(t, w, 0xffffff00)
	accept(t, w, 0xffffffff)
	// The next low values belong to epoch 1.
	if seq := accept(t, w, 0x00000002); seq != 1<<32|2 {
		t.Fatalf("after wrap got %#x, want %#x", seq, uint64(1)<<32|2)
	}
	// Late packets from epoch 0 that are still inside the window are
	// accepted as epoch 0 (Case B of RFC 4303 A2.2), duplicates are not.
	if seq := accept(t, w, 0xfffffff0); seq != 0xfffffff0 {
		t.Fatalf("late epoch-0 packet inferred as %#x", seq)
	}
	if _, r := w.Check(0xffffffff); r != Duplicate {
		t.Fatalf("duplicate across wrap: %v", r)
	}
	// Below the window's epoch-0 part the number is taken as epoch 1 (the
	// ICV over the inferred high bits then decides, RFC 4303 A2.2).
	if seq, _ := w.Check(0xfffff000); seq != 1<<32|0xfffff000 {
		t.Fatalf("old epoch-0 number inferred as %#x", seq)
	}
	// Continue in epoch 1 past the window size: Case A again.
	accept(t, w, 5000)
	if seq, _ := w.Check(6000); seq != 1<<32|6000 {
		t.Fatalf("epoch 1 inference %#x", seq)
	}
	// A low number below the window in Case A is taken as the next epoch.
	if seq, r := w.Check(10); seq != 2<<32|10 || r != OK {
		t.Fatalf("Case A wrap inference %#x %v", seq, r)
	}
}

func TestWindowESNEpochZeroStart(t *testing.T) {
	w := New(1024, true)
	// Nothing received yet: a number in the "previous epoch" of epoch 0
	// cannot exist.
	if _, r := w.Check(0xfffffff0); r != Invalid {
		t.Fatalf("got %v", r)
	}
	accept(t, w, 1)
}

func BenchmarkWindow(b *testing.B) {
	w := New(1024, true)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		seq, _ := w.Check(uint32(i + 1))
		w.Accept(seq)
	}
}

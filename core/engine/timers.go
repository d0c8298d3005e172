package engine

import (
	"container/heap"
	"time"

	"github.com/veil-ipsec/veil/core/ikesa"
)

// timerHeap holds one entry per (SA, deadline); stale entries (the SA was
// rescheduled or died) are skipped when popped.
type timerHeap []timerEntry

type timerEntry struct {
	at time.Time
	sa *ikesa.SA
}

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h timerHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)        { *h = append(*h, x.(timerEntry)) }
func (h *timerHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = timerEntry{}
	*h = old[:len(old)-1]
	return x
}

func (e *Engine) schedule(sa *ikesa.SA) {
	at := sa.NextDeadline()
	if at.IsZero() {
		delete(e.sched, sa)
		return
	}
	if cur, ok := e.sched[sa]; ok && cur.Equal(at) {
		return
	}
	e.sched[sa] = at
	heap.Push(&e.timers, timerEntry{at: at, sa: sa})
}

// runTimersLocked fires every due SA timer and returns the next deadline.
func (e *Engine) runTimersLocked() time.Time {
	now := e.cfg.Clock.Now()
	for e.timers.Len() > 0 {
		top := e.timers[0]
		if cur, ok := e.sched[top.sa]; !ok || !cur.Equal(top.at) {
			heap.Pop(&e.timers)
			continue
		}
		if now.Before(top.at) {
			return top.at
		}
		heap.Pop(&e.timers)
		delete(e.sched, top.sa)
		top.sa.OnTimer(now)
		e.after(top.sa)
	}
	return time.Time{}
}

package sqlstore

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestWriteGroup: rows queued while a batch is being written go out
// together in the next one, and every caller gets its own batch's outcome.
func TestWriteGroup(t *testing.T) {
	var g writeGroup[int]
	release := make(chan struct{})
	var mu sync.Mutex
	var batches [][]int
	write := func(b []int) error {
		mu.Lock()
		batches = append(batches, slices.Clone(b))
		first := len(batches) == 1
		mu.Unlock()
		if first {
			<-release
			return nil
		}
		if slices.Contains(b, 3) {
			return errors.New("batch failed")
		}
		return nil
	}
	errs := make([]error, 6)
	var wg sync.WaitGroup
	wg.Go(func() { errs[0] = g.add(0, write) })
	for {
		mu.Lock()
		n := len(batches)
		mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	for i := 1; i < 6; i++ {
		wg.Go(func() { errs[i] = g.add(i, write) })
	}
	for {
		g.mu.Lock()
		n := len(g.queue)
		g.mu.Unlock()
		if n == 5 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if len(batches) != 2 || !slices.Equal(batches[0], []int{0}) || len(batches[1]) != 5 {
		t.Fatalf("batches %v, want [0] then the five queued meanwhile", batches)
	}
	if errs[0] != nil {
		t.Fatalf("first batch: %v", errs[0])
	}
	for i := 1; i < 6; i++ {
		if errs[i] == nil || errs[i].Error() != "batch failed" {
			t.Fatalf("row %d: %v, want its batch's error", i, errs[i])
		}
	}
	if g.writing || len(g.queue) != 0 {
		t.Fatalf("group left writing=%v with %d queued", g.writing, len(g.queue))
	}
}

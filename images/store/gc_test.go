package store_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nova-container-agent/nova-container-agent/images/store"
	"github.com/nova-container-agent/nova-container-agent/images/store/storetest"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func TestGC(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	eng := storetest.NewEngine()
	eng.SetClock(clk.Now)
	conv := &tarConverter{}

	// Five images of ~300 kB, created an hour apart; image i used at hour i.
	var tags []string
	var size int64
	st := newStore(t, eng, conv, store.Options{MaxBytes: 1, MinIdle: 30 * time.Minute, Now: clk.Now})
	for i := range 5 {
		data := storetest.MiniRootfs(t, fmt.Sprintf("gc-%d", i))
		id := fmt.Sprintf("00000000-0000-0000-0000-00000000000%d", i)
		tag, err := st.Ensure(ctx, id, sha(data), newSource(data).open)
		if err != nil {
			t.Fatalf("Ensure %d: %v", i, err)
		}
		tags = append(tags, tag)
		info, _ := eng.InspectImage(ctx, tag)
		size = info.Size
		clk.Add(time.Hour)
	}
	// Image 0 is used again now (most recent), image 3 runs in a container,
	// image 4 was ensured less than MinIdle ago... make it so:
	clk.Add(-50 * time.Minute)
	data0 := storetest.MiniRootfs(t, "gc-0")
	if _, err := st.Ensure(ctx, "00000000-0000-0000-0000-000000000000", sha(data0), newSource(data0).open); err != nil {
		t.Fatalf("re-Ensure 0: %v", err)
	}
	if err := eng.CreateContainer("vm-3", tags[3]); err != nil {
		t.Fatal(err)
	}

	// Budget for two images: 1 (oldest use) and 2 go, 3 is in use, 4 and 0 are recent.
	st2, _ := store.New(eng, conv, store.Options{MaxBytes: 2 * size, MinIdle: 30 * time.Minute, Now: clk.Now})
	// st2 has no in-memory recency (an agent restart): creation time counts.
	res, err := st2.GC(ctx)
	if err != nil {
		t.Fatalf("GC: %v", err)
	}
	// Candidates by creation: 0 (h0), 1, 2 (3 in use, 4 created 10 min ago < MinIdle).
	if want := []string{tags[0], tags[1], tags[2]}; !slices.Equal(res.Removed, want) {
		t.Errorf("after restart GC removed %v, want %v", res.Removed, want)
	}
	if res.Total != 5*size || res.Kept != 2*size || res.Freed != 3*size {
		t.Errorf("sizes: total %d kept %d freed %d (image %d)", res.Total, res.Kept, res.Freed, size)
	}
	for _, i := range []int{3, 4} {
		if _, err := eng.InspectImage(ctx, tags[i]); err != nil {
			t.Errorf("image %d removed: %v", i, err)
		}
	}
}

func TestGCUsesRecencyAndBudget(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	eng := storetest.NewEngine()
	eng.SetClock(clk.Now)
	var tags []string
	var size int64
	st := newStore(t, eng, &tarConverter{}, store.Options{MaxBytes: 1, MinIdle: time.Minute, Now: clk.Now})
	datas := make([][]byte, 3)
	for i := range 3 {
		datas[i] = storetest.MiniRootfs(t, fmt.Sprintf("rec-%d", i))
		tag, err := st.Ensure(ctx, fmt.Sprintf("10000000-0000-0000-0000-00000000000%d", i), sha(datas[i]), newSource(datas[i]).open)
		if err != nil {
			t.Fatal(err)
		}
		tags = append(tags, tag)
		info, _ := eng.InspectImage(ctx, tag)
		size = info.Size
		clk.Add(time.Hour)
	}
	// Touch image 0: now it is the most recently used.
	if _, err := st.Ensure(ctx, "10000000-0000-0000-0000-000000000000", sha(datas[0]), newSource(datas[0]).open); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Hour)
	st.SetMaxBytes(2 * size)
	res, err := st.GC(ctx)
	if err != nil {
		t.Fatalf("GC: %v", err)
	}
	if !slices.Equal(res.Removed, []string{tags[1]}) {
		t.Errorf("removed %v, want only the least recently used %s", res.Removed, tags[1])
	}
	// Under budget: nothing more to do.
	res, err = st.GC(ctx)
	if err != nil || len(res.Removed) != 0 {
		t.Errorf("second GC removed %v, %v", res.Removed, err)
	}
}

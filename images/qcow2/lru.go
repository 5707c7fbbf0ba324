package qcow2

import "container/list"

// lru is a fixed-capacity least-recently-used map keyed by host offset. Not safe for concurrent
// use: Image guards it with its mutex.
type lru[V any] struct {
	cap   int
	ll    *list.List
	items map[int64]*list.Element
}

type lruEntry[V any] struct {
	key int64
	val V
}

func newLRU[V any](capacity int) *lru[V] {
	return &lru[V]{cap: capacity, ll: list.New(), items: make(map[int64]*list.Element, capacity)}
}

func (c *lru[V]) get(k int64) (V, bool) {
	if e, ok := c.items[k]; ok {
		c.ll.MoveToFront(e)
		return e.Value.(*lruEntry[V]).val, true
	}
	var zero V
	return zero, false
}

func (c *lru[V]) put(k int64, v V) {
	if e, ok := c.items[k]; ok {
		e.Value.(*lruEntry[V]).val = v
		c.ll.MoveToFront(e)
		return
	}
	c.items[k] = c.ll.PushFront(&lruEntry[V]{key: k, val: v})
	for c.ll.Len() > c.cap {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.items, old.Value.(*lruEntry[V]).key)
	}
}

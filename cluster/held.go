package cluster

import (
	"hash/maphash"
	"sync"
)

// heldLists are the lists a node serves itself: those whose owner record
// names it under its current epoch, verified when first served. Calls
// served locally hold a list while they run, so that a list being handed
// off or unloaded is drained of them first. It is safe for concurrent use.
type heldLists struct {
	seed   maphash.Seed
	shards [32]heldShard
}

type heldShard struct {
	mu sync.Mutex // guards m and every *held in it
	m  map[string]*held
}

type held struct {
	epoch  uint64
	users  int           // local calls running
	moving bool          // being handed off or unloaded: no new calls
	idle   chan struct{} // closed when users drops to 0 while moving
}

func (h *heldLists) init() {
	h.seed = maphash.MakeSeed()
	for i := range h.shards {
		h.shards[i].m = make(map[string]*held)
	}
}

func (h *heldLists) shard(list string) *heldShard {
	return &h.shards[maphash.String(h.seed, list)%uint64(len(h.shards))]
}

// acquire holds list for a local call if the node holds it under epoch.
// It reports whether it did, and whether the list is moving.
func (h *heldLists) acquire(list string, epoch uint64) (ok, moving bool) {
	s := h.shard(list)
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.m[list]
	switch {
	case l == nil || l.epoch != epoch:
		return false, false
	case l.moving:
		return false, true
	}
	l.users++
	return true, false
}

// has reports whether the node holds list under epoch, without holding it
// for a call.
func (h *heldLists) has(list string, epoch uint64) bool {
	s := h.shard(list)
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.m[list]
	return l != nil && l.epoch == epoch
}

// add records that the node holds list under epoch and holds it for one
// call, unless it is moving.
func (h *heldLists) add(list string, epoch uint64) bool {
	s := h.shard(list)
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.m[list]
	if l != nil && l.moving {
		return false
	}
	if l == nil {
		l = &held{}
		s.m[list] = l
	}
	l.epoch = epoch
	l.users++
	return true
}

// release ends a local call.
func (h *heldLists) release(list string) {
	s := h.shard(list)
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.m[list]
	if l == nil {
		return
	}
	l.users--
	if l.users == 0 && l.idle != nil {
		close(l.idle)
		l.idle = nil
	}
}

// startMoving marks list moving, holding it if it was not held; it
// reports false if it was moving already.
func (h *heldLists) startMoving(list string) bool {
	s := h.shard(list)
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.m[list]
	if l == nil {
		l = &held{}
		s.m[list] = l
	}
	if l.moving {
		return false
	}
	l.moving = true
	if l.users > 0 {
		l.idle = make(chan struct{})
	}
	return true
}

// startMovingIfAbsent marks list moving if nothing holds it, and
// reports whether it did.
func (h *heldLists) startMovingIfAbsent(list string) bool {
	s := h.shard(list)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[list] != nil {
		return false
	}
	s.m[list] = &held{moving: true}
	return true
}

// waitIdle waits until no local call holds a moving list.
func (h *heldLists) waitIdle(list string) {
	s := h.shard(list)
	s.mu.Lock()
	l := s.m[list]
	var idle chan struct{}
	if l != nil {
		idle = l.idle
	}
	s.mu.Unlock()
	if idle != nil {
		<-idle
	}
}

// drop forgets a list once it has moved.
func (h *heldLists) drop(list string) {
	s := h.shard(list)
	s.mu.Lock()
	delete(s.m, list)
	s.mu.Unlock()
}

// released forgets a list whose server stopped on its own (idle), so that
// the set stays as small as what the System holds; the owner record
// still names the node, which verifies it again on the next call.
func (h *heldLists) released(list string) {
	s := h.shard(list)
	s.mu.Lock()
	if l := s.m[list]; l != nil && l.users == 0 && !l.moving {
		delete(s.m, list)
	}
	s.mu.Unlock()
}

// all returns the lists held, moving ones included.
func (h *heldLists) all() []string {
	var lists []string
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.Lock()
		for list := range s.m {
			lists = append(lists, list)
		}
		s.mu.Unlock()
	}
	return lists
}

// count returns how many lists are held.
func (h *heldLists) count() int {
	n := 0
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// ownerCache remembers the owners of lists served elsewhere, so that a
// forwarded request costs no read of the owners bucket. An entry is used
// only while its owner is alive under its epoch, and is forgotten when a
// request sent by it fails. It holds at most maxCachedOwners entries and
// starts afresh when full. It is safe for concurrent use.
type ownerCache struct {
	seed   maphash.Seed
	shards [16]ownerShard
}

type ownerShard struct {
	mu sync.Mutex // guards m
	m  map[string]ownerRecord
}

const maxCachedOwners = 1 << 16

func (c *ownerCache) init() {
	c.seed = maphash.MakeSeed()
	for i := range c.shards {
		c.shards[i].m = make(map[string]ownerRecord)
	}
}

func (c *ownerCache) shard(list string) *ownerShard {
	return &c.shards[maphash.String(c.seed, list)%uint64(len(c.shards))]
}

func (c *ownerCache) get(list string) (ownerRecord, bool) {
	s := c.shard(list)
	s.mu.Lock()
	r, ok := s.m[list]
	s.mu.Unlock()
	return r, ok
}

func (c *ownerCache) put(list string, r ownerRecord) {
	s := c.shard(list)
	s.mu.Lock()
	if len(s.m) >= maxCachedOwners/len(c.shards) {
		clear(s.m)
	}
	s.m[list] = r
	s.mu.Unlock()
}

func (c *ownerCache) forget(list string) {
	s := c.shard(list)
	s.mu.Lock()
	delete(s.m, list)
	s.mu.Unlock()
}

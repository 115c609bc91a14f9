package token

import (
	"container/heap"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// Defaults of a TableConfig.
const (
	DefaultMaxTokens      = 1 << 16
	DefaultMaxTokensPerIP = 256
	DefaultMaxLifetime    = 5 * time.Minute
)

// TableConfig bounds a Table. Zero fields take the documented defaults.
type TableConfig struct {
	// MaxTokens caps the tokens remembered at once. Zero means 65 536
	// (a few MB at most).
	MaxTokens int
	// MaxPerIP caps the tokens remembered for one IP address, so that one
	// address cannot fill the table for everyone. Zero means 256: a LAN
	// party of 64 behind one NAT reconnecting four times within a token's
	// lifetime.
	MaxPerIP int
	// MaxLifetime refuses a token whose expiry is more than this far in the
	// future, whatever its issuer chose. A token carries only its expiry,
	// so this is what bounds how old a token may be when it is used, and
	// how long the table must remember it. Zero means 5 minutes.
	MaxLifetime time.Duration
}

func (c *TableConfig) populate() {
	if c.MaxTokens <= 0 {
		c.MaxTokens = DefaultMaxTokens
	}
	if c.MaxPerIP <= 0 {
		c.MaxPerIP = DefaultMaxTokensPerIP
	}
	if c.MaxLifetime <= 0 {
		c.MaxLifetime = DefaultMaxLifetime
	}
}

// Errors of a Table; each refuses one token and nobody else's.
var (
	ErrReused        = errors.New("token: already used from another address")
	ErrLifetime      = errors.New("token: expires too far in the future")
	ErrTooManyFromIP = errors.New("token: too many tokens in use from one address")
	ErrTableFull     = errors.New("token: too many tokens in use")
)

// Table remembers, for each token a server accepted, the address that used
// it and until when, so that a token admits one client only: the same token
// from another address is refused. Remember a token only once its address
// is proven (the client answered something sent there), or a forged source
// address could fill the table and lock its owner out.
//
// The table cannot be filled from one address: a token is refused when it
// expires too far in the future (TableConfig.MaxLifetime), expired tokens
// are forgotten before any other check, and each IP address may hold at
// most TableConfig.MaxPerIP entries. When the table is full of live tokens
// from many addresses, a new token is refused and every remembered one goes
// on working.
//
// Time is an argument, never read from a clock. A Table is safe for
// concurrent use; the zero value is not ready, use NewTable.
type Table struct {
	cfg TableConfig

	mu    sync.Mutex
	used  map[[16]byte]tableEntry
	perIP map[netip.Addr]int
	// byExpiry holds every entry once, soonest expiry first: entries never
	// change, so expiring them pops from the front.
	byExpiry expiryHeap
}

type tableEntry struct {
	addr    netip.AddrPort
	expires int64 // Unix seconds: tokens expire on whole seconds
}

// NewTable returns an empty table with cfg's bounds.
func NewTable(cfg TableConfig) *Table {
	cfg.populate()
	return &Table{cfg: cfg, used: make(map[[16]byte]tableEntry), perIP: make(map[netip.Addr]int)}
}

// Config returns the table's bounds, defaults filled in.
func (t *Table) Config() TableConfig { return t.cfg }

// Check reports whether the token c may be used from addr at now without
// remembering it: nil if Use would accept it, or the error Use would
// return. A server checks a token this way before the address is proven.
func (t *Table) Check(c *Claims, addr netip.AddrPort, now time.Time) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, err := t.check(c, unmap(addr), now)
	return err
}

// Use checks the token c as Check does and remembers it for addr until it
// expires. A token already remembered for addr is accepted again (a resent
// handshake, a reconnection) and takes no new entry. The checks, in order:
// the lifetime (ErrLifetime), reuse from another address (ErrReused), the
// address's share (ErrTooManyFromIP), the table's size (ErrTableFull).
func (t *Table) Use(c *Claims, addr netip.AddrPort, now time.Time) error {
	addr = unmap(addr)
	t.mu.Lock()
	defer t.mu.Unlock()
	known, err := t.check(c, addr, now)
	if err != nil || known {
		return err
	}
	e := tableEntry{addr: addr, expires: c.Expires.Unix()}
	t.used[c.Tag] = e
	t.perIP[addr.Addr()]++
	heap.Push(&t.byExpiry, expiryItem{expires: e.expires, tag: c.Tag})
	return nil
}

// check is Check with t.mu held; known is true for a token already
// remembered for addr.
func (t *Table) check(c *Claims, addr netip.AddrPort, now time.Time) (known bool, err error) {
	if c.Expires.Sub(now) > t.cfg.MaxLifetime {
		return false, fmt.Errorf("%w: expires in %v, the limit is %v", ErrLifetime, c.Expires.Sub(now).Round(time.Second), t.cfg.MaxLifetime)
	}
	t.expire(now)
	if e, ok := t.used[c.Tag]; ok {
		if e.addr != addr {
			return false, ErrReused
		}
		return true, nil
	}
	if t.perIP[addr.Addr()] >= t.cfg.MaxPerIP {
		return false, fmt.Errorf("%w: %d from %s", ErrTooManyFromIP, t.cfg.MaxPerIP, addr.Addr())
	}
	if len(t.used) >= t.cfg.MaxTokens {
		return false, fmt.Errorf("%w: %d", ErrTableFull, t.cfg.MaxTokens)
	}
	return false, nil
}

// Expire forgets the tokens expired at now. Check and Use do it first
// anyway; a server calls it now and then so that memory falls when no new
// token arrives.
func (t *Table) Expire(now time.Time) {
	t.mu.Lock()
	t.expire(now)
	t.mu.Unlock()
}

// expire pops the expired entries (t.mu held). A token is valid before its
// expiry second, not at it.
func (t *Table) expire(now time.Time) {
	sec := now.Unix()
	for len(t.byExpiry) > 0 && t.byExpiry[0].expires <= sec {
		it := heap.Pop(&t.byExpiry).(expiryItem)
		e := t.used[it.tag]
		delete(t.used, it.tag)
		ip := e.addr.Addr()
		if t.perIP[ip]--; t.perIP[ip] <= 0 {
			delete(t.perIP, ip)
		}
	}
}

// Len is the number of tokens remembered.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.used)
}

// unmap makes an IPv4 address mapped into IPv6 the IPv4 address, so that
// both forms count as one address.
func unmap(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

type expiryItem struct {
	expires int64
	tag     [16]byte
}

// expiryHeap is a min-heap of entries by expiry, for container/heap.
type expiryHeap []expiryItem

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expires < h[j].expires }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiryItem)) }
func (h *expiryHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

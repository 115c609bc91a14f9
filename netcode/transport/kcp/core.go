package kcp

import (
	"encoding/binary"
	"reflect"
	"sync"
	"time"
	"unsafe"

	kcpgo "github.com/xtaci/kcp-go/v5"

	"github.com/roomwire/roomwire/netcode/transport/secure"
)

// This file is the only one that knows kcp-go's ARQ core, KCP, from the
// inside. The core is exported and does no I/O, which is what lets the
// listener's own loops drive every session, but three things such a
// driver needs are not exported in v5.6.24, the version go.mod pins:
//
//   - (*KCP).flush. Update flushes only once an interval (10 ms) has passed
//     since its last flush, so a Write just after one would wait up to
//     10 ms; kcp-go's own UDPSession.Write calls flush directly, and so do
//     we, through a pull linkname (kcpFlush).
//   - rx_srtt, the smoothed round-trip time, which only UDPSession.GetSRTT
//     reads. kcpSRTT reads it with reflect, read-only.
//   - the size NewKCP gives its three segment rings: 64 slots of 64 bytes
//     each, 12 KB per session, most of an idle session's memory. The rings
//     grow when full, so newCore starts them at ringSlots (shrinkRings).
//   - what an idle core still holds (trimCore): rings grown in a burst,
//     the storage of its receive heap and of its acknowledgement list,
//     and, in that heap, a stale reference. The heap's Pop shortens its
//     slice without clearing the slot it vacated, so every core keeps the
//     1500-byte buffer of the last segment it received reachable, though
//     that buffer went back to kcp-go's pool long ago: 1.5 KB or more per
//     idle session. Its counters (snd_nxt, rcv_nxt) tell idle from busy.
//   - buffer, the MTU-sized scratch that only flush writes packets into:
//     an idle core lends it to a pool (releaseBuffer), and gets one back
//     before anything that may flush (restoreBuffer, by Session.core).
//
// TestKCPInternals fails if an upgrade of kcp-go moves any of them; until
// then each falls back to something safe (no RTT, 64-slot rings, no trim)
// rather than break, except the linkname, which fails the build.

// kcpFlush is (*KCP).flush: it sends pending acknowledgements, window
// probes, new segments the windows allow and due retransmissions through
// the output callback, and returns the milliseconds until the nearest
// retransmission (at most the interval). ackOnly sends only the
// acknowledgements.
//
//go:linkname kcpFlush github.com/xtaci/kcp-go/v5.(*KCP).flush
func kcpFlush(k *kcpgo.KCP, ackOnly bool) uint32

// epoch is where mono counts from.
var epoch = time.Now()

// mono is the monotonic clock of the timer heaps, in nanoseconds.
func mono() int64 { return int64(time.Since(epoch)) }

// Every session's KCP settings that Config does not choose.
const (
	// kcpConv is every session's KCP conversation id: each session has its
	// own keys and address, so ids need not tell sessions apart.
	kcpConv = 1
	// mss is the largest segment: a sealed packet's payload less KCP's
	// header. Write cuts its bytes into segments of at most mss, each a
	// message of one fragment: stream mode's wire (kcp-go exports no
	// switch to stream mode), without its merging of a small write into a
	// segment still queued, which only happens when the window is full.
	mss = secure.MaxPayload - kcpgo.IKCP_OVERHEAD
	// ringSlots is how many slots each segment ring starts with (3
	// segments; a full ring grows to 8, then doubles), and how many an
	// idle core's empty rings keep: an idle session's rare exchanges (a
	// request, its reply and an acknowledgement) fit in them. Fewer would
	// save 192 bytes a ring, but the next exchange would grow it to 8 (512
	// bytes).
	ringSlots = 4
)

// newCore returns a KCP core tuned by cfg that hands each packet to output.
func newCore(cfg *Config, output func(p []byte)) *kcpgo.KCP {
	k := kcpgo.NewKCP(kcpConv, func(buf []byte, size int) { output(buf[:size]) })
	shrinkRings(k)
	k.NoDelay(cfg.NoDelay, cfg.Interval, cfg.Resend, cfg.NoCongestion)
	k.WndSize(cfg.Window, cfg.Window)
	k.SetMtu(secure.MaxPayload)
	return k
}

// scan reports whether the KCP packet p carries data (PUSH segments),
// which the core acknowledges, and whether it asks for our window size
// (WASK): Input only notes the question, and the answer goes out at the
// next flush, which an idle session would not have.
func scan(p []byte) (push, wask bool) {
	for len(p) >= kcpgo.IKCP_OVERHEAD {
		switch p[4] {
		case kcpgo.IKCP_CMD_PUSH:
			push = true
		case kcpgo.IKCP_CMD_WASK:
			wask = true
		}
		n := binary.LittleEndian.Uint32(p[20:])
		if uint64(n) > uint64(len(p)-kcpgo.IKCP_OVERHEAD) {
			break
		}
		p = p[kcpgo.IKCP_OVERHEAD+int(n):]
	}
	return push, wask
}

// srttIndex is the index of KCP's rx_srtt field, nil if it has none.
var srttIndex = func() []int {
	f, ok := reflect.TypeFor[kcpgo.KCP]().FieldByName("rx_srtt")
	if !ok || f.Type.Kind() != reflect.Int32 {
		return nil
	}
	return f.Index
}()

// kcpSRTT is k's smoothed round-trip time in milliseconds, 0 before its
// first sample. The caller holds the session's lock.
func kcpSRTT(k *kcpgo.KCP) int32 {
	if srttIndex == nil {
		return 0
	}
	return int32(reflect.ValueOf(k).Elem().FieldByIndex(srttIndex).Int())
}

// ringLayout locates the segment rings in a KCP and the fields of a ring.
type ringLayout struct {
	rings                  []int // KCP's fields of type *RingBuffer[segment]
	head, tail, elements   int   // the ring's fields
	elementsType, ringType reflect.Type
}

// rings is KCP's ring layout, nil if it is not the one this file knows.
var rings = func() *ringLayout {
	kt := reflect.TypeFor[kcpgo.KCP]()
	var l ringLayout
	for _, name := range [...]string{"snd_queue", "rcv_queue", "snd_buf"} {
		f, ok := kt.FieldByName(name)
		if !ok || len(f.Index) != 1 || f.Type.Kind() != reflect.Pointer || f.Type.Elem().Kind() != reflect.Struct {
			return nil
		}
		if l.ringType == nil {
			l.ringType = f.Type.Elem()
		} else if l.ringType != f.Type.Elem() {
			return nil
		}
		l.rings = append(l.rings, f.Index[0])
	}
	field := func(name string, kind reflect.Kind) (int, reflect.Type, bool) {
		f, ok := l.ringType.FieldByName(name)
		if !ok || len(f.Index) != 1 || f.Type.Kind() != kind {
			return 0, nil, false
		}
		return f.Index[0], f.Type, true
	}
	var ok1, ok2, ok3 bool
	l.head, _, ok1 = field("head", reflect.Int)
	l.tail, _, ok2 = field("tail", reflect.Int)
	l.elements, l.elementsType, ok3 = field("elements", reflect.Slice)
	if !ok1 || !ok2 || !ok3 {
		return nil
	}
	return &l
}()

// shrinkRings gives each empty segment ring of k with more than
// ringSlots slots a new slice of that many: a new core's, instead of
// NewKCP's 64, and an idle core's that grew in a burst. A ring grows by
// itself when it fills, so the session keeps working whatever the sizes
// are; only the memory differs.
func shrinkRings(k *kcpgo.KCP) {
	if rings == nil {
		return
	}
	v := reflect.ValueOf(k).Elem()
	for _, i := range rings.rings {
		r := v.Field(i)
		if r.IsNil() {
			continue
		}
		r = r.Elem()
		head, tail := r.Field(rings.head), r.Field(rings.tail)
		if head.Int() != tail.Int() {
			continue // not empty: leave it
		}
		el := r.Field(rings.elements)
		if el.Len() <= ringSlots {
			continue
		}
		settable(el).Set(reflect.MakeSlice(rings.elementsType, ringSlots, ringSlots))
		settable(head).SetInt(0)
		settable(tail).SetInt(0)
	}
}

// settable is f, an unexported field that reflect will not set, reached
// through a pointer made from its address, which it will.
func settable(f reflect.Value) reflect.Value {
	return reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem()
}

// bufferOffset is where KCP keeps its flush buffer, a []byte; ok is false
// if it has none.
var bufferOffset, bufferOK = func() (uintptr, bool) {
	f, ok := reflect.TypeFor[kcpgo.KCP]().FieldByName("buffer")
	if !ok || len(f.Index) != 1 || f.Type != reflect.TypeFor[[]byte]() {
		return 0, false
	}
	return f.Offset, true
}()

// flushBuffers are the flush buffers idle cores lent, each of mtu bytes,
// the size newCore's SetMtu gave it.
var flushBuffers sync.Pool

// coreBuffer is k's flush buffer field.
func coreBuffer(k *kcpgo.KCP) *[]byte {
	return (*[]byte)(unsafe.Add(unsafe.Pointer(k), bufferOffset))
}

// releaseBuffer lends k's flush buffer to flushBuffers and reports
// whether it did. k must not flush until restoreBuffer gives it one back:
// its flush would write to a nil slice.
func releaseBuffer(k *kcpgo.KCP) bool {
	if !bufferOK {
		return false
	}
	b := coreBuffer(k)
	if len(*b) != secure.MaxPayload {
		return false
	}
	buf := *b
	*b = nil
	flushBuffers.Put(&buf)
	return true
}

// restoreBuffer gives k, whose buffer releaseBuffer lent, one of the
// right size again.
func restoreBuffer(k *kcpgo.KCP) {
	if p, ok := flushBuffers.Get().(*[]byte); ok {
		*coreBuffer(k) = *p
		return
	}
	*coreBuffer(k) = make([]byte, secure.MaxPayload)
}

// idleLayout locates what trimCore reads and clears in a KCP.
type idleLayout struct {
	sndNxt, rcvNxt int // the next sequence numbers to send and to receive
	acklist        int // the acknowledgements to send
	rcvBuf         int // *segmentHeap: segments received out of order
	segments       int // the heap's slice
}

// idle is KCP's layout for trimCore, nil if it is not the one this file
// knows.
var idle = func() *idleLayout {
	if rings == nil {
		return nil
	}
	kt := reflect.TypeFor[kcpgo.KCP]()
	var l idleLayout
	top := func(name string, kind reflect.Kind) (reflect.StructField, bool) {
		f, ok := kt.FieldByName(name)
		return f, ok && len(f.Index) == 1 && f.Type.Kind() == kind
	}
	snd, ok1 := top("snd_nxt", reflect.Uint32)
	rcv, ok2 := top("rcv_nxt", reflect.Uint32)
	acks, ok3 := top("acklist", reflect.Slice)
	buf, ok4 := top("rcv_buf", reflect.Pointer)
	if !ok1 || !ok2 || !ok3 || !ok4 || buf.Type.Elem().Kind() != reflect.Struct {
		return nil
	}
	seg, ok := buf.Type.Elem().FieldByName("segments")
	// The heap holds the rings' own element type.
	if !ok || len(seg.Index) != 1 || seg.Type != rings.elementsType {
		return nil
	}
	l.sndNxt, l.rcvNxt, l.acklist, l.rcvBuf = snd.Index[0], rcv.Index[0], acks.Index[0], buf.Index[0]
	l.segments = seg.Index[0]
	return &l
}()

// coreMark is k's two sequence counters together: it changes whenever k
// sends or receives a new segment, so an unchanged mark says k carried no
// data in between. It is 0 where the layout is unknown.
func coreMark(k *kcpgo.KCP) uint64 {
	if idle == nil {
		return 0
	}
	v := reflect.ValueOf(k).Elem()
	return v.Field(idle.sndNxt).Uint()<<32 | v.Field(idle.rcvNxt).Uint()
}

// trimCore lets an idle core's storage go: the empty rings shrink to
// ringSlots, an empty receive heap and acknowledgement list lose
// their slices, and a heap that holds segments drops its stale references
// past its length. Each grows again at its next use; nothing k holds is
// lost. The caller holds the session's lock.
func trimCore(k *kcpgo.KCP) {
	if idle == nil {
		return
	}
	shrinkRings(k)
	v := reflect.ValueOf(k).Elem()
	if acks := v.Field(idle.acklist); acks.Len() == 0 && acks.Cap() > 0 {
		settable(acks).SetZero()
	}
	h := v.Field(idle.rcvBuf)
	if h.IsNil() {
		return
	}
	segs := settable(h.Elem().Field(idle.segments))
	if segs.Len() == 0 {
		segs.SetZero()
		return
	}
	full := segs.Slice(0, segs.Cap())
	for i := segs.Len(); i < full.Len(); i++ {
		full.Index(i).SetZero()
	}
}

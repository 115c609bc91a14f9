package reliable

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// fuzzFrames is one valid frame of every type, the seeds of the fuzz targets.
func fuzzFrames() [][]byte {
	must := func(b []byte, err error) []byte {
		if err != nil {
			panic(err)
		}
		return b
	}
	id := [IDLen]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	return [][]byte{
		must(AppendHello(nil, Version, []byte("token"))),
		AppendWelcome(nil, Version, id, 1200),
		must(AppendEvent(nil, "chat", []byte("hi"))),
		must(AppendRequest(nil, 1, "$join", []byte{5, 'a', 'r', 'e', 'n', 'a'})),
		must(AppendReply(nil, 1, []byte("ok"))),
		AppendReplyError(nil, 2, "rooms: not in a game room"),
		AppendPing(nil, 1735689600000000000),
		AppendPong(nil, 1735689600000000000, 1735689600001500000),
		AppendClose(nil, CloseNormal, "client closed"),
		must(AppendResume(nil, Version, id, 7, []byte("ticket and proof"))),
		AppendResumed(nil, Version, 9, 1175),
		AppendAcked(nil, 4294967295),
	}
}

// reencode encodes f again. exact reports whether the result must equal, byte
// for byte, the frame f was decoded from; it need not for the text of CLOSE
// and REPLY_ERROR, which the encoders make valid UTF-8 of at most 256 bytes.
func reencode(t testing.TB, f Frame) (b []byte, exact bool) {
	t.Helper()
	var err error
	exact = true
	switch f.Type {
	case FrameHello:
		b, err = AppendHello(nil, f.Version, f.Payload)
	case FrameWelcome:
		b = AppendWelcome(nil, f.Version, f.ConnID, f.MaxDatagram)
	case FrameEvent:
		b, err = AppendEvent(nil, string(f.Name), f.Payload)
	case FrameRequest:
		b, err = AppendRequest(nil, f.ID, string(f.Name), f.Payload)
	case FrameReply:
		b, err = AppendReply(nil, f.ID, f.Payload)
	case FrameReplyError:
		b = AppendReplyError(nil, f.ID, string(f.Payload))
		exact = utf8.Valid(f.Payload) && len(f.Payload) <= MaxCloseReason
	case FramePing:
		b = AppendPing(nil, f.Time)
	case FramePong:
		b = AppendPong(nil, f.Echo, f.Time)
	case FrameClose:
		b = AppendClose(nil, f.Code, string(f.Payload))
		exact = utf8.Valid(f.Payload)
	case FrameChallenge:
		b = AppendChallenge(nil, [ChallengeLen]byte(f.Payload))
	case FrameResume:
		b, err = AppendResume(nil, f.Version, f.ConnID, f.Received, f.Payload)
	case FrameResumed:
		b = AppendResumed(nil, f.Version, f.Received, f.MaxDatagram)
	case FrameAcked:
		b = AppendAcked(nil, f.Received)
	default:
		t.Fatalf("decoded a frame of unknown type %s", f.Type)
	}
	if err != nil {
		t.Fatalf("a decoded %s must encode again: %v", f.Type, err)
	}
	return b, exact
}

// checkReencode checks that decoded frame f, read from the bytes orig (header
// included), encodes back to an equivalent frame.
func checkReencode(t testing.TB, f Frame, orig []byte) {
	t.Helper()
	b, exact := reencode(t, f)
	if exact {
		if !bytes.Equal(orig, b) { // testify only to report: this runs per fuzzed frame
			require.Equal(t, orig, b, "%s does not re-encode to its own bytes", f.Type)
		}
		return
	}
	typ, n, err := ParseHeader(b, MaxFrameLimit)
	require.NoError(t, err)
	require.Equal(t, f.Type, typ)
	require.Equal(t, len(b)-HeaderLen, n)
	g, err := ParseBody(typ, b[HeaderLen:])
	require.NoError(t, err)
	require.True(t, utf8.Valid(g.Payload))
	require.LessOrEqual(t, len(g.Payload), MaxCloseReason)
	require.Equal(t, TruncateReason(string(f.Payload)), string(g.Payload))
	g.Payload, f.Payload = nil, nil
	require.Equal(t, norm(f), norm(g))
}

// requireSentinel fails unless err wraps exactly one decoder sentinel.
func requireSentinel(t testing.TB, err error) {
	t.Helper()
	n := 0
	for _, s := range []error{ErrFrameTooLarge, ErrTruncated, ErrUnknownFrame, ErrBadName, ErrBadFrame} {
		if errors.Is(err, s) {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("error %v wraps %d sentinels, want 1", err, n)
	}
}

func FuzzReader(f *testing.F) {
	frames := fuzzFrames()
	var all []byte
	for _, fr := range frames {
		f.Add(fr)
		all = append(all, fr...)
	}
	f.Add(all)
	f.Add([]byte{})
	f.Add(all[:len(all)-3])                                   // cut inside a body
	f.Add(append(append([]byte(nil), frames[0]...), 0x03, 0)) // cut inside a header
	f.Add([]byte{0x03, 0xff, 0xff, 0xff})                     // over the limit
	f.Add([]byte{0x03, 0x00, 0x10, 0x01})                     // 4097 bytes: one over
	f.Add([]byte{0xee, 0, 0, 1, 0, 0x07, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Add([]byte{0x09, 0, 0, 4, 0, 1, 0xff, 0xfe}) // CLOSE, invalid UTF-8 reason
	f.Add(append([]byte{0x06, 0, 0x01, 0x0a, 0, 0, 0, 1}, bytes.Repeat([]byte("é"), 131)...))

	const max = 4096
	f.Fuzz(func(t *testing.T, data []byte) {
		// Plain checks rather than testify in this loop: it runs once per
		// decoded frame, and fuzzing wants speed.
		r := NewReader(bytes.NewReader(data), max)
		off := 0
		for frames := 0; ; frames++ {
			if frames > len(data)/HeaderLen {
				t.Fatalf("%d frames from %d bytes", frames, len(data))
			}
			fr, err := r.Next()
			if err == io.EOF {
				if off != len(data) {
					t.Fatalf("io.EOF at offset %d of %d: only between frames", off, len(data))
				}
				return
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				requireSentinel(t, err)
				if !errors.Is(err, ErrTruncated) {
					t.Fatalf("%v does not wrap ErrTruncated", err)
				}
				rest := len(data) - off
				if rest >= HeaderLen {
					n := int(data[off+1])<<16 | int(data[off+2])<<8 | int(data[off+3])
					if rest >= HeaderLen+n {
						t.Fatalf("truncation reported on a complete frame: %v", err)
					}
				}
				return
			}
			if len(data)-off < HeaderLen {
				t.Fatalf("frame or error %v from %d bytes", err, len(data)-off)
			}
			n := int(data[off+1])<<16 | int(data[off+2])<<8 | int(data[off+3])
			if fr.Type != FrameType(data[off]) {
				t.Fatalf("frame type %s, header says %s", fr.Type, FrameType(data[off]))
			}
			if cap(r.buf) > max {
				t.Fatalf("buffer of %d bytes > limit %d", cap(r.buf), max)
			}
			if errors.Is(err, ErrFrameTooLarge) {
				if n <= max {
					t.Fatalf("%v for a body of %d bytes", err, n)
				}
				return // the stream is out of step now
			}
			if n > max {
				t.Fatalf("body of %d bytes > limit %d accepted: %v", n, max, err)
			}
			orig := data[off : off+HeaderLen+n]
			off += HeaderLen + n
			if err != nil {
				// A malformed body was consumed whole: the same error
				// comes from ParseBody, and reading carries on.
				requireSentinel(t, err)
				if _, perr := ParseBody(fr.Type, orig[HeaderLen:]); perr == nil || perr.Error() != err.Error() {
					t.Fatalf("Next: %v, ParseBody: %v", err, perr)
				}
				continue
			}
			checkReencode(t, fr, orig)
		}
	})
}

func FuzzParseBody(f *testing.F) {
	for _, fr := range fuzzFrames() {
		f.Add(fr[0], fr[HeaderLen:])
	}
	f.Add(byte(0x00), []byte{})
	f.Add(byte(FrameEvent), []byte{0})
	f.Add(byte(FrameRequest), []byte{0, 0, 0, 1, 9, 'a'})
	f.Add(byte(FramePing), []byte{1, 2, 3})
	f.Add(byte(FrameClose), append([]byte{0, 3}, bytes.Repeat([]byte{'r'}, 257)...))
	f.Add(byte(FrameClose), []byte{0, 3, 0xe2, 0x82})

	f.Fuzz(func(t *testing.T, typ byte, body []byte) {
		ft := FrameType(typ)
		fr, err := ParseBody(ft, body)
		require.Equal(t, ft, fr.Type)
		known := ft >= FrameHello && ft <= FrameAcked
		if err != nil {
			requireSentinel(t, err)
			require.Equal(t, !known, errors.Is(err, ErrUnknownFrame))
			return
		}
		require.True(t, known, "decoded a body of unknown type %s", ft)
		if fr.Type == FrameEvent || fr.Type == FrameRequest {
			require.NotEmpty(t, fr.Name)
			require.LessOrEqual(t, len(fr.Name), MaxEventName)
		}
		if fr.Type == FrameClose {
			require.LessOrEqual(t, len(fr.Payload), MaxCloseReason)
		}
		orig := append(appendHeader(nil, ft, len(body)), body...)
		checkReencode(t, fr, orig)
	})
}

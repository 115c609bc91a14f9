package reliable

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// ok unwraps the result of an encoder that can fail: ok(t)(AppendEvent(...)).
func ok(t testing.TB) func([]byte, error) []byte {
	return func(b []byte, err error) []byte {
		t.Helper()
		require.NoError(t, err)
		return b
	}
}

// norm makes empty slices nil so that frames compare by content.
func norm(f Frame) Frame {
	if len(f.Name) == 0 {
		f.Name = nil
	}
	if len(f.Payload) == 0 {
		f.Payload = nil
	}
	return f
}

func requireFrame(t testing.TB, want, got Frame) {
	t.Helper()
	require.Equal(t, norm(want), norm(got))
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	require.NoError(t, err)
	return b
}

type roundTrip struct {
	name string
	enc  func(t testing.TB, b []byte) []byte
	want Frame
}

// roundTrips has at least one case for every Append* encoder, with the
// boundary values of every field.
func roundTrips() []roundTrip {
	connID := [IDLen]byte{0x3f, 0x9a, 0x0c, 0x51, 0xd2, 0xe8, 0x47, 0xb6, 0xa1, 0xc4, 0xe0, 0x7f, 0x5b, 0x2d, 0x9e, 0x83}
	var ffID [IDLen]byte
	for i := range ffID {
		ffID[i] = 0xff
	}
	name255 := strings.Repeat("n", MaxEventName)
	big := bytes.Repeat([]byte{0xa5}, 70000) // over DefaultMaxFrame: encoders check only the u24 limit
	reason256 := strings.Repeat("r", MaxCloseReason)
	return []roundTrip{
		{"hello/empty auth", func(t testing.TB, b []byte) []byte {
			return ok(t)(AppendHello(b, Version, nil))
		}, Frame{Type: FrameHello, Version: 1}},
		{"hello/auth", func(t testing.TB, b []byte) []byte {
			return ok(t)(AppendHello(b, 0xffff, []byte("token\x00\xff")))
		}, Frame{Type: FrameHello, Version: 0xffff, Payload: []byte("token\x00\xff")}},
		{"welcome", func(t testing.TB, b []byte) []byte {
			return AppendWelcome(b, Version, connID, 1200)
		}, Frame{Type: FrameWelcome, Version: 1, ConnID: connID, MaxDatagram: 1200}},
		{"welcome/max values", func(t testing.TB, b []byte) []byte {
			return AppendWelcome(b, 0xffff, ffID, 0xffff)
		}, Frame{Type: FrameWelcome, Version: 0xffff, ConnID: ffID, MaxDatagram: 0xffff}},
		{"event/empty payload", func(t testing.TB, b []byte) []byte {
			return ok(t)(AppendEvent(b, "x", nil))
		}, Frame{Type: FrameEvent, Name: []byte("x")}},
		{"event/255-byte name", func(t testing.TB, b []byte) []byte {
			return ok(t)(AppendEvent(b, name255, []byte("p")))
		}, Frame{Type: FrameEvent, Name: []byte(name255), Payload: []byte("p")}},
		{"event/large payload", func(t testing.TB, b []byte) []byte {
			return ok(t)(AppendEvent(b, "$state", big))
		}, Frame{Type: FrameEvent, Name: []byte("$state"), Payload: big}},
		{"request/id 0", func(t testing.TB, b []byte) []byte {
			return ok(t)(AppendRequest(b, 0, "$join", []byte{5, 'a', 'r', 'e', 'n', 'a'}))
		}, Frame{Type: FrameRequest, Name: []byte("$join"), Payload: []byte{5, 'a', 'r', 'e', 'n', 'a'}}},
		{"request/id max, no payload, long name", func(t testing.TB, b []byte) []byte {
			return ok(t)(AppendRequest(b, 0xffffffff, name255, nil))
		}, Frame{Type: FrameRequest, ID: 0xffffffff, Name: []byte(name255)}},
		{"reply/empty", func(t testing.TB, b []byte) []byte {
			return ok(t)(AppendReply(b, 7, nil))
		}, Frame{Type: FrameReply, ID: 7}},
		{"reply/large", func(t testing.TB, b []byte) []byte {
			return ok(t)(AppendReply(b, 0x01020304, big))
		}, Frame{Type: FrameReply, ID: 0x01020304, Payload: big}},
		{"reply error", func(t testing.TB, b []byte) []byte {
			return AppendReplyError(b, 2, "rooms: not in a game room")
		}, Frame{Type: FrameReplyError, ID: 2, Payload: []byte("rooms: not in a game room")}},
		{"reply error/empty", func(t testing.TB, b []byte) []byte {
			return AppendReplyError(b, 0xffffffff, "")
		}, Frame{Type: FrameReplyError, ID: 0xffffffff}},
		{"reply error/256 bytes kept", func(t testing.TB, b []byte) []byte {
			return AppendReplyError(b, 1, reason256)
		}, Frame{Type: FrameReplyError, ID: 1, Payload: []byte(reason256)}},
		{"ping/0", func(t testing.TB, b []byte) []byte {
			return AppendPing(b, 0)
		}, Frame{Type: FramePing}},
		{"ping/max", func(t testing.TB, b []byte) []byte {
			return AppendPing(b, ^uint64(0))
		}, Frame{Type: FramePing, Time: ^uint64(0)}},
		{"pong", func(t testing.TB, b []byte) []byte {
			return AppendPong(b, 1735689600000000000, 1735689600001500000)
		}, Frame{Type: FramePong, Echo: 1735689600000000000, Time: 1735689600001500000}},
		{"close/normal", func(t testing.TB, b []byte) []byte {
			return AppendClose(b, CloseNormal, "client closed")
		}, Frame{Type: FrameClose, Code: CloseNormal, Payload: []byte("client closed")}},
		{"close/no reason, max code", func(t testing.TB, b []byte) []byte {
			return AppendClose(b, CloseCode(0xffff), "")
		}, Frame{Type: FrameClose, Code: 0xffff}},
		{"close/256 bytes kept", func(t testing.TB, b []byte) []byte {
			return AppendClose(b, CloseKicked, reason256)
		}, Frame{Type: FrameClose, Code: CloseKicked, Payload: []byte(reason256)}},
	}
}

func TestRoundTripParse(t *testing.T) {
	for _, tc := range roundTrips() {
		t.Run(tc.name, func(t *testing.T) {
			prefix := []byte("prefix")
			b := tc.enc(t, append([]byte(nil), prefix...))
			require.Equal(t, prefix, b[:len(prefix)], "encoder must append, not overwrite")
			wire := b[len(prefix):]
			require.GreaterOrEqual(t, len(wire), HeaderLen)

			typ, n, err := ParseHeader(wire, MaxFrameLimit)
			require.NoError(t, err)
			require.Equal(t, tc.want.Type, typ)
			require.Equal(t, len(wire)-HeaderLen, n, "length field must equal the body length")

			f, err := ParseBody(typ, wire[HeaderLen:])
			require.NoError(t, err)
			requireFrame(t, tc.want, f)
		})
	}
}

func TestRoundTripReader(t *testing.T) {
	cases := roundTrips()
	const rounds = 25
	var stream []byte
	var want []Frame
	for i := 0; i < rounds; i++ {
		for _, tc := range cases {
			stream = tc.enc(t, stream)
			want = append(want, tc.want)
		}
	}

	readers := map[string]func() *Reader{
		"bytes": func() *Reader { return NewReader(bytes.NewReader(stream), MaxFrameLimit) },
		"one byte at a time": func() *Reader {
			return NewReader(iotest.OneByteReader(bytes.NewReader(stream)), MaxFrameLimit)
		},
		"data with EOF": func() *Reader { return NewReader(iotest.DataErrReader(bytes.NewReader(stream)), MaxFrameLimit) },
	}
	for name, mk := range readers {
		t.Run(name, func(t *testing.T) {
			r := mk()
			for i, w := range want {
				f, err := r.Next()
				require.NoError(t, err, "frame %d (%s)", i, w.Type)
				requireFrame(t, w, f)
			}
			_, err := r.Next()
			require.Equal(t, io.EOF, err, "a stream that ends between frames returns io.EOF itself")
			_, err = r.Next()
			require.Equal(t, io.EOF, err, "and keeps returning it")
		})
	}
}

// The examples of PROTOCOL.md section 3.3, byte for byte.
func TestProtocolExamples(t *testing.T) {
	cases := []struct {
		name string
		got  func(t testing.TB) []byte
		hex  string
	}{
		{"EVENT chat", func(t testing.TB) []byte {
			return ok(t)(AppendEvent(nil, "chat", []byte("hi")))
		}, "03 000007 04 63686174 6869"},
		{"REQUEST $join", func(t testing.TB) []byte {
			return ok(t)(AppendRequest(nil, 1, "$join", unhex(t, "05 61 72 65 6e 61")))
		}, "04 000010 00000001 05 246a6f696e 056172656e61"},
		{"REPLY $join", func(t testing.TB) []byte {
			return ok(t)(AppendReply(nil, 1, unhex(t, "07 61 72 65 6e 61 2d 31 1e 00 10 00 01")))
		}, "05 000011 00000001 07 6172656e612d31 1e 0010 0001"},
		{"REPLY_ERROR", func(t testing.TB) []byte {
			return AppendReplyError(nil, 2, "rooms: not in a game room")
		}, "06 00001d 00000002 726f6f6d733a206e 6f7420696e206120 67616d6520726f6f 6d"},
		{"PING", func(t testing.TB) []byte {
			return AppendPing(nil, 1735689600000000000)
		}, "07 000008 1816687ec0570000"},
		{"PONG", func(t testing.TB) []byte {
			return AppendPong(nil, 1735689600000000000, 1735689600001500000)
		}, "08 000010 1816687ec0570000 1816687ec06de360"},
		{"CLOSE", func(t testing.TB) []byte {
			return AppendClose(nil, CloseNormal, "client closed")
		}, "09 00000f 0000 636c69656e742063 6c6f736564"},
		{"CLOSE refused", func(t testing.TB) []byte {
			return AppendClose(nil, CloseRefused, "bad token")
		}, "09 00000b 0006 62616420746f6b656e"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, hex.EncodeToString(unhex(t, tc.hex)), hex.EncodeToString(tc.got(t)))
		})
	}
}

func TestEncoderErrors(t *testing.T) {
	prefix := []byte{0xde, 0xad}
	huge := make([]byte, MaxFrameLimit) // shared; encoders never write to it
	cases := []struct {
		name string
		call func([]byte) ([]byte, error)
		want error
	}{
		{"event empty name", func(b []byte) ([]byte, error) { return AppendEvent(b, "", nil) }, ErrBadName},
		{"event 256-byte name", func(b []byte) ([]byte, error) {
			return AppendEvent(b, strings.Repeat("a", MaxEventName+1), nil)
		}, ErrBadName},
		{"request empty name", func(b []byte) ([]byte, error) { return AppendRequest(b, 1, "", nil) }, ErrBadName},
		{"request 256-byte name", func(b []byte) ([]byte, error) {
			return AppendRequest(b, 1, strings.Repeat("a", MaxEventName+1), nil)
		}, ErrBadName},
		{"hello body over u24", func(b []byte) ([]byte, error) {
			return AppendHello(b, 1, huge[:MaxFrameLimit-1])
		}, ErrFrameTooLarge},
		{"event body over u24", func(b []byte) ([]byte, error) {
			return AppendEvent(b, "e", huge[:MaxFrameLimit-1])
		}, ErrFrameTooLarge},
		{"request body over u24", func(b []byte) ([]byte, error) {
			return AppendRequest(b, 1, "e", huge[:MaxFrameLimit-5])
		}, ErrFrameTooLarge},
		{"reply body over u24", func(b []byte) ([]byte, error) {
			return AppendReply(b, 1, huge[:MaxFrameLimit-3])
		}, ErrFrameTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := append(make([]byte, 0, 8), prefix...)
			got, err := tc.call(b)
			require.ErrorIs(t, err, tc.want)
			require.Equal(t, prefix, got, "a failed encoder returns its input unchanged")
		})
	}

	t.Run("body of exactly MaxFrameLimit", func(t *testing.T) {
		b, err := AppendReply(nil, 9, huge[:MaxFrameLimit-4])
		require.NoError(t, err)
		require.Len(t, b, HeaderLen+MaxFrameLimit)
		typ, n, err := ParseHeader(b, MaxFrameLimit)
		require.NoError(t, err)
		require.Equal(t, FrameReply, typ)
		require.Equal(t, MaxFrameLimit, n)
	})
}

func TestParseHeader(t *testing.T) {
	t.Run("short", func(t *testing.T) {
		for n := 0; n < HeaderLen; n++ {
			_, _, err := ParseHeader(make([]byte, n), DefaultMaxFrame)
			require.ErrorIs(t, err, ErrTruncated, "%d bytes", n)
		}
	})
	cases := []struct {
		name  string
		hdr   []byte
		max   int
		typ   FrameType
		n     int
		wantE error
	}{
		{"zero length", []byte{0x07, 0, 0, 0}, 0, FramePing, 0, nil},
		{"at limit", []byte{0x03, 0, 0x04, 0x00}, 1024, FrameEvent, 1024, nil},
		{"one over limit", []byte{0x03, 0, 0x04, 0x01}, 1024, FrameEvent, 1025, ErrFrameTooLarge},
		{"16 MiB at 1 KiB limit", []byte{0x03, 0xff, 0xff, 0xff}, 1024, FrameEvent, MaxFrameLimit, ErrFrameTooLarge},
		{"u24 max at u24 limit", []byte{0x05, 0xff, 0xff, 0xff}, MaxFrameLimit, FrameReply, MaxFrameLimit, nil},
		{"big endian", []byte{0x01, 0x01, 0x02, 0x03}, MaxFrameLimit, FrameHello, 0x010203, nil},
		// The length is checked before the type is looked at (PROTOCOL.md 3.4).
		{"unknown type over limit", []byte{0xee, 0x10, 0, 0}, 1024, FrameType(0xee), 0x100000, ErrFrameTooLarge},
		{"unknown type is not a header error", []byte{0xee, 0, 0, 1}, 1024, FrameType(0xee), 1, nil},
		{"extra bytes ignored", []byte{0x09, 0, 0, 2, 0xaa, 0xbb}, 1024, FrameClose, 2, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			typ, n, err := ParseHeader(tc.hdr, tc.max)
			if tc.wantE != nil {
				require.ErrorIs(t, err, tc.wantE)
			} else {
				require.NoError(t, err)
			}
			require.Equal(t, tc.typ, typ)
			require.Equal(t, tc.n, n)
		})
	}
}

func TestParseBodyErrors(t *testing.T) {
	rep := func(n int) []byte { return bytes.Repeat([]byte{'x'}, n) }
	cases := []struct {
		name string
		typ  FrameType
		body []byte
		want error
	}{
		{"unknown 0x00", 0x00, nil, ErrUnknownFrame},
		{"unknown 0x0e", 0x0e, []byte{1, 2, 3}, ErrUnknownFrame},
		{"resume 21", FrameResume, rep(21), ErrTruncated},
		{"resumed 7", FrameResumed, rep(7), ErrBadFrame},
		{"resumed 9", FrameResumed, rep(9), ErrBadFrame},
		{"acked 3", FrameAcked, rep(3), ErrBadFrame},
		{"acked 5", FrameAcked, rep(5), ErrBadFrame},
		{"challenge short", FrameChallenge, []byte{1, 2, 3}, ErrBadFrame},
		{"unknown 0xff", 0xff, rep(8), ErrUnknownFrame},

		{"hello empty", FrameHello, nil, ErrTruncated},
		{"hello 1 byte", FrameHello, []byte{0}, ErrTruncated},

		{"welcome empty", FrameWelcome, nil, ErrBadFrame},
		{"welcome 19", FrameWelcome, rep(19), ErrBadFrame},
		{"welcome 21", FrameWelcome, rep(21), ErrBadFrame},

		{"event empty body", FrameEvent, nil, ErrTruncated},
		{"event empty name", FrameEvent, []byte{0}, ErrBadName},
		{"event empty name with payload", FrameEvent, []byte{0, 'a', 'b'}, ErrBadName},
		{"event name cut short", FrameEvent, []byte{5, 'a', 'b', 'c'}, ErrTruncated},
		{"event 255 name, 254 bytes", FrameEvent, append([]byte{255}, rep(254)...), ErrTruncated},

		{"request empty body", FrameRequest, nil, ErrTruncated},
		{"request 3 bytes", FrameRequest, []byte{0, 0, 1}, ErrTruncated},
		{"request no name byte", FrameRequest, []byte{0, 0, 0, 1}, ErrTruncated},
		{"request empty name", FrameRequest, []byte{0, 0, 0, 1, 0}, ErrBadName},
		{"request name cut short", FrameRequest, []byte{0, 0, 0, 1, 2, 'a'}, ErrTruncated},

		{"reply 3 bytes", FrameReply, []byte{0, 0, 1}, ErrTruncated},
		{"reply error 0 bytes", FrameReplyError, nil, ErrTruncated},
		{"reply error 3 bytes", FrameReplyError, []byte{0, 0, 1}, ErrTruncated},

		{"ping empty", FramePing, nil, ErrBadFrame},
		{"ping 7", FramePing, rep(7), ErrBadFrame},
		{"ping 9", FramePing, rep(9), ErrBadFrame},
		{"ping 16", FramePing, rep(16), ErrBadFrame},

		{"pong empty", FramePong, nil, ErrBadFrame},
		{"pong 8", FramePong, rep(8), ErrBadFrame},
		{"pong 15", FramePong, rep(15), ErrBadFrame},
		{"pong 17", FramePong, rep(17), ErrBadFrame},

		{"close empty", FrameClose, nil, ErrTruncated},
		{"close 1 byte", FrameClose, []byte{0}, ErrTruncated},
		{"close reason 257 bytes", FrameClose, append([]byte{0, 2}, rep(MaxCloseReason+1)...), ErrBadFrame},
		{"close reason 1000 bytes", FrameClose, append([]byte{0, 2}, rep(1000)...), ErrBadFrame},
	}
	sentinels := []error{ErrFrameTooLarge, ErrTruncated, ErrUnknownFrame, ErrBadName, ErrBadFrame}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, err := ParseBody(tc.typ, tc.body)
			require.ErrorIs(t, err, tc.want)
			require.Equal(t, tc.typ, f.Type)
			for _, s := range sentinels {
				if s != tc.want {
					require.NotErrorIs(t, err, s, "one sentinel per error")
				}
			}
			require.True(t, strings.HasPrefix(err.Error(), "reliable: "), "error %q lacks the package prefix", err)
		})
	}
}

// Edge bodies that must be accepted.
func TestParseBodyAccepts(t *testing.T) {
	longMsg := bytes.Repeat([]byte{'m'}, 5000)
	cases := []struct {
		name string
		typ  FrameType
		body []byte
		want Frame
	}{
		{"hello version only", FrameHello, []byte{0, 1}, Frame{Type: FrameHello, Version: 1}},
		{"event name only", FrameEvent, []byte{1, 'a'}, Frame{Type: FrameEvent, Name: []byte("a")}},
		{"event non-UTF-8 name", FrameEvent, []byte{2, 0xff, 0xfe, 'p'}, Frame{Type: FrameEvent, Name: []byte{0xff, 0xfe}, Payload: []byte("p")}},
		{"request name only", FrameRequest, []byte{0, 0, 0, 9, 1, 'a'}, Frame{Type: FrameRequest, ID: 9, Name: []byte("a")}},
		{"reply id only", FrameReply, []byte{0, 0, 0, 9}, Frame{Type: FrameReply, ID: 9}},
		// PROTOCOL.md 3.3.6: a receiver tolerates a message longer than 256 bytes.
		{"reply error long message", FrameReplyError, append([]byte{0, 0, 0, 3}, longMsg...), Frame{Type: FrameReplyError, ID: 3, Payload: longMsg}},
		{"close code only", FrameClose, []byte{0, 9}, Frame{Type: FrameClose, Code: CloseKicked}},
		{"close reason 256 bytes", FrameClose, append([]byte{0, 1}, longMsg[:MaxCloseReason]...), Frame{Type: FrameClose, Code: CloseGoingAway, Payload: longMsg[:MaxCloseReason]}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, err := ParseBody(tc.typ, tc.body)
			require.NoError(t, err)
			requireFrame(t, tc.want, f)
		})
	}
}

func TestParseBodyAliases(t *testing.T) {
	b := ok(t)(AppendEvent(nil, "ev", []byte("payload")))
	body := b[HeaderLen:]
	f, err := ParseBody(FrameEvent, body)
	require.NoError(t, err)
	body[2] = 'E'
	body[3] = 'P'
	require.Equal(t, "eE", string(f.Name), "Name aliases the body")
	require.Equal(t, "Payload", string(f.Payload), "Payload aliases the body")
}

func TestTruncateUTF8(t *testing.T) {
	ascii := func(n int) string { return strings.Repeat("a", n) }
	cases := []struct {
		name string
		in   string
		want string
	}{
		{"empty", "", ""},
		{"short", "bye", "bye"},
		{"exactly 256", ascii(256), ascii(256)},
		{"257 ascii", ascii(257), ascii(256)},
		{"300 ascii", ascii(300), ascii(256)},
		{"2-byte rune across the cut", ascii(255) + "é" + "zz", ascii(255)},
		{"2-byte rune ending at the cut", ascii(254) + "é" + "zz", ascii(254) + "é"},
		{"3-byte rune across the cut (1 byte in)", ascii(255) + "€", ascii(255)},
		{"3-byte rune across the cut (2 bytes in)", ascii(254) + "€", ascii(254)},
		{"3-byte rune ending at the cut", ascii(253) + "€" + "z", ascii(253) + "€"},
		{"4-byte rune across the cut (3 bytes in)", ascii(253) + "😀", ascii(253)},
		{"4-byte rune across the cut (2 bytes in)", ascii(253) + "x" + "😀", ascii(253) + "x"},
		{"4-byte rune across the cut (1 byte in)", ascii(255) + "😀", ascii(255)},
		{"4-byte rune ending at the cut", ascii(252) + "😀" + "z", ascii(252) + "😀"},
		{"all 4-byte runes", strings.Repeat("😀", 100), strings.Repeat("😀", 64)},
		{"all 3-byte runes", strings.Repeat("€", 100), strings.Repeat("€", 85)},
		{"invalid UTF-8 replaced", "a\xffb", "a\uFFFDb"},
		{"invalid UTF-8 then cut", ascii(255) + "\xff", ascii(255)},
		{"lone continuation bytes", "\x80\x80", "\uFFFD"},
	}
	encoders := map[string]func(string) []byte{
		"AppendClose": func(s string) []byte {
			b := AppendClose(nil, CloseInternal, s)
			f, err := ParseBody(FrameClose, b[HeaderLen:])
			if err != nil {
				panic(err)
			}
			return f.Payload
		},
		"AppendReplyError": func(s string) []byte {
			b := AppendReplyError(nil, 4, s)
			f, err := ParseBody(FrameReplyError, b[HeaderLen:])
			if err != nil {
				panic(err)
			}
			return f.Payload
		},
		"TruncateReason": func(s string) []byte { return []byte(TruncateReason(s)) },
	}
	for _, tc := range cases {
		for ename, enc := range encoders {
			t.Run(tc.name+"/"+ename, func(t *testing.T) {
				got := enc(tc.in)
				require.Equal(t, tc.want, string(got))
				require.LessOrEqual(t, len(got), MaxCloseReason)
				require.True(t, utf8.Valid(got))
			})
		}
	}
}

// TestTruncateUTF8Property checks every cut point of strings mixing runes of
// each width: the result is valid, within the limit, a prefix of the
// (sanitised) input, and as long as possible.
func TestTruncateUTF8Property(t *testing.T) {
	runes := []string{"a", "é", "€", "😀", "\xff"}
	for pad := 240; pad <= 260; pad++ {
		for _, r := range runes {
			for _, tail := range runes {
				s := strings.Repeat("a", pad) + r + tail + r
				got := truncateUTF8(s, MaxCloseReason)
				valid := strings.ToValidUTF8(s, "\uFFFD")
				require.True(t, utf8.ValidString(got))
				require.LessOrEqual(t, len(got), MaxCloseReason)
				require.True(t, strings.HasPrefix(valid, got))
				if len(valid) > MaxCloseReason {
					// Maximal: the next rune would not have fit.
					_, size := utf8.DecodeRuneInString(valid[len(got):])
					require.Greater(t, len(got)+size, MaxCloseReason, "cut too early: %q", got)
				} else {
					require.Equal(t, valid, got)
				}
			}
		}
	}
}

func TestFrameTypeString(t *testing.T) {
	cases := map[FrameType]string{
		FrameHello:      "HELLO",
		FrameWelcome:    "WELCOME",
		FrameEvent:      "EVENT",
		FrameRequest:    "REQUEST",
		FrameReply:      "REPLY",
		FrameReplyError: "REPLY_ERROR",
		FramePing:       "PING",
		FramePong:       "PONG",
		FrameClose:      "CLOSE",
		0x00:            "FrameType(0x00)",
		FrameChallenge:  "CHALLENGE",
		FrameResume:     "RESUME",
		FrameResumed:    "RESUMED",
		FrameAcked:      "ACKED",
		0x0e:            "FrameType(0x0e)",
		0xff:            "FrameType(0xff)",
	}
	for ft, want := range cases {
		require.Equal(t, want, ft.String())
	}
}

func TestErrorsAreDistinct(t *testing.T) {
	all := []error{ErrFrameTooLarge, ErrTruncated, ErrUnknownFrame, ErrBadName, ErrBadFrame}
	for i, a := range all {
		require.True(t, strings.HasPrefix(a.Error(), "reliable: "))
		for j, b := range all {
			require.Equal(t, i == j, errors.Is(a, b), "%v vs %v", a, b)
		}
	}
}

func TestEncodeAllocs(t *testing.T) {
	payload := bytes.Repeat([]byte{1}, 64)
	var id [IDLen]byte
	buf := make([]byte, 0, 512)
	name := "move"
	cases := map[string]func(){
		"AppendEvent":      func() { buf, _ = AppendEvent(buf[:0], name, payload) },
		"AppendHello":      func() { buf, _ = AppendHello(buf[:0], Version, payload) },
		"AppendWelcome":    func() { buf = AppendWelcome(buf[:0], Version, id, 1200) },
		"AppendRequest":    func() { buf, _ = AppendRequest(buf[:0], 1, name, payload) },
		"AppendReply":      func() { buf, _ = AppendReply(buf[:0], 1, payload) },
		"AppendReplyError": func() { buf = AppendReplyError(buf[:0], 1, "no handler") },
		"AppendPing":       func() { buf = AppendPing(buf[:0], 1) },
		"AppendPong":       func() { buf = AppendPong(buf[:0], 1, 2) },
		"AppendClose":      func() { buf = AppendClose(buf[:0], CloseNormal, "client closed") },
	}
	for name, fn := range cases {
		t.Run(name, func(t *testing.T) {
			require.Zero(t, testing.AllocsPerRun(1000, fn))
			require.NotEmpty(t, buf)
		})
	}

	t.Run("ParseBody", func(t *testing.T) {
		b := ok(t)(AppendRequest(nil, 1, name, payload))
		var f Frame
		var err error
		require.Zero(t, testing.AllocsPerRun(1000, func() { f, err = ParseBody(FrameRequest, b[HeaderLen:]) }))
		require.NoError(t, err)
		require.Equal(t, name, string(f.Name))
	})
}

func TestResumeFramesRoundTrip(t *testing.T) {
	id := [IDLen]byte{0xaa, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 0xbb}
	b, err := AppendResume(nil, Version, id, 0x01020304, []byte("auth"))
	require.NoError(t, err)
	require.Equal(t, []byte{0x0b, 0, 0, 26, 0, 1}, b[:6])
	f, err := ParseBody(FrameResume, b[HeaderLen:])
	require.NoError(t, err)
	require.Equal(t, id, f.ConnID)
	require.Equal(t, uint32(0x01020304), f.Received)
	require.Equal(t, "auth", string(f.Payload))

	b = AppendResumed(nil, Version, 5, 1175)
	require.Equal(t, []byte{0x0c, 0, 0, 8, 0, 1, 0, 0, 0, 5, 0x04, 0x97}, b)
	f, err = ParseBody(FrameResumed, b[HeaderLen:])
	require.NoError(t, err)
	require.Equal(t, uint32(5), f.Received)
	require.Equal(t, uint16(1175), f.MaxDatagram)

	b = AppendAcked(nil, 300)
	require.Equal(t, []byte{0x0d, 0, 0, 4, 0, 0, 1, 0x2c}, b)
	f, err = ParseBody(FrameAcked, b[HeaderLen:])
	require.NoError(t, err)
	require.Equal(t, uint32(300), f.Received)
}

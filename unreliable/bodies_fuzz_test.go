package unreliable

import "testing"

// FuzzBodies feeds arbitrary bytes to every datagram body decoder: none may
// panic, and what decodes must re-encode to the same bytes.
func FuzzBodies(f *testing.F) {
	in, _ := AppendInputs(nil, SnapshotAck{Epoch: 1, Tick: 9}, []Input{{Seq: 1, Data: []byte{1, 2}}, {Seq: 2, Data: nil}})
	ev, _ := AppendEvent(nil, true, 7, "pos", []byte("xy"))
	f.Add(in)
	f.Add(ev)
	f.Add(AppendEnvelope(nil, Envelope{Time: 1, Base: 3}))
	f.Add([]byte{0, 0, 0, 0, 0, 8})
	f.Fuzz(func(t *testing.T, b []byte) {
		var got []Input
		if a, err := ParseInputs(b, func(i Input) { got = append(got, i) }); err == nil {
			again, err := AppendInputs(nil, a, got)
			if err != nil || string(again) != string(b) {
				t.Fatalf("inputs do not re-encode: %v", err)
			}
		} else if len(got) != 0 {
			t.Fatal("a malformed INPUT body delivered inputs")
		}
		if e, err := ParseEvent(b); err == nil {
			again, err := AppendEvent(nil, e.Sequenced, e.Seq, string(e.Name), e.Payload)
			if err != nil || len(again) != len(b) {
				t.Fatalf("event does not re-encode: %v", err)
			}
		}
		if e, p, err := ParseEnvelope(b); err == nil {
			if len(p)+EnvelopeLen != len(b) || string(AppendEnvelope(nil, e)) != string(b[:EnvelopeLen]) {
				t.Fatal("bad envelope accepted")
			}
		}
		_, _, _ = ParseAck(b)
	})
}

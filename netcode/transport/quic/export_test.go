package quic

// HandshakesInProgress is the number of handshakes the listener's gate
// counts, for tests.
func (l *Listener) HandshakesInProgress() int {
	l.gate.mu.Lock()
	defer l.gate.mu.Unlock()
	return l.gate.pending
}

// Package deptest holds Roomwire's import-rule test, which keeps the
// layering of DESIGN.md from rotting: the protocol packages do no I/O,
// rooms uses netcode's public API only, no shipped binary links a test
// helper, and netcode and rooms link no Prometheus (promexport does).
package deptest

package netcode

import (
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Stats.add sums every counter, so a field added to Stats cannot be left
// out of the transports' totals unnoticed.
func TestStatsAddSumsEveryCounter(t *testing.T) {
	one := Stats{RTT: time.Second, LossPercent: 50}
	v := reflect.ValueOf(&one).Elem()
	for i := range v.NumField() {
		f, name := v.Field(i), v.Type().Field(i).Name
		switch {
		case name == "RTT" || name == "LossPercent":
		case f.Kind() == reflect.Uint64:
			f.SetUint(1)
		case f.Kind() == reflect.Int64: // durations summed
			f.SetInt(1)
		default:
			t.Fatalf("Stats.%s is a %s: teach Stats.add about it", name, f.Type())
		}
	}
	var sum Stats
	sum.add(one)
	sum.add(one)
	s := reflect.ValueOf(sum)
	for i := range s.NumField() {
		f, name := s.Field(i), s.Type().Field(i).Name
		switch {
		case name == "RTT" || name == "LossPercent":
			require.True(t, f.IsZero(), "Stats.add sums no %s", name)
		case f.Kind() == reflect.Uint64:
			require.EqualValues(t, 2, f.Uint(), "Stats.add leaves out %s", name)
		default:
			require.EqualValues(t, 2, f.Int(), "Stats.add leaves out %s", name)
		}
	}
}

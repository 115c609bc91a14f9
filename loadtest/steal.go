package loadtest

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
)

// cpuTimes are the machine's CPU times since boot, from /proc/stat's
// "cpu" line (Linux; zero elsewhere), in clock ticks: all of them, and
// those stolen, which a virtual machine's host gave other guests while
// this one had work.
type cpuTimes struct {
	total, steal uint64
}

// readCPUTimes reads the machine's CPU times, or zero where there is no
// /proc/stat.
func readCPUTimes() cpuTimes {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}
	}
	return parseCPUTimes(b)
}

// parseCPUTimes parses /proc/stat's first line: "cpu" and the times of
// user, nice, system, idle, iowait, irq, softirq, steal (and guest times,
// already counted in user and nice).
func parseCPUTimes(b []byte) cpuTimes {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	sc := bufio.NewScanner(bytes.NewReader(line))
	sc.Split(bufio.ScanWords)
	if !sc.Scan() || sc.Text() != "cpu" {
		return cpuTimes{}
	}
	var t cpuTimes
	for i := 0; i < 8 && sc.Scan(); i++ {
		v, err := strconv.ParseUint(sc.Text(), 10, 64)
		if err != nil {
			return cpuTimes{}
		}
		t.total += v
		if i == 7 {
			t.steal = v
		}
	}
	return t
}

// StealNoted is the share of the machine's CPU time stolen, in percent
// (Report.MachineStealPercent), from which a report warns that its
// figures are doubtful.
const StealNoted = 5.0

// stealPercent is the share of the machine's CPU time stolen between a
// and b, in percent, or 0 when it cannot tell.
func stealPercent(a, b cpuTimes) float64 {
	if b.total <= a.total || b.steal < a.steal {
		return 0
	}
	return round2(100 * float64(b.steal-a.steal) / float64(b.total-a.total))
}

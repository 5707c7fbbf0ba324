package driver

import (
	"bufio"
	"bytes"
	"strconv"
	"strings"
)

// NICStats are one interface's counters from /proc/<pid>/net/dev.
type NICStats struct {
	Name      string
	RxBytes   uint64
	RxPackets uint64
	RxErrors  uint64
	RxDrop    uint64
	TxBytes   uint64
	TxPackets uint64
	TxErrors  uint64
	TxDrop    uint64
}

// ParseNetDev parses /proc/net/dev content, skipping lo and malformed lines.
// Docker's own stats report nothing for interfaces it did not create (the
// sandbox has network mode none), so the driver reads the netns directly.
func ParseNetDev(data []byte) []NICStats {
	var out []NICStats
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		name = strings.TrimSpace(name)
		f := strings.Fields(rest)
		if name == "" || name == "lo" || len(f) < 16 {
			continue
		}
		var v [16]uint64
		bad := false
		for i := 0; i < 16; i++ {
			n, err := strconv.ParseUint(f[i], 10, 64)
			if err != nil {
				bad = true
				break
			}
			v[i] = n
		}
		if bad {
			continue
		}
		out = append(out, NICStats{Name: name, RxBytes: v[0], RxPackets: v[1], RxErrors: v[2], RxDrop: v[3],
			TxBytes: v[8], TxPackets: v[9], TxErrors: v[10], TxDrop: v[11]})
	}
	return out
}

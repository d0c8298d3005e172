package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

var durationUnits = map[string]time.Duration{
	"ms": time.Millisecond,
	"s":  time.Second,
	"m":  time.Minute,
	"h":  time.Hour,
	"d":  24 * time.Hour,
	"w":  7 * 24 * time.Hour,
}

// ParseDuration reads durations as operators write them: "30s", "4h",
// "1d", "1h30m", "1.5h"; "0" is zero. Units: ms, s, m, h, d, w.
func ParseDuration(s string) (time.Duration, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return 0, errors.New("empty duration")
	}
	if in == "0" {
		return 0, nil
	}
	var total float64
	for in != "" {
		i := 0
		for i < len(in) && (in[i] >= '0' && in[i] <= '9' || in[i] == '.') {
			i++
		}
		if i == 0 {
			if in[0] == '-' {
				return 0, fmt.Errorf("%q is negative", s)
			}
			return 0, fmt.Errorf("%q does not start with a number", s)
		}
		n, err := strconv.ParseFloat(in[:i], 64)
		if err != nil {
			return 0, fmt.Errorf("bad number in %q", s)
		}
		j := i
		for j < len(in) && in[j] >= 'a' && in[j] <= 'z' {
			j++
		}
		unit, ok := durationUnits[in[i:j]]
		if !ok {
			if i == j {
				return 0, fmt.Errorf("%q has no unit", s)
			}
			return 0, fmt.Errorf("unknown unit %q in %q", in[i:j], s)
		}
		total += n * float64(unit)
		in = in[j:]
	}
	if total > math.MaxInt64 {
		return 0, fmt.Errorf("%q is too long", s)
	}
	return time.Duration(total), nil
}

// FormatDuration prints d the way ParseDuration reads it, with days
// ("1d", "21h36m", "30s").
func FormatDuration(d time.Duration) string {
	if d == 0 {
		return "0"
	}
	var b strings.Builder
	if days := d / (24 * time.Hour); days > 0 {
		fmt.Fprintf(&b, "%dd", days)
		d -= days * 24 * time.Hour
	}
	for _, u := range []struct {
		unit time.Duration
		name string
	}{{time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}, {time.Millisecond, "ms"}} {
		if n := d / u.unit; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, u.name)
			d -= n * u.unit
		}
	}
	return b.String()
}

// ParseSize reads byte or packet counts: "1000", "500K", "1G", "2GiB",
// "1GB". K, M, G and T are powers of 1024 (as in strongSwan).
func ParseSize(s string) (uint64, error) {
	in := strings.TrimSpace(s)
	i := 0
	for i < len(in) && in[i] >= '0' && in[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("%q does not start with a number", s)
	}
	n, err := strconv.ParseUint(in[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is too large", s)
	}
	unit := strings.ToUpper(strings.TrimSpace(in[i:]))
	if u, ok := strings.CutSuffix(unit, "IB"); ok && u != "" {
		unit = u
	} else {
		unit = strings.TrimSuffix(unit, "B")
	}
	shift := map[string]uint{"": 0, "K": 10, "M": 20, "G": 30, "T": 40}
	sh, ok := shift[unit]
	if !ok {
		return 0, fmt.Errorf("unknown unit %q in %q", in[i:], s)
	}
	if n > math.MaxUint64>>sh {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n << sh, nil
}

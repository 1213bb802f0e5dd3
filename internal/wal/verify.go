package wal

import (
	"fmt"
	"os"
)

// Kind is the kind of a Finding.
type Kind int

const (
	// NotSegment is a file of the log's directory that is not a segment.
	NotSegment Kind = iota + 1
	// Unreadable is a segment that cannot be read, or whose header is
	// wrong: none of its records can be trusted.
	Unreadable
	// Unborn is a segment whose creation a crash cut short: empty, or
	// zeros, and among the newest. It holds nothing; Open removes it.
	Unborn
	// TornTail is what ends the last segment of a lane where a crash cut
	// a write short: Open cuts it off.
	TornTail
	// DamagedRecord is a record whose header holds but whose body does
	// not: its key is known, and the records after it can be read.
	DamagedRecord
	// DamagedHeader is a record whose header does not hold: whose record
	// it was cannot be known, and the records after it only from the
	// next good one found.
	DamagedHeader
)

// Finding is something Verify found wrong in a log, or left by a crash.
type Finding struct {
	Name   string // the file's name in the log's directory
	Kind   Kind
	Offset int64  // where in the segment; 0 for a whole segment, -1 for NotSegment
	Key    []byte // the record's key, when its header holds
	Next   int64  // DamagedHeader: the offset of the next good record, or -1: none
	Err    error  // what is wrong, when it is more than its Kind says
}

// Report is what Verify found in a log.
type Report struct {
	Segments int // the segment files found, readable or not
	Findings []Finding
	// Without holds, for each segment with damaged records
	// (DamagedRecord, DamagedHeader), by name, its bytes without them:
	// its header and its good records, for a repair to put in its place.
	Without map[string][]byte
}

// Verify reads the log in root, the directory at path dir (for errors),
// as Open would replay it, and reports what it finds wrong, changing
// nothing. It fails only when the directory cannot be read.
func Verify(root *os.Root, dir string, key KeyFunc) (*Report, error) {
	lf, err := readLog(root, dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	rep := &Report{Segments: len(lf.segs), Without: make(map[string][]byte)}
	for _, name := range lf.others {
		rep.Findings = append(rep.Findings, Finding{Name: name, Kind: NotSegment, Offset: -1, Next: -1})
	}
	var kept []*segFile
	for i, sf := range lf.segs {
		switch {
		case sf.err == nil:
			kept = append(kept, sf)
		case lf.unborn(i):
			rep.Findings = append(rep.Findings, Finding{Name: sf.name, Kind: Unborn, Next: -1})
		default:
			rep.Findings = append(rep.Findings, Finding{Name: sf.name, Kind: Unreadable, Next: -1, Err: sf.err})
		}
	}
	last := lastOfLanes(kept)
	for _, sf := range kept {
		var records []byte // the good ones, for Without
		damaged := false
		sf.walk(key, last[sf.lane] == sf, func(s step) bool {
			if s.kind == good {
				records = append(records, sf.data[s.rec.Off:s.rec.Off+int64(s.n)]...)
				return true
			}
			damaged = damaged || s.kind != TornTail
			rep.Findings = append(rep.Findings, Finding{
				Name: sf.name, Kind: s.kind, Offset: s.rec.Off, Key: s.rec.Key, Next: int64(s.next), Err: s.err,
			})
			return true
		})
		if damaged {
			rep.Without[sf.name] = append(sf.data[:headerSize:headerSize], records...)
		}
	}
	return rep, nil
}

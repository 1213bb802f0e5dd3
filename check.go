package todo

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/gotodo/todo/internal/wal"
)

// Problem is something [Check] found wrong in a data directory.
type Problem struct {
	Path   string // the file, relative to the data directory
	Offset int64  // where in a log segment the damage is; -1 for a list file
	List   string // the list concerned, when it can be known
	Reason string // what is wrong
	// Harmless is set for what the next Open deals with by itself (a torn
	// record at the end of the log, a temp file) or leaves alone (a file
	// that is not the System's): there is nothing to repair.
	Harmless bool
	// Action is what Check did about it with repair set ("moved to
	// quarantine/..."), or "" when it did nothing.
	Action string
	// Repaired is set when Action set the damage aside: the list it
	// stopped from being served is served again.
	Repaired bool
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.Path)
	if p.Offset >= 0 {
		fmt.Fprintf(&b, " at offset %d", p.Offset)
	}
	if p.List != "" {
		fmt.Fprintf(&b, " (list %q)", p.List)
	}
	b.WriteString(": ")
	b.WriteString(p.Reason)
	if p.Action != "" {
		b.WriteString("; ")
		b.WriteString(p.Action)
	}
	return b.String()
}

// quarantineDir is where Check's repairs put what they set aside.
const quarantineDir = "quarantine"

// Check verifies a data directory offline: every list file (its frame,
// checksum and body) and every log segment (every record's checksums; a
// torn record at the end of the log, which Open cuts off, is reported
// too, as harmless). It takes the directory's lock, so it fails with
// [ErrLocked] while a System has the directory open, and with an error
// wrapping [fs.ErrNotExist] when there is no directory. It returns the
// problems it found, and the number of list files and segments it read.
//
// With repair set, it sets aside what stops a list from being served,
// never deleting anything: a damaged list file is moved to quarantine/
// under the data directory, so that its list is served from its records in
// the log, or as empty; a segment with damaged records is copied to
// quarantine/ and rewritten without them, so that their lists are served
// from their files and their other records (the changes in the damaged
// records are lost); a segment that cannot be read at all is moved to
// quarantine/. Each Problem says what was done.
func Check(dir string, repair bool) (problems []Problem, files, segments int, err error) {
	if info, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil, 0, 0, fmt.Errorf("todo: check: no data directory at %s: %w", dir, fs.ErrNotExist)
	} else if err != nil {
		return nil, 0, 0, fmt.Errorf("todo: check: %w", err)
	} else if !info.IsDir() {
		return nil, 0, 0, fmt.Errorf("todo: check: %s is not a directory", dir)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, 0, 0, err
	}
	defer lock.Close()
	o, _ := (*Options)(nil).withDefaults()
	f, err := openFiles(dir, o)
	if err != nil {
		return nil, 0, 0, err
	}
	defer f.Close()
	c := &checker{f: f, repair: repair}
	if err := c.listFiles(); err != nil {
		return c.problems, c.files, c.segments, err
	}
	if err := c.log(); err != nil {
		return c.problems, c.files, c.segments, err
	}
	return c.problems, c.files, c.segments, nil
}

type checker struct {
	f        *files
	repair   bool
	problems []Problem
	files    int
	segments int
}

func (c *checker) add(p Problem) { c.problems = append(c.problems, p) }

// listFiles checks every file in the fan-out directories, and every
// directory where a list's file should be.
func (c *checker) listFiles() error {
	var rels []string
	err := c.f.walk(func(rel string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("todo: check: %s: %w", path.Join(c.f.dir, rel), err)
		}
		_, isList := nameFromFile(rel)
		switch {
		case !d.IsDir():
			rels = append(rels, rel)
		case isList: // read says what it is
			rels = append(rels, rel)
			return fs.SkipDir
		}
		return nil
	})
	if err != nil {
		return err
	}
	slices.Sort(rels)
	for _, rel := range rels {
		if isTemp(path.Base(rel)) {
			c.add(Problem{Path: rel, Offset: -1, Reason: "a temp file a crash left behind (the next Open removes it)", Harmless: true})
			continue
		}
		name, ok := nameFromFile(rel)
		if !ok {
			c.add(Problem{Path: rel, Offset: -1, Reason: "not the file of any list name (left alone)", Harmless: true})
			continue
		}
		c.files++
		data, err := c.f.read(rel)
		if err == nil {
			_, err = decodeList(data)
		}
		if err == nil {
			continue
		}
		p := Problem{Path: rel, Offset: -1, List: name, Reason: strings.TrimPrefix(err.Error(), "todo: ")}
		if c.repair {
			p.Action, p.Repaired = c.quarantine(rel, true)
		}
		c.add(p)
	}
	return nil
}

// log checks every segment of the log, as Open would replay it, and with
// repair sets aside what stops a list from being served.
func (c *checker) log() error {
	full := path.Join(c.f.dir, logDir)
	root, err := c.f.root.OpenRoot(logDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("todo: check: %s: %w", full, err)
	}
	defer root.Close()
	rep, err := wal.Verify(root, full, recordName)
	if err != nil {
		return fmt.Errorf("todo: check: %w", err)
	}
	c.segments = rep.Segments
	first := len(c.problems)
	for _, f := range rep.Findings {
		p := logProblem(f)
		if c.repair && f.Kind == wal.Unreadable {
			p.Action, p.Repaired = c.quarantine(p.Path, true)
		}
		c.add(p)
	}
	if !c.repair {
		return nil
	}
	for _, name := range slices.Sorted(maps.Keys(rep.Without)) {
		rel := path.Join(logDir, name)
		action, ok := c.quarantine(rel, false)
		if ok {
			if err := c.rewrite(rel, rep.Without[name]); err != nil {
				action, ok = fmt.Sprintf("copied to %s, but could not rewrite it: %v", path.Join(quarantineDir, rel), err), false
			} else {
				action = fmt.Sprintf("copied to %s and rewritten without its damaged records", path.Join(quarantineDir, rel))
			}
		}
		for i := range c.problems[first:] {
			if p := &c.problems[first+i]; p.Path == rel && !p.Harmless {
				p.Action, p.Repaired = action, ok
			}
		}
	}
	return nil
}

// logProblem says what a finding of the log's check means for the lists.
func logProblem(f wal.Finding) Problem {
	p := Problem{Path: path.Join(logDir, f.Name), Offset: f.Offset, List: string(f.Key)}
	switch f.Kind {
	case wal.NotSegment:
		p.Reason, p.Harmless = "not a log segment (left alone)", true
	case wal.Unborn:
		p.Reason, p.Harmless = "an empty segment, left by a crash while it was being created (the next Open removes it)", true
	case wal.TornTail:
		// With Fsync durability a change is acknowledged once its record
		// is fdatasynced, which a torn one never was; with Write a power
		// cut can tear a record that was, and with Async a change is
		// acknowledged before its record is written.
		p.Reason = "a torn record at the end of the log, left by a crash in the middle of a write " +
			"(the next Open cuts it off): never acknowledged with Fsync durability; " +
			"with Write or Async it may have been, and is lost, as those modes allow"
		p.Harmless = true
	case wal.Unreadable:
		p.Reason = strings.TrimPrefix(logError(f.Err).Error(), "todo: ")
	case wal.DamagedRecord:
		p.Reason = "damaged record: " + f.Err.Error()
	case wal.DamagedHeader:
		p.Reason = "damaged record: " + f.Err.Error()
		if f.Next >= 0 {
			p.Reason += fmt.Sprintf("; its list cannot be known; the records from offset %d on are good", f.Next)
		} else {
			p.Reason += "; its list cannot be known, nor any after it"
		}
	}
	return p
}

// quarantine moves (or, with move unset, copies) the file at rel (or,
// moved, the directory) to the same path under quarantine/, fsynced, and
// says what it did and whether it could. What an earlier repair set aside
// there stays: the new one gets a suffix, .1, .2, ...
func (c *checker) quarantine(rel string, move bool) (string, bool) {
	dst := path.Join(quarantineDir, rel)
	for i := 1; ; i++ {
		if _, err := c.f.root.Lstat(dst); err != nil {
			break // free, or the move or copy says why not
		}
		dst = fmt.Sprintf("%s.%d", path.Join(quarantineDir, rel), i)
	}
	err := c.f.mkdirs(path.Dir(dst))
	if err == nil && move {
		if err = c.f.root.Rename(rel, dst); err == nil {
			err = errors.Join(c.f.syncDir(path.Dir(rel)), c.f.syncDir(path.Dir(dst)))
		}
	} else if err == nil {
		var data []byte
		if data, err = fs.ReadFile(c.f.root.FS(), rel); err == nil {
			err = c.writeSynced(dst, data)
		}
	}
	switch {
	case err != nil:
		return fmt.Sprintf("could not set it aside in %s: %v", dst, err), false
	case move:
		return "moved to " + dst, true
	}
	return "copied to " + dst, true
}

// rewrite replaces the file at rel by data, atomically.
func (c *checker) rewrite(rel string, data []byte) error {
	tmp := path.Join(path.Dir(rel), ".check"+tmpSuffix)
	if err := c.writeSynced(tmp, data); err != nil {
		return err
	}
	if err := c.f.root.Rename(tmp, rel); err != nil {
		c.f.root.Remove(tmp)
		return err
	}
	return c.f.syncDir(path.Dir(rel))
}

// writeSynced writes a new file at rel, fsynced, and its directory.
func (c *checker) writeSynced(rel string, data []byte) error {
	file, err := c.f.root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = file.Write(data)
	if err == nil {
		err = file.Sync()
	}
	if cerr := file.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = c.f.syncDir(path.Dir(rel))
	}
	return err
}

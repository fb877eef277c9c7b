package federation

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Limits bounds what the feed serves to peers and what is read from
// theirs, so that neither a misbehaving peer nor a stalled connection can
// hold memory or goroutines without end. A zero field takes its default.
type Limits struct {
	// MaxEvent is the most bytes one event of a peer's live stream may
	// take (its data lines together; the feed sends each event as one
	// line). Default 1 MiB. Larger events are only served in pages.
	MaxEvent int
	// MaxPage is the most bytes of one feed page read from a peer.
	// Default 8 MiB.
	MaxPage int
	// StreamsPerPeer is how many live streams one peer may hold open on
	// this cloud at once (default 4); Streams how many all peers together
	// may (default 64).
	StreamsPerPeer int
	Streams        int
	// WriteTimeout bounds each write to a live stream, heartbeats
	// included: a peer that stops reading is disconnected after it.
	// Default 10 s.
	WriteTimeout time.Duration
	// StreamMaxAge ends a live stream after this long (default 10 min);
	// the peer reconnects from its cursor. It frees the place of a
	// connection that died without a word.
	StreamMaxAge time.Duration
	// MaxQuarantine is how many refused events are kept in quarantine per
	// peer (default DefaultMaxQuarantine); the oldest give way.
	MaxQuarantine int
}

// Defaults of Limits.
const (
	DefaultMaxEvent       = 1 << 20
	DefaultMaxPage        = 8 << 20
	DefaultStreamsPerPeer = 4
	DefaultStreams        = 64
	DefaultWriteTimeout   = 10 * time.Second
	DefaultStreamMaxAge   = 10 * time.Minute
)

// pageBudget is the size the feed keeps a page under when it serves one:
// it stops adding events once the next would pass it (a page always holds
// at least one event). Well under DefaultMaxPage, so that followers with
// the default limit read every page.
const pageBudget = 4 << 20

// maxCursor bounds the length of a cursor parameter (an int64 has at most
// 19 digits).
const maxCursor = 20

// maxPeerToken bounds a peer's bearer token; real ones take about 600
// bytes.
const maxPeerToken = 8 << 10

// streamRetryAfter is what a refused stream request is told to wait, in
// seconds.
const streamRetryAfter = "5"

// ErrTooLarge reports a peer's feed page or stream event over the limits.
var ErrTooLarge = errors.New("over the federation size limit")

func (l Limits) maxEvent() int {
	if l.MaxEvent > 0 {
		return l.MaxEvent
	}
	return DefaultMaxEvent
}

func (l Limits) maxPage() int {
	if l.MaxPage > 0 {
		return l.MaxPage
	}
	return DefaultMaxPage
}

func (l Limits) streamsPerPeer() int {
	if l.StreamsPerPeer > 0 {
		return l.StreamsPerPeer
	}
	return DefaultStreamsPerPeer
}

func (l Limits) streams() int {
	if l.Streams > 0 {
		return l.Streams
	}
	return DefaultStreams
}

func (l Limits) writeTimeout() time.Duration {
	if l.WriteTimeout > 0 {
		return l.WriteTimeout
	}
	return DefaultWriteTimeout
}

func (l Limits) streamMaxAge() time.Duration {
	if l.StreamMaxAge > 0 {
		return l.StreamMaxAge
	}
	return DefaultStreamMaxAge
}

// StreamStats counts what the limits did, for metrics.
type StreamStats struct {
	Serving  int   // live streams being served now
	Refused  int64 // stream requests refused at a cap
	Stalled  int64 // served streams ended by the write timeout
	Oversize int64 // peer pages and streams dropped for passing a size limit
	// Quarantined counts peer events put in quarantine (quarantine.go).
	Quarantined int64
}

// streamState is the bookkeeping behind Limits.
type streamState struct {
	mu       sync.Mutex
	perPeer  map[string]int
	total    int
	refused  atomic.Int64
	stalled  atomic.Int64
	oversize atomic.Int64
	// quarantined counts events put in quarantine (quarantine.go).
	quarantined atomic.Int64
}

// Stats reports the counters of the stream limits.
func (f *Federation) Stats() StreamStats {
	f.streams.mu.Lock()
	serving := f.streams.total
	f.streams.mu.Unlock()
	return StreamStats{Serving: serving, Refused: f.streams.refused.Load(), Stalled: f.streams.stalled.Load(),
		Oversize: f.streams.oversize.Load(), Quarantined: f.streams.quarantined.Load()}
}

// acquireStream takes a place for a live stream of peer, or reports with
// an HTTP status why there is none: 429 when the peer holds its share,
// 503 when all places are taken.
func (f *Federation) acquireStream(peer string) (release func(), status int) {
	s := &f.streams
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perPeer == nil {
		s.perPeer = map[string]int{}
	}
	switch {
	case s.perPeer[peer] >= f.Limits.streamsPerPeer():
		s.refused.Add(1)
		return nil, http.StatusTooManyRequests
	case s.total >= f.Limits.streams():
		s.refused.Add(1)
		return nil, http.StatusServiceUnavailable
	}
	s.perPeer[peer]++
	s.total++
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.perPeer[peer]--; s.perPeer[peer] <= 0 {
				delete(s.perPeer, peer)
			}
			s.total--
		})
	}, 0
}

// readLimited reads all of r, failing with ErrTooLarge past max bytes.
func readLimited(r io.Reader, max int) ([]byte, error) {
	raw, err := io.ReadAll(io.LimitReader(r, int64(max)+1))
	if err != nil {
		return nil, err
	}
	if len(raw) > max {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, max)
	}
	return raw, nil
}

// inflight bounds the bytes of stream events read but not yet applied,
// so that a reader faster than the database holds a bounded backlog. Each
// place stands for inflightUnit bytes; an event takes at least one.
type inflight chan struct{}

const inflightUnit = 16 << 10

// newInflight holds about max bytes (and at least one event of maxEvent).
func newInflight(bytes, maxEvent int) inflight {
	return make(inflight, max(bytes, maxEvent+inflightUnit)/inflightUnit)
}

func (c inflight) cost(it Item) int {
	return min(1+(len(it.JWS)+len(it.PersonJWS))/inflightUnit, cap(c))
}

// acquire waits for room for it, or for done.
func (c inflight) acquire(it Item, done <-chan struct{}) bool {
	for range c.cost(it) {
		select {
		case c <- struct{}{}:
		case <-done:
			return false
		}
	}
	return true
}

func (c inflight) release(it Item) {
	for range c.cost(it) {
		<-c
	}
}

// streamReader parses a peer's server-sent events with every buffer
// bounded: a line or an event (its data lines together) longer than
// maxEvent ends the read with ErrTooLarge.
type streamReader struct {
	sc       *bufio.Scanner
	maxEvent int
	data     []byte
}

func newStreamReader(r io.Reader, maxEvent int) *streamReader {
	sc := bufio.NewScanner(r)
	// A line is "data: " and the event, or a shorter field.
	sc.Buffer(make([]byte, 0, 4096), maxEvent+len("data: ")+1)
	return &streamReader{sc: sc, maxEvent: maxEvent}
}

// next returns the next event, or a heartbeat (an Item with Seq 0) for a
// comment line, or an error; io.EOF at the end of the stream.
func (s *streamReader) next() (Item, error) {
	for s.sc.Scan() {
		line := s.sc.Bytes()
		switch {
		case len(line) == 0:
			if len(s.data) == 0 {
				continue
			}
			var it Item
			err := json.Unmarshal(s.data, &it)
			s.data = s.data[:0]
			if err != nil {
				return Item{}, fmt.Errorf("event is not JSON: %w", err)
			}
			return it, nil // Seq 0 counts as a heartbeat
		case line[0] == ':':
			return Item{}, nil // a comment: the heartbeat
		default:
			v, ok := bytes.CutPrefix(line, []byte("data:"))
			if !ok {
				continue // id:, event:, retry: or an unknown field
			}
			v, _ = bytes.CutPrefix(v, []byte(" "))
			sep := 0
			if len(s.data) > 0 {
				sep = 1 // SSE joins data lines with newlines
			}
			if len(s.data)+sep+len(v) > s.maxEvent {
				return Item{}, fmt.Errorf("%w: an event of more than %d bytes", ErrTooLarge, s.maxEvent)
			}
			if sep > 0 {
				s.data = append(s.data, '\n')
			}
			s.data = append(s.data, v...)
		}
	}
	if err := s.sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return Item{}, fmt.Errorf("%w: a line of more than %d bytes", ErrTooLarge, s.maxEvent)
		}
		return Item{}, err
	}
	return Item{}, io.EOF
}

// httpgen: the bench's open-loop HTTP/1.1 load generator (standard library only).
//
// It POSTs one fixed body over keep-alive connections, either on a fixed schedule (-rate > 0:
// request i is due at start + i/rate, whether or not earlier ones were answered, so a server that
// falls behind shows up as latency measured from the due time: no coordinated omission) or as fast
// as -connections requests in flight allow (-rate 0: saturation). Each answered request becomes a
// CSV line: seq,due_ns,sent_ns,done_ns,status,id,error, with wall-clock Unix nanoseconds and the
// "id" string of a JSON response body. It writes the request bytes once and parses only the status
// line, Content-Length and the id, so its CPU per request stays a small fraction of the server's.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

type record struct {
	seq             int64
	due, sent, done int64
	status          int
	id              string
	err             string
}

type config struct {
	addr, path  string
	body        []byte
	rate        float64
	duration    time.Duration
	connections int
	timeout     time.Duration
}

func main() {
	cfg, out, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "httpgen:", err)
		os.Exit(2)
	}
	if path := os.Getenv("HTTPGEN_CPUPROFILE"); path != "" {
		f, _ := os.Create(path)
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	records := run(cfg)
	if err := write(out, records); err != nil {
		fmt.Fprintln(os.Stderr, "httpgen:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func parseFlags() (config, string, error) {
	var cfg config
	var bodyFile, out string
	flag.StringVar(&cfg.addr, "addr", "127.0.0.1:8000", "server host:port (plain HTTP/1.1)")
	flag.StringVar(&cfg.path, "path", "/v1/jobs", "request path")
	flag.StringVar(&bodyFile, "body", "", "file holding the JSON request body")
	flag.Float64Var(&cfg.rate, "rate", 0, "requests per second on a fixed schedule; 0 = saturation")
	flag.DurationVar(&cfg.duration, "duration", 5*time.Second, "how long to send")
	flag.IntVar(&cfg.connections, "connections", 64, "keep-alive connections (requests in flight at most)")
	flag.DurationVar(&cfg.timeout, "timeout", 30*time.Second, "per-request timeout")
	flag.StringVar(&out, "out", "-", "where the CSV results go (- = stdout)")
	flag.Parse()
	body, err := os.ReadFile(bodyFile)
	if err != nil {
		return cfg, out, err
	}
	cfg.body = body
	if cfg.connections < 1 || cfg.rate < 0 || cfg.duration <= 0 {
		return cfg, out, errors.New("need -connections >= 1, -rate >= 0 and -duration > 0")
	}
	return cfg, out, nil
}

func request(cfg config) []byte {
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
		cfg.path, cfg.addr, len(cfg.body))
	return append([]byte(head), cfg.body...)
}

// run sends for cfg.duration and returns every request's record once all are answered or timed out.
func run(cfg config) []record {
	req := request(cfg)
	start := time.Now().Add(5 * time.Millisecond)
	end := start.Add(cfg.duration)
	var due func() (int64, int64, bool)
	if cfg.rate > 0 {
		due = schedule(cfg, start, cfg.connections)
	} else {
		due = saturation(end)
	}
	results := make([][]record, cfg.connections)
	var wg sync.WaitGroup
	for w := range results {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			results[w] = (&conn{cfg: cfg, req: req}).serve(due)
		}(w)
	}
	wg.Wait()
	var all []record
	for _, rs := range results {
		all = append(all, rs...)
	}
	return all
}

// schedule: a dispatcher hands out (seq, due) at start + seq/rate; a connection that is busy when
// a request falls due lets it wait in the channel (the wait is counted: latency runs from due).
func schedule(cfg config, start time.Time, connections int) func() (int64, int64, bool) {
	count := int64(cfg.rate * cfg.duration.Seconds())
	interval := float64(time.Second) / cfg.rate
	ch := make(chan [2]int64, count+1)
	go func() {
		for i := int64(0); i < count; i++ {
			at := start.Add(time.Duration(float64(i) * interval))
			if wait := time.Until(at); wait > 0 {
				time.Sleep(wait)
			}
			ch <- [2]int64{i, at.UnixNano()}
		}
		close(ch)
	}()
	return func() (int64, int64, bool) {
		job, ok := <-ch
		return job[0], job[1], ok
	}
}

// saturation: every connection sends its next request as soon as the last one is answered.
func saturation(end time.Time) func() (int64, int64, bool) {
	var seq atomic.Int64
	return func() (int64, int64, bool) {
		now := time.Now()
		if now.After(end) {
			return 0, 0, false
		}
		return seq.Add(1) - 1, now.UnixNano(), true
	}
}

type conn struct {
	cfg  config
	req  []byte
	c    net.Conn
	r    *bufio.Reader
	body []byte
}

func (k *conn) serve(next func() (int64, int64, bool)) []record {
	var records []record
	for {
		seq, due, ok := next()
		if !ok {
			break
		}
		records = append(records, k.one(seq, due))
	}
	if k.c != nil {
		k.c.Close()
	}
	return records
}

func (k *conn) one(seq, due int64) record {
	rec := record{seq: seq, due: due}
	if k.c == nil {
		if err := k.dial(); err != nil {
			rec.sent, rec.done, rec.err = time.Now().UnixNano(), time.Now().UnixNano(), err.Error()
			return rec
		}
	}
	sent := time.Now()
	rec.sent = sent.UnixNano()
	k.c.SetDeadline(sent.Add(k.cfg.timeout))
	status, keep, err := k.exchange()
	rec.done = time.Now().UnixNano()
	if err != nil {
		rec.err = err.Error()
		keep = false
	} else {
		rec.status, rec.id = status, jsonID(k.body)
	}
	if !keep {
		k.c.Close()
		k.c = nil
	}
	return rec
}

func (k *conn) dial() error {
	c, err := net.DialTimeout("tcp", k.cfg.addr, k.cfg.timeout)
	if err != nil {
		return err
	}
	k.c, k.r = c, bufio.NewReaderSize(c, 16<<10)
	return nil
}

// exchange writes the request and reads one response (status line, headers, Content-Length body).
func (k *conn) exchange() (status int, keep bool, err error) {
	if _, err = k.c.Write(k.req); err != nil {
		return 0, false, err
	}
	line, err := k.r.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, false, fmt.Errorf("bad status line %q", line)
	}
	if status, err = strconv.Atoi(string(line[9:12])); err != nil {
		return 0, false, err
	}
	length, keep, err := k.headers()
	if err != nil {
		return status, false, err
	}
	if cap(k.body) < length {
		k.body = make([]byte, length)
	}
	k.body = k.body[:length]
	_, err = io.ReadFull(k.r, k.body)
	return status, keep, err
}

func (k *conn) headers() (length int, keep bool, err error) {
	length, keep = -1, true
	for {
		line, err := k.r.ReadSlice('\n')
		if err != nil {
			return 0, false, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("content-length")):
			if length, err = strconv.Atoi(string(value)); err != nil {
				return 0, false, err
			}
		case bytes.EqualFold(name, []byte("connection")):
			keep = !bytes.EqualFold(value, []byte("close"))
		case bytes.EqualFold(name, []byte("transfer-encoding")):
			return 0, false, errors.New("chunked responses are not supported")
		}
	}
	if length < 0 {
		return 0, false, errors.New("response without Content-Length")
	}
	return length, keep, nil
}

// jsonID: the string value of the first "id" key of a JSON object, "" when there is none.
func jsonID(body []byte) string {
	i := bytes.Index(body, []byte(`"id"`))
	if i < 0 {
		return ""
	}
	rest := bytes.TrimLeft(body[i+4:], " \t\r\n")
	if len(rest) == 0 || rest[0] != ':' {
		return ""
	}
	rest = bytes.TrimLeft(rest[1:], " \t\r\n")
	if len(rest) == 0 || rest[0] != '"' {
		return ""
	}
	end := bytes.IndexByte(rest[1:], '"')
	if end < 0 {
		return ""
	}
	return string(rest[1 : 1+end])
}

func write(path string, records []record) error {
	out := os.Stdout
	if path != "-" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer f.Close()
		out = f
	}
	w := bufio.NewWriterSize(out, 1<<20)
	for _, r := range records {
		fmt.Fprintf(w, "%d,%d,%d,%d,%d,%s,%s\n", r.seq, r.due, r.sent, r.done, r.status, r.id, strconv.Quote(r.err))
	}
	return w.Flush()
}

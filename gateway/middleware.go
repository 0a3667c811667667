package gateway

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"regexp"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
)

const requestIDHeader = "X-Request-ID"

var requestIDRE = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

func requestID(c *gin.Context) string { return c.GetString("request_id") }

// requestIDs makes request ids: a random per-process prefix and a counter. Unique is all an
// id must be; a crypto/rand read per request was a system call on the hot path.
type requestIDs struct {
	prefix string
	n      atomic.Uint64
}

func newRequestIDs() *requestIDs {
	var b [4]byte
	rand.Read(b[:])
	return &requestIDs{prefix: hex.EncodeToString(b[:])}
}

func (g *requestIDs) next() string {
	var buf [8 + 1 + 16]byte
	out := append(buf[:0], g.prefix...)
	out = append(out, '-')
	out = strconv.AppendUint(out, g.n.Add(1), 16)
	return string(out)
}

// observe assigns the request id (reusing a sane incoming X-Request-ID), recovers panics into
// a 500 that names the request id, records the duration histogram and writes one log line.
func (s *Server) observe() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		id := c.GetHeader(requestIDHeader)
		if !requestIDRE.MatchString(id) {
			id = s.reqIDs.next()
		}
		c.Set("request_id", id)
		c.Header(requestIDHeader, id)
		defer func() {
			if p := recover(); p != nil {
				s.log.Error("panic", "request_id", id, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				if !c.Writer.Written() {
					c.AbortWithStatusJSON(http.StatusInternalServerError, errorBody{Error: fmt.Sprintf("internal error (request id %s)", id), Type: typeInternal})
				}
			}
			route := c.FullPath()
			if route == "" {
				route = "unmatched"
			}
			code := c.Writer.Status()
			d := time.Since(start)
			s.metrics.requests.WithLabelValues(route, strconv.Itoa(code)).Observe(d.Seconds())
			if s.cfg.AccessLog {
				s.log.Info("request", "request_id", id, "method", c.Request.Method, "route", route,
					"path", c.Request.URL.Path, "code", code, "duration_ms", float64(d.Microseconds())/1000, "bytes", c.Writer.Size())
			}
		}()
		c.Next()
	}
}

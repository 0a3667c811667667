package gateway

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"regexp"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
)

const requestIDHeader = "X-Request-ID"

var requestIDRE = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

func requestID(c *gin.Context) string { return c.GetString("request_id") }

func newRequestID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// observe assigns the request id (reusing a sane incoming X-Request-ID), recovers panics into
// a 500 that names the request id, records the duration histogram and writes one log line.
func (s *Server) observe() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		id := c.GetHeader(requestIDHeader)
		if !requestIDRE.MatchString(id) {
			id = newRequestID()
		}
		c.Set("request_id", id)
		c.Header(requestIDHeader, id)
		defer func() {
			if p := recover(); p != nil {
				s.log.Error("panic", "request_id", id, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				if !c.Writer.Written() {
					c.AbortWithStatusJSON(http.StatusInternalServerError, gin.H{"error": fmt.Sprintf("internal error (request id %s)", id)})
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
